"""Run configuration: pydantic models whose defaults ARE the assignment, and `load()`.

`load(paths, overrides)` merges YAML files left to right, applies overrides (`--set` and the CLI
shortcuts), validates everything and returns a frozen `Config`. Every problem is reported at once,
each as `source: key.path: what is wrong (what is allowed)`, where source is the file or option that
set the key.
"""

from __future__ import annotations

import contextlib
import datetime
import difflib
import itertools
import numbers
import os
import re
import typing
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from . import arguments
from .errors import ConfigError, UsageError, ValueRefused, first_line
from .suggest import Method
from .text import not_utf8, quoted

AUTO = "auto"
DEFAULTS = "defaults"
MAX_SEED = 2**32 - 1  # the range every RNG a seed feeds accepts
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"  # a run's name, and a sweep's: one folder name
# A file name holds 255 bytes (ext4, XFS, APFS), and a run folder adds 28 around its name at most:
# `<YYYYmmdd-HHMMSS>-<name>-find-lr-999` (a range test's, the 999th of that second). NAME_PATTERN
# is ASCII, so a name's characters are its bytes.
MAX_NAME_LENGTH = 255 - len("YYYYmmdd-HHMMSS-") - len("-find-lr") - len("-999")
NAME_RULE = (
    "one folder name of letters, digits, '.', '_' and '-', starting with a letter or digit, "
    f"e.g. w16-lr0.4 (at most {MAX_NAME_LENGTH} characters)"
)
# Policies whose LR moves between two bounds (the others only use lr_max).
TWO_BOUND_POLICIES = ("one_cycle", "triangular", "triangular2", "exp_range")


def is_folder_name(name: str) -> bool:
    """A run's or a sweep's name: one folder inside its parent (`../x` or `a/b` would put it
    elsewhere), short enough for the time stamp and suffixes a run folder adds."""
    if not isinstance(name, str):
        return False
    return bool(re.fullmatch(NAME_PATTERN, name)) and len(name) <= MAX_NAME_LENGTH


def _positive_or_auto(value: Any) -> float | str:
    if value == AUTO:
        return AUTO
    problem = "expected a positive number or 'auto'"
    # numbers.Real: numpy's scalars too (an API caller's np.float32(0.3)), as pydantic's floats
    if isinstance(value, bool) or not isinstance(value, numbers.Real | str):
        raise ValueError(problem)
    try:
        number = float(value)
    except ValueError:
        raise ValueError(problem) from None
    if not 0 < number < float("inf"):
        raise ValueError(problem)
    return number


# A learning rate, or "auto": filled in by the LR range test before training starts.
LearningRate = Annotated[
    float | Literal["auto"],
    PlainValidator(_positive_or_auto),
    PlainSerializer(lambda v: v, return_type=Any),
]
Momentum = Annotated[float, Field(gt=0, lt=1)]


def _accepts(kinds: tuple[type, ...], annotation: Any) -> bool:
    """Whether a field's type (through Optional, Annotated, tuple[...]) takes one of `kinds`."""
    return annotation in kinds or any(_accepts(kinds, a) for a in typing.get_args(annotation))


def _is_list(annotation: Any) -> bool:
    """Whether a field's type (or one of a union's) is a tuple or list of values."""
    return any(
        typing.get_origin(a) in (tuple, list) for a in (annotation, *typing.get_args(annotation))
    )


# What a field expects, in words, when YAML hands it a boolean (`true`, `yes`, `no`).
_EXPECTED = (((int, float), "a number"), ((Path,), "a path"), ((str,), "a string"))


def _expected_instead_of_bool(annotation: Any) -> str | None:
    """None where a boolean is allowed, or where pydantic's own message lists the choices."""
    if _accepts((bool,), annotation):
        return None
    return next((what for kinds, what in _EXPECTED if _accepts(kinds, annotation)), None)


