"""Config: defaults are the assignment, merge order, and every problem reported with its source."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO

from cifar_supercon import config as config_lib
from cifar_supercon.config import Config, ConfigError, Override, load, parse_set


def problems_of(paths=(), overrides=()) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(paths, overrides)
    return caught.value.problems


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_are_the_assignment() -> None:
    cfg = Config()
    assert cfg.model.name == "resnet9" and cfg.model.width == 64
    assert cfg.train.batch_size == 512 and cfg.train.epochs == 24
    assert cfg.schedule.policy == "one_cycle"
    assert cfg.schedule.peak_epoch == 5 and cfg.schedule.annihilation_epochs == 0
    assert (cfg.schedule.momentum_max, cfg.schedule.momentum_min) == (0.95, 0.85)
    assert cfg.schedule.cycle_momentum is True
    assert cfg.schedule.lr_min < cfg.schedule.lr_max
    assert cfg.optim.name == "sgd" and cfg.optim.nesterov is True
    assert cfg.optim.weight_decay == 5e-4
    assert (cfg.data.pad, cfg.data.pad_mode, cfg.data.flip) == (4, "reflect", True)
    assert (cfg.data.cutout, cfg.data.cutout_prob) == (8, 1.0)


def test_default_yaml_spells_out_the_defaults() -> None:
    from_file = load([REPO / "configs" / "default.yaml"])
    assert config_lib.to_dict(from_file) == {**config_lib.to_dict(Config()), "name": "default"}


def test_cpu_smoke_config_is_small() -> None:
    cfg = load([REPO / "configs" / "cpu-smoke.yaml"])
    assert cfg.name == "cpu-smoke"
    assert (cfg.model.width, cfg.data.train_subset, cfg.train.batch_size) == (16, 10000, 128)
    assert cfg.data.test_subset is None  # the accuracy floor is measured on the full test set


def test_config_is_frozen() -> None:
    with pytest.raises(ValueError):
        Config().train.epochs = 3  # type: ignore[misc]


def test_files_merge_left_to_right_then_overrides(tmp_path: Path) -> None:
    first = write(tmp_path, "first.yaml", "train: {epochs: 10, batch_size: 64}\nseed: 3\n")
    second = write(tmp_path, "second.yaml", "train: {epochs: 12}\n")
    cfg = load([first, second])
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.seed) == (12, 64, 3)
    cfg = load([first, second], [parse_set("train.epochs=16"), Override("seed", 5, "--seed")])
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.seed) == (16, 64, 5)
    assert cfg.schedule.lr_max == Config().schedule.lr_max  # untouched keys keep defaults
    assert cfg.name == "first"  # runs are named after the first config file


@pytest.mark.parametrize(
    ("file_name", "name"),
    [
        ("my conf.yaml", "my-conf"),
        ("ünï.yaml", "uni"),
        (".hidden.yaml", "hidden"),
        ("-dash.yaml", "dash"),
        ("a, b & c!.yaml", "a-b-c-"),
        ("模型.yaml", "supercon"),
        ("l" * 250 + ".yaml", "l" * config_lib.MAX_NAME_LENGTH),  # fits a run folder's name
    ],
)
def test_a_config_file_name_becomes_a_valid_run_name(
    tmp_path: Path, file_name: str, name: str
) -> None:
    assert load([write(tmp_path, file_name, "train: {epochs: 10}\n")]).name == name
    # A name the user sets is theirs: it is checked, not rewritten.
    explicit = write(tmp_path, "explicit.yaml", "name: my conf\n")
    assert problems_of([explicit])[0].startswith(f"{explicit}: name: expected one folder name")


def test_an_empty_section_in_a_later_file_resets_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("schedule:\n  lr_max: 0.8\ntrain:\n  epochs: 30\n")
    (tmp_path / "b.yaml").write_text("schedule: {}\ntrain:\n  batch_size: 64\n")
    cfg = config_lib.load([tmp_path / "a.yaml", tmp_path / "b.yaml"])
    assert (cfg.schedule.lr_max, cfg.train.epochs, cfg.train.batch_size) == (0.8, 30, 64)


@pytest.mark.parametrize(
    ("key", "value"),
    [("model.width", True), ("train.epochs", False), ("schedule.peak_epoch", True)],
)
def test_booleans_are_not_numbers(key: str, value: bool) -> None:
    with pytest.raises(ConfigError, match=f"{key}: expected a number, not a boolean"):
        config_lib.load([], {key: value})


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("name", "name: expected a string, not a boolean"),
        ("data.root", "data.root: expected a path, not a boolean"),
        ("train.device", "train.device: input should be 'auto', 'cpu' or 'cuda'"),
    ],
)
def test_a_boolean_is_refused_in_words_of_the_fields_type(key: str, expected: str) -> None:
    assert problems_of(overrides={key: True}) == [f"overrides: {expected} (got True)"]


@pytest.mark.parametrize("key", ["finder.weight_decays", "schedule.milestones"])
def test_a_boolean_inside_a_list_of_numbers_is_refused(key: str) -> None:
    """`[true]` would otherwise be read as [1.0]: a weight decay of 1, a milestone at epoch 1."""
    assert problems_of(overrides={key: [1, True]}) == [
        f"overrides: {key}: expected a number, not a boolean (got [1, True])"
    ]


def test_numpy_numbers_are_numbers_wherever_a_number_is_wanted() -> None:
    """An API caller's values from numpy (np.float32 is no float subclass, np.int64 no int)."""
    cfg = load(
        [],
        {
            "schedule.lr_max": np.float32(0.5),
            "schedule.lr_min": np.float64(0.05),
            "optim.weight_decay": np.float32(0.25),
            "model.width": np.int64(8),
        },
    )
    assert (cfg.schedule.lr_max, cfg.schedule.lr_min) == (0.5, 0.05)
    assert (cfg.optim.weight_decay, cfg.model.width) == (0.25, 8)
    with pytest.raises(ConfigError, match="expected a positive number or 'auto'"):
        load([], {"schedule.lr_max": np.bool_(True)})


