"""The Python API's own answers: the package's error classes, in the one-line messages the
commands print, for the arguments a notebook passes (never a TypeError or AttributeError from
deep inside, never a finished run's file replaced)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import tiny_config

import cifar_supercon
from cifar_supercon import api, arguments, executors
from cifar_supercon import config as config_lib
from cifar_supercon.comparison import compare
from cifar_supercon.config import ConfigError, Override
from cifar_supercon.errors import UsageError
from cifar_supercon.sweeps import sweep

RUN_RULE = "which holds only what the run wrote; choose a place outside it"


@pytest.fixture(scope="module")
def finished(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-epoch run of the tiny config (never changed by a test)."""
    out = tmp_path_factory.mktemp("runs")
    cfg = tiny_config(image_folder, out, train={"epochs": 2})
    return Path(api.train(cfg, log=None)["run_dir"])


def contents(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(call: Any, error: type[Exception] = UsageError) -> str:
    """The one line `call` raises, of exactly the class `error`."""
    with pytest.raises(error) as caught:
        call()
    assert type(caught.value) is error, caught.value
    message = str(caught.value)
    assert "\n" not in message, message
    return message


# Fault: the API wrote into finished runs -------------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "relative", "call"),
    [
        ("png", "plots/schedule.png", lambda run, p: api.plot_schedule(png=p)),
        ("csv_path", "metrics.csv", lambda run, p: api.plot_schedule(csv_path=p)),
        ("png", "plots/new/figure.svg", lambda run, p: api.plot_schedule(png=p)),
        ("png", "plots/training.png", lambda run, p: compare([run], png=p)),
        ("png", "report.pdf", lambda run, p: cifar_supercon.compare(str(run), png=str(p))),
        (
            "plot",
            "plots/confusion_matrix.png",
            lambda run, p: api.evaluate(run / "checkpoints" / "best.pt", plot=p, log=None),
        ),
        (
            "plot",
            "checkpoints/best.png",
            lambda run, p: api.evaluate(run / "checkpoints" / "last.pt", plot=p, log=None),
        ),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_no_api_output_path_writes_into_a_run(
    finished: Path, tmp_path: Path, argument: str, relative: str, call: Any
) -> None:
    """Each output argument is refused inside a run, directly or through a link, before any
    work, and the run is left byte for byte as it was."""
    before = contents(finished)
    (tmp_path / "link").symlink_to(finished)
    for path in (finished / relative, tmp_path / "link" / relative):
        message = refused(lambda path=path: call(finished, path))
        assert message == f"{argument} {path}: inside the run {finished.resolve()}, {RUN_RULE}"
    assert contents(finished) == before


def test_the_commands_and_the_api_share_the_check(finished: Path) -> None:
    """The commands call the same check, naming their options instead of the arguments."""
    from cifar_supercon import cli

    target = finished / "plots" / "schedule.png"
    message = refused(lambda: cli._output_file(target, "--out"))
    assert message == f"--out {target}: inside the run {finished.resolve()}, {RUN_RULE}"


def test_outputs_outside_runs_are_written_and_evaluate_fills_its_own_run(
    finished: Path, tmp_path: Path
) -> None:
    api.plot_schedule(png=tmp_path / "s.png", csv_path=str(tmp_path / "s.csv"))
    assert (tmp_path / "s.png").is_file() and (tmp_path / "s.csv").is_file()
    result = compare([str(finished)], png=tmp_path / "c.png")
    assert result.png == tmp_path / "c.png" and result.png.is_file()
    plots_before = set((finished / "plots").iterdir())
    evaluation = api.evaluate(finished / "checkpoints" / "best.pt", log=None)
    # the default place is the run's own plots/, by design: the one new file there
    assert evaluation.plot == finished / "plots" / "confusion_best.png"
    assert set((finished / "plots").iterdir()) - plots_before <= {evaluation.plot}
    # An evaluation other than the run's own (with TTA, where it trained without) has its own
    # plot, beside the plain one, not over it.
    with_tta = api.evaluate(finished / "checkpoints" / "best.pt", tta_flip=True, log=None)
    assert with_tta.plot == finished / "plots" / "confusion_best_tta.png"
    assert evaluation.plot.is_file()
    assert api.evaluate(finished / "checkpoints" / "best.pt", tta_flip=False, log=None).plot == (
        evaluation.plot  # --no-tta on a run without it: the run's own evaluation
    )
    evaluation.plot.unlink()
    with_tta.plot.unlink()


def test_train_run_dir_and_out_inside_a_run_are_refused_before_any_work(
    finished: Path, tmp_path: Path
) -> None:
    before = contents(finished)
    cfg = config_lib.load([], {"out": str(tmp_path)}, base=_tiny_of(finished))
    target = finished / "again"
    message = refused(lambda: api.train(cfg, run_dir=target, log=None))
    assert message == f"run_dir {target}: inside the run {finished.resolve()}, {RUN_RULE}"
    inside = {"out": str(finished / "plots"), "data.root": str(tmp_path / "nowhere")}
    for call in (api.find_lr, api.train):  # before the data loads: a missing root is not seen
        message = refused(lambda call=call: call(cfg, overrides=inside, log=None))
        assert message == (
            f"out {finished / 'plots'}: inside the run {finished.resolve()}, {RUN_RULE}"
        )
    assert contents(finished) == before


def _tiny_of(run: Path) -> config_lib.Config:
    return config_lib.from_dict(yaml.safe_load((run / "config.yaml").read_text()), "config")


# Fault: the API mishandled the kinds of its arguments ------------------------------------------


def test_a_config_mapping_is_a_config_file_s_content(tmp_path: Path) -> None:
    sections = {"train": {"epochs": 3, "batch_size": 8}, "schedule": {"peak_epoch": 1}}
    cfg = api.resolve_config(sections)
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.schedule.peak_epoch) == (3, 8, 1)
    assert cfg.name == "supercon"  # no file to name it after
    # merged left to right with files and Configs, as several --config files are
    path = tmp_path / "a.yaml"
    path.write_text("train: {epochs: 5}\n")
    cfg = api.resolve_config([path, {"train": {"batch_size": 4}}], {"schedule.peak_epoch": 2})
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.name) == (5, 4, "a")
    cfg = api.resolve_config([config_lib.Config(name="base"), {"seed": 7}])
    assert (cfg.name, cfg.seed) == ("base", 7)
    # its problems are named as the argument's, every one at once (a line each)
    with pytest.raises(ConfigError) as caught:
        api.resolve_config({"train": {"epochz": 3, "batch_size": 0}})
    assert caught.value.problems == [
        "config: train.batch_size: input should be greater than or equal to 1 (got 0)",
        "config: train.epochz: unknown key (did you mean 'epochs'?)",
    ]
    with pytest.raises(ConfigError) as caught:
        api.resolve_config([{"train": 5}, {"seed": -1}])
    assert caught.value.problems == [
        "config[1]: seed: input should be greater than or equal to 0 (got -1)",
        "config[0]: train: expected a mapping of keys to values",
    ]