def _yaml_kind(value: Any) -> str:
    """What YAML made of an unquoted scalar, in words."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, datetime.date):  # a datetime is a date too
        return "a date"
    if isinstance(value, list | dict):
        return "a list" if isinstance(value, list) else "a mapping"
    return "null" if value is None else f"a {type(value).__name__}"


class Section(BaseModel):
    # Non-finite numbers (.inf, .nan in YAML) are refused where they are given, not at the first
    # NaN of a run.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """YAML's yes/true would pass as 1 where a number is wanted (`width: yes` is width 1);
        refused, in words that name the type the field wants."""
        field = cls.model_fields.get(info.field_name or "")
        items = value if isinstance(value, list | tuple) else [value]  # a list's items too
        if field is not None and any(isinstance(item, bool) for item in items):
            expected = _expected_instead_of_bool(field.annotation)
            if expected is not None:
                raise ValueError(f"expected {expected}, not a boolean")
        if field is not None and field.annotation is str and not isinstance(value, str):
            # YAML reads 2024-01-01 as a date, 1_000 as the number 1000 and yes as true: the
            # text as typed is gone by now, so ask for quotes instead of guessing it back.
            raise ValueError(
                f"expected text, not {_yaml_kind(value)}; quote it, e.g. {info.field_name}: '...'"
            )
        if field is not None and field.annotation is Path and value is None:  # YAML's ~ or null
            raise ValueError("expected a path, not null (. for this folder)")
        if field is not None and field.annotation is Path and not isinstance(value, str | Path):
            quote = (
                ""
                if isinstance(value, list | dict)
                else f"; quote it, e.g. {info.field_name}: '...'"
            )
            raise ValueError(f"expected a path, not {_yaml_kind(value)}{quote}")
        if (
            field is not None
            and _is_list(field.annotation)
            and isinstance(value, str | int | float)
        ):
            raise ValueError(f"expected a list, e.g. {info.field_name}: [{value}]")
        if field is not None and field.annotation is Path and isinstance(value, str | Path):
            if value == "":  # Path("") is the current folder, which nobody means by nothing
                raise ValueError("expected a path, not an empty string (. for this folder)")
            path = arguments.expanded(Path(value))  # `~/data` as a shell would read it
            # Refused here, before any folder is made, rather than carried into a run that
            # cannot write it down: see arguments.not_nameable.
            if problem := arguments.not_nameable(path):
                raise ValueError(problem)
            return path
        return value


class DataConfig(Section):
    source: Literal["auto", "cifar10", "folder"] = "auto"
    root: Path = Path("data")
    download: bool = True  # torchvision download (with its md5 check) when nothing is found
    train_subset: int | None = Field(None, ge=1)  # images, stratified by class; None = all
    test_subset: int | None = Field(None, ge=1)
    pad: int = Field(4, ge=0, le=16)  # pixels added on each side before the random 32x32 crop
    pad_mode: Literal["reflect", "zeros"] = "reflect"
    flip: bool = True  # horizontal flip with p = 0.5, per image
    cutout: int = Field(8, ge=0, le=32)  # side of the Cutout square in pixels; 0 = off
    cutout_prob: float = Field(1.0, ge=0, le=1)
    # Skip each epoch's short last batch (336 of 50,000 images at 512, a different one every
    # epoch since the order is reshuffled): every step has the same shape, so compiled and
    # autotuned kernels are reused instead of rebuilt for one odd batch.
    drop_last: bool = True


class ModelConfig(Section):
    name: Literal["resnet9"] = "resnet9"
    width: int = Field(64, ge=1, le=1024)  # channels of the prep layer; the others are 2x, 4x, 8x
    # Page's classifier output multiplier. The logits scale with it, and so does the last
    # layer's gradient: its effective step grows with the square. 10 (6,400 times Page's step
    # at the same lr_max) leaves room to experiment; far beyond, a run only overflows (1e300:
    # NaN at once, and the NaN message blamed schedule.lr_max).
    logit_scale: float = Field(0.125, gt=0, le=10)


class OptimConfig(Section):
    name: Literal["sgd"] = "sgd"
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)  # L2, per unit of the mean batch loss
    decay_norm_and_bias: bool = True  # False: no weight decay on BatchNorm and bias parameters


class ScheduleConfig(Section):
    policy: Literal[
        "one_cycle", "triangular", "triangular2", "exp_range", "constant", "multistep"
    ] = "one_cycle"
    lr_min: LearningRate = 0.004  # start and end of the cycle (lr_max / 100); CLR's base_lr
    lr_max: LearningRate = 0.4  # the peak; the constant / initial value for the baselines
    peak_epoch: float = Field(5.0, gt=0)  # one_cycle: lr reaches lr_max at the end of this epoch
    anneal: Literal["linear", "cos"] = "linear"  # Smith: linear; fastai: cos
    annihilation_epochs: float = Field(0.0, ge=0)  # Smith's third phase; 0 = none
    annihilation_factor: float = Field(100.0, ge=1)  # it ends at lr_min / this
    momentum_max: Momentum = 0.95
    momentum_min: Momentum = 0.85
    cycle_momentum: bool = True  # momentum moves inversely to the lr; False: momentum_max
    step_size_epochs: float = Field(4.0, gt=0, le=100_000)  # CLR: half a cycle; le as epochs
    gamma: float = Field(0.99994, gt=0, le=1)  # exp_range: amplitude x gamma per iteration
    milestones: tuple[float, ...] = (12.0, 18.0)  # multistep: epochs where the lr is multiplied
    decay: float = Field(0.1, gt=0, lt=1)  # multistep factor


class TrainConfig(Section):
    epochs: int = Field(24, ge=1, le=100_000)  # a bound that catches typos, not a real limit
    batch_size: int = Field(512, ge=1)  # images per optimizer step
    eval_batch_size: int = Field(1024, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16/fp16 on GPU, fp32 CPU
    channels_last: bool = True
    compile: bool | Literal["auto"] = "auto"  # torch.compile the model; auto: on CUDA only
    # Inductor's default mode: it fuses the memory-bound BatchNorm/ReLU/pool/residual work and
    # compiles in well under a minute; max-autotune benchmarks conv tilings for minutes, more
    # than a whole GPU run; reduce-overhead adds CUDA graphs (try it on top: see README).
    compile_mode: Literal[
        "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"
    ] = "default"
    # last.pt is written after an epoch once this many seconds passed since the previous save,
    # and always after the last epoch and on SIGINT/SIGTERM/SIGHUP; 0 = after every epoch.
    checkpoint_seconds: float = Field(60.0, ge=0)
    eval_every: int = Field(1, ge=1)  # epochs between test evaluations (the last is always run)
    tta_flip: bool = False  # average the logits of each test image and its mirror
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    deterministic: bool = False  # deterministic kernels: bit-identical CPU runs
    # CPU threads of torch; null: torch's default (the cores, or OMP_NUM_THREADS). Deterministic
    # CPU runs repeat bit for bit at the same count, not across counts (sums split differently).
    cpu_threads: int | None = Field(None, ge=1)


class FinderConfig(Section):
    start_lr: float = Field(1e-4, gt=0)
    end_lr: float = Field(10.0, gt=0)
    num_iters: int = Field(200, ge=5, le=100_000)  # as train.epochs: a bound for typos
    mode: Literal["exp", "linear"] = "exp"
    smoothing: float = Field(0.9, ge=0, lt=1)  # EMA factor of the loss, per step
    diverge: float = Field(4.0, gt=1)  # stop when the running loss exceeds this x the best
    # How to read the curve: the methods of suggest.py
    suggest: Method = "middle"
    tolerance: float = Field(0.1, gt=0, lt=1)  # share of the loss drop marking the edges
    div_factor: float = Field(100.0, gt=1)  # lr_min = lr_max / div_factor, if not from the curve
    momentum: Momentum | None = None  # None: schedule.momentum_max
    # One whole range test each: a list longer than this is a slip (a grid pasted), not a plan.
    weight_decays: tuple[Annotated[float, Field(ge=0)], ...] | None = Field(None, max_length=16)

    @field_validator("weight_decays")
    @classmethod
    def _each_once(cls, values: tuple[float, ...] | None) -> tuple[float, ...] | None:
        """One range test per value: none would test nothing (null tests optim.weight_decay),
        a value twice would test it twice (as find-lr's --weight-decay refuses)."""
        if values is not None and not values:
            raise ValueError("expected at least one weight decay, or null for optim.weight_decay")
        twice = [v for i, v in enumerate(values or ()) if v in values[:i]]
        if twice:
            raise ValueError(f"{twice[0]:g} is listed twice; list each weight decay once")
        return values


class Config(Section):
    name: str = "supercon"  # the run folder's name, after its time stamp
    seed: int = Field(0, ge=0, le=MAX_SEED)
    out: Path = Path("runs")  # parent folder of run directories
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    train: TrainConfig = TrainConfig()
    finder: FinderConfig = FinderConfig()
    # Where each key that load() merged came from (`configs/x.yaml`, `--set`), so that a check
    # after loading (against the data's size) can name it as load()'s own checks do. Not part
    # of the config's value: two configs with the same values are equal wherever they came from.
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Config):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = Section.__hash__

    @field_validator("name")
    @classmethod
    def _one_folder(cls, name: str) -> str:
        if not is_folder_name(name):
            raise ValueError(f"expected {NAME_RULE}")
        return name

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Config:
        # load() runs these checks itself so that it can name the source of each key.
        if not (info.context or {}).get("skip_semantic_checks"):
            problems = semantic_problems(self)
            if problems:
                raise ValueError("; ".join(f"{p.keys[0]}: {p.message}" for p in problems))
        return self