def test_flags_still_take_booleans() -> None:
    cfg = config_lib.load([], {"train.compile": True, "data.flip": False})
    assert (cfg.train.compile, cfg.data.flip) == (True, False)


def test_set_values_are_yaml_scalars() -> None:
    assert parse_set("schedule.lr_max=0.4").value == 0.4
    assert parse_set("train.compile=true").value is True
    assert parse_set("schedule.milestones=[8, 16]").value == [8, 16]
    assert parse_set("data.root=some/folder").value == "some/folder"
    assert parse_set("schedule.lr_max=auto").value == "auto"


def test_null_unsets_an_optional_key_and_is_refused_for_a_required_one() -> None:
    smoke = REPO / "configs" / "cpu-smoke.yaml"
    assert load([smoke]).data.train_subset == 10_000
    for text in ("null", "~"):
        cfg = load([smoke], [parse_set(f"data.train_subset={text}")])
        assert cfg.data.train_subset is None  # all 50,000 images again
    with pytest.raises(ConfigError) as caught:
        load([smoke], [parse_set("train.epochs=null")])
    assert caught.value.problems == [
        "--set: train.epochs: input should be a valid integer (got None)"
    ]


@pytest.mark.parametrize("bad", ["noequals", "=3", "a..b=1", "train.epochs=", "train.epochs=[1,"])
def test_malformed_set_is_rejected(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_set(bad)
    assert len(caught.value.problems) == 1
    assert repr(bad) in caught.value.problems[0]


def test_all_problems_are_reported_together_with_their_source(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad.yaml",
        "schedule:\n  lr_maxx: 0.3\n  lr_min: 0.5\n  momentum_max: 1.5\n"
        "train:\n  epochs: abc\ndata:\n  source: foo\n",
    )
    problems = problems_of([path])
    joined = "\n".join(problems)
    assert len(problems) == 5
    assert all(p.startswith(f"{path}: ") for p in problems)
    assert "schedule.lr_maxx: unknown key (did you mean 'lr_max'?)" in joined
    assert "schedule.momentum_max: input should be less than 1 (got 1.5)" in joined
    assert "train.epochs: input should be a valid integer" in joined
    assert "data.source: input should be 'auto', 'cifar10' or 'folder' (got 'foo')" in joined
    # the cross-field check still runs on the keys that were valid
    assert "schedule.lr_min: must be less than schedule.lr_max (0.4), got 0.5" in joined


def test_unknown_section_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, "typo.yaml", "shedule: {lr_max: 0.3}\n")
    assert problems_of([path]) == [f"{path}: shedule: unknown key (did you mean 'schedule'?)"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"schedule.lr_min": 0.5},
            "schedule.lr_min: must be less than schedule.lr_max (0.4), got 0.5",
        ),
        (
            {"train.epochs": 5},
            "schedule.peak_epoch: must be between 0 and train.epochs (5), exclusive, got 5",
        ),
        ({"schedule.peak_epoch": 0}, "schedule.peak_epoch: input should be greater than 0"),
        ({"train.epochs": 0}, "train.epochs: input should be greater than or equal to 1"),
        ({"schedule.lr_max": -1}, "schedule.lr_max: expected a positive number or 'auto'"),
        ({"schedule.lr_max": "fast"}, "schedule.lr_max: expected a positive number or 'auto'"),
        ({"train.batch_size": 0}, "train.batch_size: input should be greater than or equal to 1"),
        (
            {"data.train_subset": 100, "train.batch_size": 512},
            "train.batch_size: must not exceed the training set (data.train_subset = 100)",
        ),
        ({"data.cutout": 33}, "data.cutout: input should be less than or equal to 32"),
        ({"schedule.momentum_min": 0}, "schedule.momentum_min: input should be greater than 0"),
        (
            {"schedule.momentum_min": 0.9, "schedule.momentum_max": 0.8},
            "schedule.momentum_min: must not exceed schedule.momentum_max (0.8), got 0.9",
        ),
        ({"schedule.policy": "warp"}, "schedule.policy: input should be 'one_cycle'"),
        ({"train.device": "tpu"}, "train.device: input should be 'auto', 'cpu' or 'cuda'"),
        (
            {"schedule.policy": "multistep", "schedule.milestones": [18, 12]},
            "schedule.milestones: must increase strictly",
        ),
        ({"finder.start_lr": 20}, "finder.start_lr: must be less than finder.end_lr (10)"),
        ({"data.root": None}, "data.root: expected a path, not null (. for this folder)"),
        ({"out": None}, "out: expected a path, not null (. for this folder)"),
        (
            {"name": datetime.date(2024, 1, 1)},
            "name: expected text, not a date; quote it, e.g. name: '...' (got 2024-01-01)",
        ),
        ({"name": 1000}, "name: expected text, not a number; quote it, e.g. name: '...'"),
        ({"name": True}, "name: expected a string, not a boolean"),
        ({"name": None}, "name: expected text, not null; quote it"),
        ({"name": "a b"}, "name: expected one folder name of letters, digits, '.', '_' and '-'"),
    ],
)
def test_each_bad_value_is_named(overrides: dict, expected: str) -> None:
    problems = problems_of(overrides=overrides)
    assert any(p.startswith("overrides: " + expected) for p in problems), problems