@pytest.mark.parametrize(
    "overrides",
    [
        ["train.epochs=6", "schedule.peak_epoch=1"],
        "train.epochs=6",  # one text, not its characters
        ("train.epochs=6",),
        {"train.epochs": 6},
        {"train": {"epochs": 6}},  # nested as in a YAML file
        [("train.epochs", 6)],
        [Override("train.epochs", 6, "--epochs")],
    ],
)
def test_overrides_in_every_form_a_user_writes(overrides: Any) -> None:
    assert api.resolve_config(None, overrides).train.epochs == 6
    assert config_lib.load([], overrides).train.epochs == 6
    assert api.resolve_config(config_lib.Config(), overrides).train.epochs == 6


def test_the_text_form_of_overrides_is_read_as_set_reads_it() -> None:
    assert api.resolve_config(None, ["schedule.lr_max=auto"]).schedule.lr_max == "auto"
    assert refused(lambda: api.resolve_config(None, ["train.epochs"]), ConfigError) == (
        "overrides 'train.epochs': expected KEY=VALUE with a dotted key, e.g. 'schedule.lr_max=0.4'"
    )
    assert refused(lambda: api.resolve_config(None, "train.epochs=many"), ConfigError) == (
        "overrides: train.epochs: input should be a valid integer, unable to parse string as "
        "an integer (got 'many')"
    )