@dataclass(frozen=True)
class Problem:
    keys: tuple[str, ...]  # the dotted keys involved, the one to blame first
    message: str


def semantic_problems(cfg: Config) -> list[Problem]:
    """Checks that involve several fields; each names every key it reads."""
    s, t, problems = cfg.schedule, cfg.train, []
    numeric = isinstance(s.lr_min, float) and isinstance(s.lr_max, float)
    if s.policy in TWO_BOUND_POLICIES and numeric and not s.lr_min < s.lr_max:
        problems.append(
            Problem(
                ("schedule.lr_min", "schedule.lr_max"),
                f"must be less than schedule.lr_max ({s.lr_max:g}), got {s.lr_min:g}",
            )
        )
    searched = s.lr_max == AUTO and isinstance(s.lr_min, float)
    if s.policy in TWO_BOUND_POLICIES and searched and not s.lr_min < cfg.finder.end_lr:
        problems.append(
            Problem(
                ("schedule.lr_min", "finder.end_lr"),
                f"must be less than finder.end_lr ({cfg.finder.end_lr:g}), the largest lr_max "
                f"the range test can suggest, got {s.lr_min:g}",
            )
        )
    if s.momentum_min > s.momentum_max:
        problems.append(
            Problem(
                ("schedule.momentum_min", "schedule.momentum_max"),
                f"must not exceed schedule.momentum_max ({s.momentum_max:g}), "
                f"got {s.momentum_min:g}",
            )
        )
    if s.policy == "one_cycle":
        last = t.epochs - s.annihilation_epochs
        if s.annihilation_epochs >= t.epochs:
            problems.append(
                Problem(
                    ("schedule.annihilation_epochs", "train.epochs"),
                    f"must be less than train.epochs ({t.epochs}), got {s.annihilation_epochs:g}",
                )
            )
        elif not s.peak_epoch < last:
            where = (
                f"train.epochs ({t.epochs})"
                if s.annihilation_epochs == 0
                else f"train.epochs - schedule.annihilation_epochs ({last:g})"
            )
            problems.append(
                Problem(
                    ("schedule.peak_epoch", "train.epochs", "schedule.annihilation_epochs"),
                    f"must be between 0 and {where}, exclusive, got {s.peak_epoch:g}",
                )
            )
    if s.policy == "multistep":
        ms = s.milestones
        if any(b <= a for a, b in itertools.pairwise(ms)) or any(not 0 < m < t.epochs for m in ms):
            problems.append(
                Problem(
                    ("schedule.milestones", "train.epochs"),
                    f"must increase strictly and lie inside (0, train.epochs = {t.epochs}), "
                    f"got {list(ms)}",
                )
            )
    if not cfg.finder.start_lr < cfg.finder.end_lr:
        problems.append(
            Problem(
                ("finder.start_lr", "finder.end_lr"),
                f"must be less than finder.end_lr ({cfg.finder.end_lr:g}), "
                f"got {cfg.finder.start_lr:g}",
            )
        )
    subset = cfg.data.train_subset
    if subset is not None and t.batch_size > subset:
        problems.append(
            Problem(
                ("train.batch_size", "data.train_subset"),
                f"must not exceed the training set (data.train_subset = {subset}), "
                f"got {t.batch_size}",
            )
        )
    return problems