def test_problem_source_is_the_option_that_set_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "ok.yaml", "schedule: {peak_epoch: 5}\n")
    problems = problems_of([path], [Override("train.epochs", 4, "--epochs")])
    assert problems == [
        "--epochs: schedule.peak_epoch: must be between 0 and train.epochs (4), exclusive, got 5 "
        f"(schedule.peak_epoch from {path})"
    ]
    problems = problems_of(
        overrides=[
            parse_set("schedule.annihilation_epochs=5"),
            Override("train.epochs", 3, "--epochs"),
        ]
    )
    assert problems == [
        "--epochs: schedule.annihilation_epochs: must be less than train.epochs (3), got 5 "
        "(schedule.annihilation_epochs from --set)"
    ]


def test_a_key_set_twice_in_conflicting_ways() -> None:
    problems = problems_of(
        overrides=[parse_set("train.epochs=3"), Override("train.epochs", 4, "--epochs")]
    )
    assert problems == [
        "--epochs: train.epochs: conflicts with --set train.epochs=3 (give each key once)"
    ]
    problems = problems_of(overrides=[Override("train", 3, "--set"), parse_set("train.epochs=4")])
    assert "train.epochs: conflicts with --set train=3" in problems[0]
    # the same value twice is not a conflict
    assert load([], [parse_set("seed=1"), Override("seed", 1, "--seed")]).seed == 1