def test_a_config_file_named_by_a_str_is_one_file(tmp_path: Path) -> None:
    path = tmp_path / "scalar.yaml"
    path.write_text("train: 5\n")
    for load in (api.resolve_config, config_lib.load, cifar_supercon.load):
        assert refused(lambda load=load: load(str(path)), ConfigError) == (
            f"{path}: train: expected a mapping of keys to values"
        )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: api.resolve_config(5),
            "config 5: expected a YAML path, a mapping of sections such as "
            "{'train': {'epochs': 3}}, a Config, or a list of them",
        ),
        (
            lambda: api.resolve_config(["a.yaml", 5]),
            "config ['a.yaml', 5]: expected a YAML path, a mapping of sections such as "
            "{'train': {'epochs': 3}}, a Config, or a list of them",
        ),
        (
            lambda: api.resolve_config(""),
            "config '': an empty path; give a file or folder (. for this folder)",
        ),
        (
            lambda: api.resolve_config({1: {"epochs": 3}}),
            "config {1: {'epochs': 3}}: key 1 is not a name (keys are words like train or lr_max)",
        ),
        (
            lambda: config_lib.load(b"a.yaml"),
            "paths b'a.yaml': expected a YAML path, a mapping of sections such as "
            "{'train': {'epochs': 3}}, a Config, or a list of them",
        ),
        (
            lambda: config_lib.load([], base={"seed": 1}),
            "base {'seed': 1}: expected a Config, or None",
        ),
        (
            lambda: api.resolve_config(None, 3),
            "overrides 3: expected a mapping {dotted key: value} such as {'train.epochs': 3}, "
            "or a list of 'KEY=VALUE' texts such as ['train.epochs=3']",
        ),
        (
            lambda: api.resolve_config(None, ["seed=1", 3]),
            "overrides ['seed=1', 3]: 3 is no override; expected a mapping {dotted key: value} "
            "such as {'train.epochs': 3}, or a list of 'KEY=VALUE' texts such as "
            "['train.epochs=3']",
        ),
        (
            lambda: api.resolve_config(None, {("train", "epochs"): 3}),
            "overrides {('train', 'epochs'): 3}: key ('train', 'epochs') is not a dotted key "
            "such as 'train.epochs'",
        ),
        (
            lambda: api.train(log="print"),
            "log 'print': expected a function taking one line of text, such as print, or None",
        ),
        (lambda: api.train(progress="no"), "progress 'no': expected True or False"),
        (lambda: api.find_lr(progress=1), "progress 1: expected True or False"),
        (
            lambda: api.train(run_dir=""),
            "run_dir '': an empty path; give a file or folder (. for this folder)",
        ),
        (lambda: api.train(resume=3), "resume 3: expected a path (a str or pathlib.Path)"),
        (lambda: api.evaluate(None), "checkpoint None: expected a path (a str or pathlib.Path)"),
        (lambda: api.evaluate("x.pt", tta_flip="yes"), "tta_flip 'yes': expected True or False"),
        (lambda: api.evaluate("x.pt", plot=1), "plot 1: expected a path (a str or pathlib.Path)"),
        (
            # the model it was trained as, or a key of training evaluation never reads
            lambda: api.evaluate("x.pt", overrides={"model.width": 16}),
            "overrides: model.width: evaluate uses the checkpoint's own config; it may change "
            "only where and how the test set is read: data.root, train.device, "
            "train.eval_batch_size, train.cpu_threads, data.source, data.test_subset, "
            "train.precision, train.channels_last",
        ),
        (
            lambda: api.plot_schedule(png=["a.png"]),
            "png ['a.png']: expected a path (a str or pathlib.Path)",
        ),
        (
            lambda: api.plot_schedule(png="s.txt"),
            "png s.txt: expected an image file name ending in .png, .pdf, .svg, .jpg, .jpeg, .webp",
        ),
        (
            lambda: api.plot_schedule(png="s.png", csv_path="s.png"),
            "csv_path s.png: the same file as png; give each its own name",
        ),
        (lambda: api.plot_schedule(cycles=0), "cycles 0: expected a whole number, at least 1"),
        (
            lambda: api.plot_schedule(cycles=True),
            "cycles True: expected a whole number, at least 1",
        ),
        (lambda: api.plot_schedule(cycles=2.5), "cycles 2.5: expected a whole number, at least 1"),
        (
            lambda: compare(5),
            "paths 5: expected a run or sweep folder, or a list of them",
        ),
        (
            lambda: compare(["a", None]),
            "paths None: expected a path (a str or pathlib.Path)",
        ),
    ],
)
def test_an_argument_of_the_wrong_kind_is_one_usage_error(
    call: Any, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing here is written, but if it were: not into the repo
    assert refused(call) == message
    assert list(tmp_path.iterdir()) == []


def test_resume_with_a_config_or_run_dir_is_refused(finished: Path, tmp_path: Path) -> None:
    """The command refuses --resume with --config; the API refused nothing and ignored config."""
    allowed = "data.root, train.device, train.eval_batch_size, train.cpu_threads"
    for config, shown in [
        ("other.yaml", "'other.yaml'"),
        (["a.yaml"], "['a.yaml']"),
        ({"train": {"epochs": 9}}, "{'train': {'epochs': 9}}"),
        (_tiny_of(finished), "<Config 'tiny'>"),
    ]:
        assert refused(lambda config=config: api.train(config, resume=finished)) == (
            f"config {shown} with resume {str(finished)!r}: a resumed run continues with its "
            f"own config.yaml; leave config out (overrides may change only {allowed})"
        )
    assert refused(lambda: api.train(resume=finished, run_dir=tmp_path / "x")) == (
        f"run_dir {str(tmp_path / 'x')!r} with resume {str(finished)!r}: a resumed run "
        "continues in its own folder; leave run_dir out"
    )


class Collect:
    """An executor that runs nothing: what the sweep would have run."""

    def run(
        self, work: executors.Work, tasks: list, done: executors.Done, lost: executors.Lost
    ) -> None:
        self.tasks = list(tasks)


@pytest.mark.parametrize(
    ("grid", "seeds"),
    [
        ({"schedule.lr_max": "0.2,0.4"}, "0-1"),
        (["schedule.lr_max=0.2, 0.4"], "0,1"),
        ("schedule.lr_max=0.2,0.4", [0, 1]),
        ({"schedule.lr_max": [0.2, 0.4]}, range(2)),
        ({"schedule.lr_max": ["0.2", 0.4]}, (1, 0, 1)),
    ],
)
def test_sweep_takes_the_command_line_s_text_forms(
    image_folder: Path, tmp_path: Path, grid: Any, seeds: Any
) -> None:
    executor = Collect()
    cfg = tiny_config(image_folder, tmp_path / "runs")
    result = sweep(cfg, grid=grid, seeds=seeds, out=tmp_path, executor=executor, log=None)
    assert result.spec.grid == {"schedule.lr_max": [0.2, 0.4]}
    assert result.spec.seeds == [0, 1]
    assert len(executor.tasks) == 4


def test_sweep_takes_one_value_and_a_named_executor(image_folder: Path, tmp_path: Path) -> None:
    cfg = tiny_config(image_folder, tmp_path / "runs")
    result = sweep(
        cfg,
        grid={"optim.weight_decay": 0},
        seeds=[3],
        out=tmp_path,
        name="one",
        executor=Collect(),
        log=None,
    )
    assert (result.spec.grid, result.spec.seeds) == ({"optim.weight_decay": [0.0]}, [3])


@pytest.mark.parametrize(
    ("arguments_", "message", "error"),
    [
        (
            {"seeds": [True]},
            "seeds [True]: True is no seed; expected whole numbers, 0 <= seed <= 4294967295",
            UsageError,
        ),
        (
            {"seeds": [0, 1.5]},
            "seeds [0, 1.5]: 1.5 is no seed; expected whole numbers, 0 <= seed <= 4294967295",
            UsageError,
        ),
        (
            {"seeds": [-1]},
            "seeds [-1]: -1 is no seed; expected whole numbers, 0 <= seed <= 4294967295",
            UsageError,
        ),
        (
            {"seeds": 3},
            "seeds 3: expected a list of seeds such as [0, 1, 2], or text such as '0-4'",
            UsageError,
        ),
        (
            {"seeds": range(10**12)},
            "seeds range(0, 1000000000000): more than 100,000 seeds",
            UsageError,
        ),
        (
            {"seeds": []},
            "seeds []: expected at least one seed, 0 <= seed <= 4294967295",
            UsageError,
        ),
        (
            {"seeds": "0-x"},
            "seeds '0-x': expected seeds like 0-4, 0,1,2 or 0-2,7 (0 <= seed <= 4294967295)",
            UsageError,
        ),
        (
            {"grid": {"schedule.lr_max": "0.2,0.2"}},
            "grid 'schedule.lr_max=0.2,0.2': '0.2' and '0.2' are the same value; list each once",
            UsageError,
        ),
        (
            {"grid": {"schedule.lr_max": "0.2,,0.4"}},
            "grid 'schedule.lr_max=0.2,,0.4': a value is empty (two commas, or one at an end)",
            ConfigError,
        ),
        (
            {"grid": ["schedule.lr_max=0.2", "schedule.lr_max=0.4"]},
            "grid schedule.lr_max: given twice; list all its values once",
            UsageError,
        ),
        (
            {"grid": "schedule.lr_max"},
            "grid 'schedule.lr_max': expected KEY=V1,V2,..., e.g. 'schedule.lr_max=0.2,0.4,0.8'",
            ConfigError,
        ),
        ({"grid": {"seed": "1,2"}}, "grid seed: not a grid key (use --seeds)", ConfigError),
        (
            {"grid": 5},
            "grid 5: expected a mapping {dotted key: values} such as "
            "{'schedule.lr_max': [0.2, 0.4]} (or '0.2,0.4'), or 'KEY=V1,V2' texts such as "
            "['schedule.lr_max=0.2,0.4']",
            UsageError,
        ),
        (
            {"grid": {"schedule.lr_max": {"a": 1}}},
            "grid schedule.lr_max: {'a': 1}: expected a list of values, or text such as '0.2,0.4'",
            UsageError,
        ),
        (
            {"grid": {"train.epochs": [3, {"a": 1}]}},
            "grid: {'a': 1} is not a value train.epochs takes; expected a number, a string, "
            "true/false or null",
            UsageError,
        ),
        (
            {"executor": "cluster"},
            "executor 'cluster': expected 'local', 'ray', or an executor "
            "such as executors.Local(), executors.Devices(['0', '1']), "
            "executors.Ray(address=...)",
            UsageError,
        ),
        ({"target": 90}, "target 90: expected a number from 0 to 1", UsageError),
        ({"retry_failed": "yes"}, "retry_failed 'yes': expected True or False", UsageError),
        ({"out": None}, "out None: expected a path (a str or pathlib.Path)", UsageError),
        ({"name": 5}, f"--name 5: expected {config_lib.NAME_RULE}", UsageError),
        (
            {"log": 1},
            "log 1: expected a function taking one line of text, such as print, or None",
            UsageError,
        ),
    ],
)
def test_sweep_arguments_of_the_wrong_kind(
    image_folder: Path, tmp_path: Path, arguments_: dict, message: str, error: type
) -> None:
    cfg = tiny_config(image_folder, tmp_path / "runs")
    call = {"out": tmp_path / "sweeps", "executor": Collect(), **arguments_}
    assert refused(lambda: sweep(cfg, **call), error) == message
    assert not (tmp_path / "sweeps").exists()


def test_values_in_messages_stay_one_short_line() -> None:
    long = list(range(1000))
    shown = arguments.shown(long)
    assert len(shown) == arguments.SHOWN_CHARACTERS and shown.endswith("...")
    assert arguments.shown("a\nb") == "'a\\nb'"
    assert re.fullmatch(r"[^\n]+", refused(lambda: api.resolve_config(None, ["x\ny"]), ConfigError))


def test_evaluating_a_checkpoint_named_matrix_keeps_the_runs_confusion_plot(
    finished: Path, tmp_path: Path
) -> None:
    """The default plot is plots/confusion_<checkpoint name>.png: for checkpoints/matrix.pt
    that would be the training's own confusion_matrix.png."""
    run = Path(shutil.copytree(finished, tmp_path / "run"))
    shutil.copy(run / "checkpoints" / "best.pt", run / "checkpoints" / "matrix.pt")
    own = (run / "plots" / "confusion_matrix.png").read_bytes()
    evaluation = api.evaluate(run / "checkpoints" / "matrix.pt", log=None)
    assert evaluation.plot == run / "plots" / "confusion_matrix_checkpoint.png"
    assert evaluation.plot.is_file()
    assert (run / "plots" / "confusion_matrix.png").read_bytes() == own