# --------------------------------------------------------------------------------------------
# Loading: YAML files merged left to right, then overrides, every problem reported at once.


@dataclass(frozen=True)
class Override:
    key: str  # dotted, e.g. "schedule.lr_max"
    value: Any
    source: str  # what the user typed it as, e.g. "--set" or "--epochs"


# Nodes a YAML document may hold once its aliases are written out: a whole config is under 200
# (keys, values, sections); nested aliases can multiply that without bound (a "billion laughs":
# 16 levels of two took 7.5 s and 860 MB, 22 ran out of memory).
MAX_YAML_NODES = 10_000
# A whole config is a few kB: /dev/zero, /dev/urandom or a data file given by mistake would
# otherwise be read until memory runs out.
MAX_CONFIG_BYTES = 1 << 20
MERGE_TAG = "tag:yaml.org,2002:merge"  # `<<`


class _TooLarge(yaml.YAMLError):
    """A document larger than MAX_YAML_NODES once its aliases are expanded."""


class _StrictLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice in one mapping is an error, and so is a
    document whose aliases expand it past MAX_YAML_NODES."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.merged: dict[yaml.MappingNode, int] = {}  # per mapping: pairs its `<<` keys gave

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """YAML merge keys (`<<: *base`): the merged pairs go first, so that the mapping's own
        keys override them. Counted, so that only a key given twice among its own is refused."""
        if node not in self.merged:  # a mapping merged twice is flattened once
            # Two `<<` keys in one mapping are a key given twice, as any other: PyYAML would
            # merge both, the last one's values winning. Several bases go in one list,
            # `<<: [*a, *b]`, where the order is the rule (the first one's values win).
            merges = [key for key, _ in node.value if key.tag == MERGE_TAG]
            if len(merges) > 1:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {merges[1].value!r} appears twice in one mapping; merge several "
                    "mappings with one: <<: [*a, *b]",
                    merges[1].start_mark,
                )
            own = len(node.value) - len(merges)
            super().flatten_mapping(node)
            # PyYAML keeps the first of the merged pairs that share a key by the key string's
            # identity, not its value: `epochs` read twice is two strings, both kept, and the
            # last base then wins. Keep the first by value, as the merge key's rule says, and
            # none that the mapping gives itself (so that a mapping merged in turn into
            # another brings its own values, not those it overrode).
            split = len(node.value) - own
            seen = {_identity(key) for key, _ in node.value[split:]}
            merged = []
            for key, value in node.value[:split]:
                if _identity(key) not in seen:
                    seen.add(_identity(key))
                    merged.append((key, value))
            node.value[:split] = merged
            self.merged[node] = len(merged)

    def construct_document(self, node: yaml.Node) -> Any:
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise _TooLarge(
                f"more than {MAX_YAML_NODES:,} values once its aliases are expanded, where a "
                "whole config has under 200: use fewer aliases"
            )
        return super().construct_document(node)