def test_duplicate_key_in_one_yaml_file(tmp_path: Path) -> None:
    path = write(tmp_path, "dup.yaml", "train:\n  epochs: 3\n  epochs: 4\n")
    (problem,) = problems_of([path])
    assert problem.startswith(f"{path}: line 3: not valid YAML")
    assert "'epochs' appears twice" in problem


def test_yaml_merge_keys_give_defaults_that_the_mapping_overrides(tmp_path: Path) -> None:
    merging = "schedule: {peak_epoch: 1}\ntrain:\n  <<: &base {epochs: 3, batch_size: 8}\n"
    path = write(tmp_path, "merge.yaml", merging + "  epochs: 5\n")
    assert (load([path]).train.epochs, load([path]).train.batch_size) == (5, 8)
    twice = write(tmp_path, "twice.yaml", merging + "  epochs: 5\n  epochs: 6\n")
    (problem,) = problems_of([twice])
    assert problem.startswith(f"{twice}: line 5: not valid YAML (key 'epochs' appears twice")


def test_two_merge_keys_in_one_mapping_are_a_key_given_twice(tmp_path: Path) -> None:
    """`<<` twice in one mapping would merge both, the last one's values winning: refused as
    any key given twice is, wherever the mapping is; one `<<` with a list of bases merges."""
    bases = "a: &a {epochs: 3}\nb: &b {epochs: 4, batch_size: 8}\n"
    for where, text in [
        ("line 5", "train:\n  <<: *a\n  <<: *b\n"),
        ("line 3", "x: {<<: *a, <<: *b}\n"),  # flow style, under an unknown key
        ("line 5", "train:\n  <<: *a\n  !!merge <<: {epochs: 2}\n"),  # the tag spelled out
    ]:
        path = write(tmp_path, "twice.yaml", bases + text)
        assert problems_of([path]) == [
            f"{path}: {where}: not valid YAML (key '<<' appears twice in one mapping; merge "
            "several mappings with one: <<: [*a, *b])"
        ]
    one = write(
        tmp_path,
        "one.yaml",
        "schedule: {peak_epoch: 1}\ntrain:\n  <<: [{epochs: 3}, {batch_size: 8}]\n  epochs: 2\n",
    )
    assert (load([one]).train.epochs, load([one]).train.batch_size) == (2, 8)


def test_of_several_merged_bases_the_first_gives_a_shared_key(tmp_path: Path) -> None:
    """YAML's rule for `<<: [*a, *b]`: a key both bases give comes from the first, and a base
    that merges another brings its own values, not those it overrode (PyYAML alone let the last
    base win for any key longer than one letter)."""
    path = write(
        tmp_path,
        "bases.yaml",
        "schedule: {peak_epoch: 1}\n"
        "train:\n"
        "  <<: [{epochs: 4, <<: {epochs: 9, batch_size: 8}}, {epochs: 5, eval_batch_size: 16}]\n",
    )
    train = load([path]).train
    assert (train.epochs, train.batch_size, train.eval_batch_size) == (4, 8, 16)


def test_a_dotted_key_and_its_section_in_one_file_set_it_twice(tmp_path: Path) -> None:
    path = write(tmp_path, "dotted.yaml", "train.epochs: 3\ntrain: {epochs: 4}\n")
    assert problems_of([path]) == [
        f"{path}: train.epochs: conflicts with {path} train.epochs=3 (give each key once)"
    ]


def test_yaml_anchors_and_aliases_still_work(tmp_path: Path) -> None:
    path = write(tmp_path, "alias.yaml", "schedule: {lr_max: &top 0.8}\nfinder: {end_lr: *top}\n")
    assert load([path]).finder.end_lr == 0.8


def test_file_problems(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert problems_of([missing]) == [f"{missing}: config file not found"]
    not_yaml = write(tmp_path, "broken.yaml", "train: [1, 2\n")
    (problem,) = problems_of([not_yaml])
    assert problem.startswith(f"{not_yaml}: line ") and "not valid YAML" in problem
    a_list = write(tmp_path, "list.yaml", "- 1\n- 2\n")
    (problem,) = problems_of([a_list])
    assert problem.startswith(f"{a_list}: the top level must be a mapping") and "list" in problem
    section_scalar = write(tmp_path, "scalar.yaml", "train: 3\n")
    assert problems_of([section_scalar]) == [
        f"{section_scalar}: train: expected a mapping of keys to values"
    ]
    # several broken files: all of them are named
    assert len(problems_of([missing, a_list])) == 2


@pytest.mark.parametrize("section", ["5", "[]", "null", "'text'", "[1, 2]"])
@pytest.mark.parametrize(
    "later",
    [
        [parse_set("train.device=cpu")],
        [Override("train.epochs", 3, "--epochs"), Override("schedule.peak_epoch", 1, "--peak")],
        {"train.batch_size": 8, "train.epochs": 2},
    ],
    ids=["--set", "shortcuts", "mapping"],
)
def test_a_broken_section_is_reported_whatever_overrides_follow(
    tmp_path: Path, section: str, later: list | dict
) -> None:
    """`train: 5` is the file's error; a later key of that section must not replace it with
    a fresh section (the file's other keys and this one silently gone)."""
    path = write(tmp_path, "scalar.yaml", f"train: {section}\nseed: 3\n")
    expected = [f"{path}: train: expected a mapping of keys to values"]
    assert problems_of([path]) == expected
    assert problems_of([path], later) == expected
    # a later file that sets a key of the section does not hide it either
    good = write(tmp_path, "good.yaml", "train: {epochs: 3}\nschedule: {peak_epoch: 1}\n")
    assert problems_of([path, good], later) == expected
    assert problems_of([good, path], later) == expected


def test_a_broken_section_hides_no_problem_and_invents_none(tmp_path: Path) -> None:
    """With `train: 5`, train.epochs stood at its default: a peak checked against it would be
    a problem about a value nobody gave (and was blamed on the file)."""
    path = write(tmp_path, "scalar.yaml", "train: 5\n")
    assert problems_of([path], {"schedule.peak_epoch": 30}) == [
        f"{path}: train: expected a mapping of keys to values"
    ]


def test_a_value_given_as_a_mapping_is_reported_whatever_overrides_follow(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "seedmap.yaml", "seed: {a: 1}\ntrain: {epochs: {b: 2}}\n")
    seed = f"{path}: seed: input should be a valid integer (got {{'a': 1}})"
    epochs = f"{path}: train.epochs: input should be a valid integer (got {{'b': 2}})"
    overrides = [Override("seed", 3, "--seed"), Override("train.epochs", 3, "--epochs")]
    assert problems_of([path], overrides) == problems_of([path]) == [seed, epochs]
    earlier = write(tmp_path, "seed3.yaml", "seed: 3\n")  # the later file is the broken one
    assert problems_of([earlier, path]) == [seed, epochs]
    # a value replaced by a value is what overrides are for
    assert load([earlier], [Override("seed", 4, "--seed")]).seed == 4


def test_empty_yaml_means_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.yaml", "")
    assert config_lib.to_dict(load([path])) == {**config_lib.to_dict(Config()), "name": "empty"}


def test_yaml_round_trip_and_auto() -> None:
    cfg = load([], {"schedule.lr_max": "auto", "schedule.lr_min": "auto"})
    assert cfg.schedule.lr_max == "auto"
    again = config_lib.from_dict(yaml.safe_load(config_lib.to_yaml(cfg)), "round trip")
    assert again == cfg
    resolved = config_lib.replace(cfg, "test", schedule={"lr_max": 0.5, "lr_min": 0.05})
    assert (resolved.schedule.lr_max, resolved.schedule.lr_min) == (0.5, 0.05)


def test_python_construction_runs_the_cross_field_checks() -> None:
    with pytest.raises(ValueError, match=r"schedule\.lr_min: must be less than schedule\.lr_max"):
        Config.model_validate({"schedule": {"lr_min": 1.0}})


def test_paths_expand_the_home_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = load([], {"data.root": "~/data", "out": "~/runs"})
    assert (cfg.data.root, cfg.out) == (tmp_path / "data", tmp_path / "runs")