def _identity(key: yaml.Node) -> object:
    """What makes two keys the same key: a scalar's tag and text (a list or a mapping as a key
    is refused when the mapping is built, so each is only itself)."""
    return (key.tag, key.value) if isinstance(key, yaml.ScalarNode) else id(key)


def _expanded_size(node: yaml.Node, sizes: dict[yaml.Node, int]) -> int:
    """Nodes under `node` with every alias written out, counted without writing them: an aliased
    node is one object however often it is used, so each is counted once and remembered."""
    if node not in sizes:
        sizes[node] = 1  # a recursive alias meets itself as one node (construction refuses it)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        sizes[node] = 1 + sum(_expanded_size(child, sizes) for child in children)
    return sizes[node]


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    mapping: dict = {}
    own: set[str] = set()
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key!r} is not a name (keys are words like lr_max)",
                key_node.start_mark,
            )
        if index >= loader.merged[node]:
            if key in own:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            own.add(key)
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_text(path: Path) -> str:
    """A config file's text (every config file, a run's config.yaml too, is read here): at
    most MAX_CONFIG_BYTES, and UTF-8; anything else is one line naming the file."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)  # one byte more tells a file that is too long
    except FileNotFoundError:
        raise ConfigError([f"{path}: config file not found"]) from None
    except OSError as e:  # a folder, no permission, a link loop, a name too long
        raise ConfigError([f"{path}: cannot read the config file ({e.strerror or e})"]) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            [
                f"{path}: cannot read the config file (more than {MAX_CONFIG_BYTES:,} bytes; "
                "a config is a few kB of YAML)"
            ]
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            [f"{path}: cannot read the config file (not UTF-8 text: byte {e.start})"]
        ) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    text = read_text(path)
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except _TooLarge as e:
        raise ConfigError([f"{path}: {e}"]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        what = getattr(e, "problem", None) or first_line(e)
        raise ConfigError([f"{path}: {where}not valid YAML ({what})"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: not valid YAML (nested too deeply)"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            [
                f"{path}: the top level must be a mapping of sections "
                f"(data, model, optim, schedule, train, finder), got a {type(data).__name__}"
            ]
        )
    return data


def parse_set(assignment: str, option: str = "--set") -> Override:
    """`--set KEY=VALUE`: a dotted key that names one value, and a value read as a YAML scalar or
    flow list. `option` names the flag in messages (`--grid` reads its values the same way)."""
    key, sep, text = assignment.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not sep or not key or not all(p.isidentifier() for p in parts):
        example = (
            "--set schedule.lr_max=0.4" if option.startswith("--") else "'schedule.lr_max=0.4'"
        )
        raise ConfigError(
            [f"{option} {quoted(assignment)}: expected KEY=VALUE with a dotted key, e.g. {example}"]
        )
    check_key(key, option)
    return Override(key, parse_value(text, f"{option} {quoted(assignment)}"), option)


def parse_value(text: str, where: str) -> Any:
    """A value typed on the command line, read as a YAML scalar or flow list; `where` names what
    was typed in messages (`--set 'train.epochs=x'`, `--lr-max ''`)."""
    if not text.strip():
        raise ConfigError([f"{where}: the value is empty"])
    if not_utf8(text):
        # A byte that is not UTF-8 (a path typed with one) is no YAML, which is Unicode text:
        # the value is that text, and its key's check says what it makes of it (a path key
        # refuses it, naming the key, as from any other source).
        return text
    try:
        # `null` (or `~`) is a value: it unsets an optional key, e.g. data.train_subset=null
        # trains on all images again after a config that took a subset.
        value = yaml.load(text, Loader=_StrictLoader)
    except (yaml.YAMLError, RecursionError):
        raise ConfigError([f"{where}: the value is not valid YAML"]) from None
    if isinstance(value, Mapping):
        raise ConfigError([f"{where}: a mapping is not a value; set one key at a time"])
    return value


def flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            # An empty section (`schedule: {}`) sets nothing: it must not reset what came before.
            yield from flatten(value, dotted + ".")
        else:
            yield dotted, value


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> bool:
    """Set `key` in the nested tree. False, leaving the tree as it is, where an earlier source
    gave the key's place the wrong shape: a section as a value (`train: 5`, then `train.device`
    set) or a value as a mapping (`seed: {a: 1}`, then `seed` set). That source's error must
    stay to be reported, not be replaced by a later source's key."""
    *parents, leaf = key.split(".")
    node = tree
    for depth, part in enumerate(parents):
        child = node.get(part)
        if not isinstance(child, dict):
            if part in node and _kind(parents[: depth + 1]) == "section":
                return False
            child = node[part] = {}  # a value given as a mapping here: this source's error
        node = child
    if isinstance(node.get(leaf), dict) and _kind([*parents, leaf]) == "value":
        return False
    node[leaf] = value
    return True


def _record(origins: dict[str, str], key: str, source: str) -> None:
    """`source` set `key`: and so the section above it too, where it replaced a value there
    (`seed: {a: 1}` after `seed: 3`), which is then no longer the earlier source's."""
    parts = key.split(".")
    for n in range(1, len(parts)):
        origins.pop(".".join(parts[:n]), None)
    origins.pop(key, None)  # keep the dict in the order keys were last set
    origins[key] = source


def _kind(parts: Sequence[str]) -> str | None:
    """'section' or 'value' for a config key given by its parts, None for an unknown key."""
    model: type[BaseModel] = Config
    for depth, part in enumerate(parts):
        field = model.model_fields.get(part)
        annotation = field.annotation if field is not None else None
        is_section = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if field is None or (depth < len(parts) - 1 and not is_section):
            return None
        if is_section:
            model = annotation
    return "section" if is_section else "value"


def _check_overrides(overrides: Sequence[Override]) -> list[str]:
    """A key given twice with different values, or a key and one of its parents, conflicts."""
    problems, seen = [], {}
    for o in overrides:
        for key, prior in seen.items():
            related = o.key.startswith(key + ".") or key.startswith(o.key + ".")
            if (key == o.key and prior.value != o.value) or related:
                problems.append(
                    f"{o.source}: {o.key}: conflicts with {prior.source} {prior.key}="
                    f"{prior.value!r} (give each key once)"
                )
        seen.setdefault(o.key, o)
    return problems


def _origin_of(key: str, origins: Mapping[str, str]) -> str:
    """The source that set `key`, or the closest parent or child key that was set."""
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in origins:
            return origins[".".join(parts[:n])]
    for set_key, source in origins.items():
        if set_key.startswith(key + "."):
            return source
    return DEFAULTS


def check_key(key: str, source: str) -> None:
    """Refuse a dotted key that names no config value (a section is not a value either)."""
    model: type[BaseModel] = Config
    parts = key.split(".")
    for depth, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            where = ".".join(parts[: depth + 1])
            raise ConfigError([f"{source}: {where}: unknown key ({_suggest(parts[: depth + 1])})"])
        annotation = field.annotation
        is_section = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if is_section != (depth < len(parts) - 1):
            what = "a section, not a value" if is_section else "a value, not a section"
            raise ConfigError([f"{source}: {'.'.join(parts[: depth + 1])}: is {what}"])
        if is_section:
            model = annotation


def takes_list(key: str) -> bool:
    """Whether a dotted key that `check_key` accepts names a list of values
    (schedule.milestones)."""
    model: type[BaseModel] = Config
    *sections, leaf = key.split(".")
    for part in sections:
        model = model.model_fields[part].annotation
    return _is_list(model.model_fields[leaf].annotation)


def _allowed_keys(loc: Sequence[str | int]) -> list[str]:
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _suggest(loc: Sequence[str]) -> str:
    """The key meant: the same name in another section (optim.batch_size -> train.batch_size),
    else a close name in this section, else a close name anywhere, else what is allowed here."""
    allowed = _allowed_keys(loc)
    everywhere = [f"{name}.{key}" for name, section in _sections() for key in section.model_fields]
    elsewhere = [k for k in everywhere if k.endswith("." + loc[-1])]
    close = difflib.get_close_matches(loc[-1], allowed, n=1, cutoff=0.6)
    if not close and not elsewhere:
        by_name = {k.split(".")[1]: k for k in everywhere}
        near = difflib.get_close_matches(loc[-1], list(by_name), n=1, cutoff=0.75)
        elsewhere = [by_name[near[0]]] if near else []
    if elsewhere and not close:
        return f"did you mean '{elsewhere[0]}'?"
    return f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(allowed)}"


def _sections() -> list[tuple[str, type[BaseModel]]]:
    return [
        (name, field.annotation)
        for name, field in Config.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    ]


def _describe(error: Mapping[str, Any]) -> tuple[str, str]:
    """(dotted key, `what is wrong (what is allowed)`) for one pydantic error."""
    loc = [str(p) for p in error["loc"]]
    key = ".".join(loc)
    if error["type"] == "extra_forbidden":
        return key, f"unknown key ({_suggest(loc)})"
    message = error["msg"].removeprefix("Value error, ")
    message = message[0].lower() + message[1:] if message else message
    if error["type"] == "model_type":
        return key, "expected a mapping of keys to values"
    if error["type"] == "too_long":  # pydantic: "tuple should have at most 16 items after ..."
        context = error.get("ctx") or {}
        message = f"at most {context.get('max_length')} values, not {context.get('actual_length')}"
    if not loc:  # a check across keys: its message names them; the input is the whole config
        return key, message
    given = error["input"]
    if isinstance(given, datetime.date):
        shown = given.isoformat()  # as in YAML
    else:  # a path's undecodable byte as \xff
        shown = quoted(given) if isinstance(given, str) else repr(given)
    return key, f"{message} (got {shown})"


# What the Python API takes as a config: a YAML file's path, a mapping of sections (a YAML
# file's content), a Config, or a list of them merged left to right.
CONFIG_KINDS = (
    "a YAML path, a mapping of sections such as {'train': {'epochs': 3}}, a Config, "
    "or a list of them"
)
OVERRIDE_KINDS = (
    "a mapping {dotted key: value} such as {'train.epochs': 3}, or a list of 'KEY=VALUE' "
    "texts such as ['train.epochs=3']"
)


def config_sources(given: Any, name: str = "config") -> list[Path | Mapping[str, Any]]:
    """The config sources an API call names, as a list of paths and mappings (a Config as the
    mapping of its values); `name` is the argument, for messages. A str is one path, never a
    list of one-letter paths."""
    listed = arguments.is_list(given) and not isinstance(given, BaseModel)  # a model iterates
    items = given if listed else [] if given is None else [given]
    found: list[Path | Mapping[str, Any]] = []
    for item in items:
        if isinstance(item, Config):
            found.append(to_dict(item))
        elif isinstance(item, Mapping):
            if bad := [k for k in item if not isinstance(k, str)]:
                raise UsageError(
                    f"{name} {arguments.shown(given)}: key {bad[0]!r} is not a name (keys "
                    "are words like train or lr_max)"
                )
            found.append(item)
        elif isinstance(item, str | os.PathLike):
            found.append(arguments.path(item, name))
        else:
            raise UsageError(f"{name} {arguments.shown(given)}: expected {CONFIG_KINDS}")
    return found


def as_overrides(overrides: Any, name: str = "overrides") -> list[Override]:
    """Overrides as the Python API takes them, as a list of Overrides: a mapping {dotted key:
    value} (a nested mapping's keys joined with dots, as in a YAML file), 'KEY=VALUE' texts
    read as --set reads them, (key, value) pairs, or Overrides; None for none."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        if bad := [k for k in overrides if not isinstance(k, str)]:
            raise UsageError(
                f"{name} {arguments.shown(overrides)}: key {bad[0]!r} is not a dotted key "
                "such as 'train.epochs'"
            )
        return [Override(k, v, name) for k, v in flatten(overrides)]
    items = [overrides] if isinstance(overrides, str) else overrides
    if not arguments.is_list(items):
        raise UsageError(f"{name} {arguments.shown(overrides)}: expected {OVERRIDE_KINDS}")
    found = []
    for item in items:
        if isinstance(item, Override):
            found.append(item)
        elif isinstance(item, str):
            found.append(parse_set(item, name))
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            found.append(Override(item[0], item[1], name))
        else:
            raise UsageError(
                f"{name} {arguments.shown(overrides)}: {arguments.shown(item)} is no override; "
                f"expected {OVERRIDE_KINDS}"
            )
    return found


def load(
    paths: Any = (),
    overrides: Any = (),
    base: Config | None = None,
) -> Config:
    """Defaults (or `base`) <- each config source in order <- overrides, validated.

    `paths`: YAML files, mappings of sections, Configs (see `config_sources`); `overrides`: see
    `as_overrides`. Raises ConfigError naming every problem, UsageError for an argument of the
    wrong kind.
    """
    given = config_sources(paths, "paths")
    overrides = as_overrides(overrides)
    if base is not None and not isinstance(base, Config):
        raise UsageError(f"base {arguments.shown(base)}: expected a Config, or None")
    merged: dict[str, Any] = to_dict(base) if base is not None else {}
    origins: dict[str, str] = dict(base._origins) if base is not None else {}
    problems: list[str] = []
    for index, source in enumerate(given):
        if isinstance(source, Path):
            try:
                data = _read_yaml(source)
            except ConfigError as e:
                problems += e.problems
                continue
            label = str(source)
        else:  # a mapping the API was given: named as the argument, [its place] among several
            data, label = source, "config" if len(given) == 1 else f"config[{index}]"
        pairs = list(flatten(data))
        # In one file, `train.epochs: 3` beside `train: {epochs: 4}` sets one key twice, as a key
        # given twice in one mapping does: refused, not settled by the order they come in.
        problems += _check_overrides([Override(k, v, label) for k, v in pairs])
        for key, value in pairs:
            if _set_dotted(merged, key, value):
                _record(origins, key, label)
    problems += _check_overrides(overrides)
    for o in overrides:
        if _set_dotted(merged, o.key, o.value):
            _record(origins, o.key, o.source)
    if problems:
        raise ConfigError(problems)
    if "name" not in merged and given and isinstance(given[0], Path) and base is None:
        merged["name"] = name_from_file(given[0])  # runs are named after their config

    try:
        cfg = Config.model_validate(merged, context={"skip_semantic_checks": True})
        bad_keys: set[str] = set()
    except ValidationError as e:
        described = [_describe(err) for err in e.errors()]
        problems += [f"{_origin_of(key, origins)}: {key}: {what}" for key, what in described]
        bad_keys = {key for key, _ in described}
        # Drop the invalid keys and check the rest together, so one typo does not hide the
        # cross-field problems elsewhere.
        cfg = Config.model_validate(
            _without(merged, bad_keys), context={"skip_semantic_checks": True}
        )
    for p in semantic_problems(cfg):
        # A key that was invalid, or lies in a section that was (`train: 5`), stood at its
        # default here: a problem it is part of would be about a value nobody gave.
        if not any(k == bad or k.startswith(f"{bad}.") for k in p.keys for bad in bad_keys):
            # Blame the source applied last among the keys involved: the change that broke it.
            sources = [_origin_of(k, origins) for k in p.keys]
            applied = list(origins.values())
            user_set = [src for src in sources if src != DEFAULTS]
            source = max(user_set, key=_last_index(applied)) if user_set else DEFAULTS
            # The other keys' sources too: `--epochs: schedule.annihilation_epochs: ...` alone
            # reads as if --epochs had set annihilation_epochs.
            others = [
                f"{key} from {src}"
                for key, src in zip(p.keys, sources, strict=True)
                if src not in (source, DEFAULTS)
            ]
            where = f" ({'; '.join(others)})" if others else ""
            problems.append(f"{source}: {p.keys[0]}: {p.message}{where}")
    if problems:
        raise ConfigError(problems)
    cfg._origins = origins
    return cfg


@contextlib.contextmanager
def blamed(cfg: Config) -> Iterator[None]:
    """A ValueRefused raised inside names the source that set its key, as load()'s problems do:
    `--set: data.train_subset: 60000 is outside 1..50000 (the train split's size)`."""
    try:
        yield
    except ValueRefused as e:
        raise ConfigError([f"{_origin_of(e.key, cfg._origins)}: {e.key}: {e.what}"]) from None


def name_from_file(path: Path) -> str:
    """The run name a config file gives: its stem in the letters a name may hold (`my conf.yaml`
    -> my-conf, `ünï.yaml` -> uni, `.hidden.yaml` -> hidden), cut to MAX_NAME_LENGTH, or the
    default name when nothing is left. The user never typed this name, so it must not fail
    validation."""
    letters = "".join(
        c for c in unicodedata.normalize("NFKD", path.stem) if not unicodedata.combining(c)
    )
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", letters).lstrip("._-")[:MAX_NAME_LENGTH]
    return name or Config.model_fields["name"].default


def _last_index(items: list[str]) -> Callable[[str], int]:
    return lambda item: len(items) - 1 - items[::-1].index(item)


def _without(tree: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    pruned: dict[str, Any] = {}
    for key, value in flatten(tree):
        if not any(key == k or key.startswith(k + ".") or k.startswith(key + ".") for k in keys):
            _set_dotted(pruned, key, value)
    return pruned


def to_dict(cfg: Config) -> dict[str, Any]:
    """Plain, YAML- and checkpoint-safe values (paths as strings)."""
    return cfg.model_dump(mode="json")


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def from_dict(data: Mapping[str, Any], source: str) -> Config:
    """A config saved by this tool (a run's config.yaml, a checkpoint), validated again."""
    try:
        cfg = Config.model_validate(dict(data))
    except ValidationError as e:
        raise ConfigError(
            [
                f"{source}: {key}: {what}" if key else f"{source}: {what}"
                for key, what in map(_describe, e.errors())
            ]
        ) from None
    cfg._origins = {key: source for key, _ in flatten(dict(data))}
    return cfg


def replace(cfg: Config, source: str, **sections: Mapping[str, Any]) -> Config:
    """A copy with some section fields changed, validated again; errors name `source`.

    replace(cfg, "LR range test", schedule={"lr_max": 0.5})
    """
    data = to_dict(cfg)
    for name, changes in sections.items():
        data[name] = {**data[name], **changes}
    changed = from_dict(data, source)
    changed._origins = dict(cfg._origins)
    for name, changes in sections.items():
        for key in changes:
            _record(changed._origins, f"{name}.{key}", source)
    return changed
