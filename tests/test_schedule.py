"""Schedules against torch.optim.lr_scheduler, step for step; Scheduler; plot-schedule CLI."""

from __future__ import annotations

import csv
import io
import itertools
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import REPO
from PIL import Image
from typer.testing import CliRunner

from cifar_supercon import schedule
from cifar_supercon.cli import app
from cifar_supercon.config import Config, ScheduleConfig
from cifar_supercon.errors import ConfigError
from cifar_supercon.schedule import Cyclic, LrMomentum, MultiStep, OneCycle, Scheduler

REL = 1e-9
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DEFAULT_YAML = REPO / "configs" / "default.yaml"


def torch_values(
    make: Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler],
    steps: int,
    lr: float = 0.123,
    momentum: float = 0.9,
) -> list[LrMomentum]:
    """(lr, momentum) torch uses for updates 0 .. steps-1: read, optimizer.step(), then step()."""
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([param], lr=lr, momentum=momentum)
    scheduler = make(optimizer)
    values = []
    for k in range(steps):
        group = optimizer.param_groups[0]
        values.append(LrMomentum(group["lr"], group["momentum"]))
        if k < steps - 1:
            param.grad = torch.ones_like(param)
            optimizer.step()
            scheduler.step()
    return values


def mismatches(ours: list[float], theirs: list[float]) -> list[tuple[int, float, float]]:
    assert len(ours) == len(theirs)
    return [
        (k, a, b)
        for k, (a, b) in enumerate(zip(ours, theirs, strict=True))
        if not math.isclose(a, b, rel_tol=REL, abs_tol=0.0)
    ]


def assert_same_lr(ours: list[LrMomentum], theirs: list[LrMomentum]) -> None:
    bad = mismatches([v.lr for v in ours], [v.lr for v in theirs])
    assert not bad, f"lr differs at {len(bad)} steps, first (step, ours, torch): {bad[:3]}"


def assert_same(ours: list[LrMomentum], theirs: list[LrMomentum]) -> None:
    assert_same_lr(ours, theirs)
    bad = mismatches([v.momentum for v in ours], [v.momentum for v in theirs])
    assert not bad, f"momentum differs at {len(bad)} steps, first (step, ours, torch): {bad[:3]}"


def trace(sched: schedule.Schedule, steps: int) -> list[LrMomentum]:
    return [sched(k) for k in range(steps)]


# OneCycle vs OneCycleLR -----------------------------------------------------------------------

TWO_PHASE = [
    # total_steps, peak_step, lr_min, lr_max, anneal, momentum_min, momentum_max
    (200, 59, 0.04, 0.4, "linear", 0.85, 0.95),
    (200, 59, 0.04, 0.4, "cos", 0.85, 0.95),
    (157, 40, 0.01, 0.5, "cos", 0.8, 0.95),
    (33, 1, 0.003, 0.03, "linear", 0.5, 0.9),
    (2328, 484, 0.004, 0.4, "linear", 0.85, 0.95),  # the assignment
]


@pytest.mark.parametrize("cycle_momentum", [True, False])
@pytest.mark.parametrize(
    ("total", "peak", "lr_min", "lr_max", "anneal", "m_min", "m_max"), TWO_PHASE
)
def test_one_cycle_two_phase_equals_torch(
    total, peak, lr_min, lr_max, anneal, m_min, m_max, cycle_momentum
):
    ours = OneCycle(
        total_steps=total,
        peak_step=peak,
        lr_min=lr_min,
        lr_max=lr_max,
        anneal=anneal,
        momentum_min=m_min,
        momentum_max=m_max,
        cycle_momentum=cycle_momentum,
    )
    theirs = torch_values(
        lambda opt: torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=lr_max,
            total_steps=total,
            pct_start=(peak + 1) / total,
            anneal_strategy=anneal,
            cycle_momentum=cycle_momentum,
            base_momentum=m_min,
            max_momentum=m_max,
            div_factor=lr_max / lr_min,
            final_div_factor=1.0,  # no annihilation: the cycle ends where it started
        ),
        total,
        momentum=0.5,
    )
    values = trace(ours, total)
    if cycle_momentum:
        assert_same(values, theirs)
    else:
        assert_same_lr(values, theirs)
        assert {v.momentum for v in values} == {m_max}
        assert {v.momentum for v in theirs} == {0.5}  # torch leaves the optimizer's alone
    assert values[0].lr == pytest.approx(lr_min, rel=1e-12)
    assert values[peak].lr == pytest.approx(lr_max, rel=1e-12)
    assert values[-1].lr == pytest.approx(lr_min, rel=1e-12)


THREE_PHASE = [
    # total_steps, pct_start (pct_start * total_steps is an integer), lr_max, div, final_div, anneal
    (200, 0.25, 0.4, 10.0, 100.0, "linear"),
    (200, 0.25, 0.4, 10.0, 100.0, "cos"),
    (120, 0.3, 1.0, 25.0, 1e4, "cos"),
    (160, 0.125, 0.08, 8.0, 3.0, "linear"),
]


@pytest.mark.parametrize("cycle_momentum", [True, False])
@pytest.mark.parametrize(("total", "pct", "lr_max", "div", "final_div", "anneal"), THREE_PHASE)
def test_one_cycle_three_phase_equals_torch(
    total, pct, lr_max, div, final_div, anneal, cycle_momentum
):
    rise = round(pct * total)
    assert rise == pct * total
    ours = OneCycle(
        total_steps=total,
        peak_step=rise - 1,
        lr_min=lr_max / div,
        lr_max=lr_max,
        annihilation_steps=total + 1 - 2 * rise,
        annihilation_factor=final_div,
        anneal=anneal,
        momentum_min=0.85,
        momentum_max=0.95,
        cycle_momentum=cycle_momentum,
    )
    theirs = torch_values(
        lambda opt: torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=lr_max,
            total_steps=total,
            pct_start=pct,
            anneal_strategy=anneal,
            cycle_momentum=cycle_momentum,
            base_momentum=0.85,
            max_momentum=0.95,
            div_factor=div,
            final_div_factor=final_div,
            three_phase=True,
        ),
        total,
        momentum=0.5,
    )
    values = trace(ours, total)
    if cycle_momentum:
        assert_same(values, theirs)
    else:
        assert_same_lr(values, theirs)
        assert {v.momentum for v in values} == {0.95}
    assert values[-1].lr == pytest.approx(lr_max / div / final_div, rel=1e-12)
    # momentum is held at its maximum through the annihilation phase
    descent_end = 2 * rise - 2
    assert {v.momentum for v in values[descent_end:]} == {0.95}


# Cyclic vs CyclicLR, MultiStep vs MultiStepLR -------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "step_size", "gamma", "cycles"),
    [
        ("triangular", 7, 1.0, 5),
        ("triangular", 1, 1.0, 4),
        ("triangular2", 10, 1.0, 4),
        ("triangular2", 3, 1.0, 6),
        ("exp_range", 8, 0.97, 4),
        ("exp_range", 25, 0.999, 3),
    ],
)
def test_cyclic_equals_torch(mode, step_size, gamma, cycles):
    base_lr, max_lr, m_min, m_max = 0.02, 0.3, 0.8, 0.95
    steps = cycles * 2 * step_size + step_size // 2 + 1  # into the next cycle as well
    ours = Cyclic(base_lr, max_lr, step_size, mode, gamma, momentum_max=m_max, momentum_min=m_min)
    theirs = torch_values(
        lambda opt: torch.optim.lr_scheduler.CyclicLR(
            opt,
            base_lr=base_lr,
            max_lr=max_lr,
            step_size_up=step_size,
            mode=mode,
            gamma=gamma,
            cycle_momentum=True,
            base_momentum=m_min,
            max_momentum=m_max,
        ),
        steps,
    )
    values = trace(ours, steps)
    assert_same(values, theirs)
    assert values[0] == (base_lr, m_max)
    assert values[2 * step_size] == (base_lr, m_max)  # back at the bottom after one cycle
    if mode == "triangular":
        assert values[step_size].lr == pytest.approx(max_lr, rel=1e-12)
        assert values[step_size].momentum == pytest.approx(m_min, rel=1e-12)


def test_cyclic_without_cyclic_momentum_keeps_momentum_max():
    ours = Cyclic(0.01, 0.1, 5, "triangular2", momentum_max=0.9, cycle_momentum=False)
    theirs = torch_values(
        lambda opt: torch.optim.lr_scheduler.CyclicLR(
            opt, base_lr=0.01, max_lr=0.1, step_size_up=5, mode="triangular2", cycle_momentum=False
        ),
        40,
    )
    values = trace(ours, 40)
    assert_same_lr(values, theirs)
    assert {v.momentum for v in values} == {0.9}


@pytest.mark.parametrize(
    ("lr", "milestones", "decay", "steps"),
    [
        (0.1, (5, 12, 20), 0.1, 30),
        (0.4, (1, 2, 3), 0.5, 8),
        (0.05, (), 0.1, 10),
        (0.2, (7,), 0.3, 7),
    ],
)
def test_multistep_equals_torch(lr, milestones, decay, steps):
    ours = MultiStep(lr, milestones, decay, momentum=0.9)
    theirs = torch_values(
        lambda opt: torch.optim.lr_scheduler.MultiStepLR(
            opt, milestones=list(milestones), gamma=decay
        ),
        steps,
        lr=lr,  # MultiStepLR decays the optimizer's own lr
        momentum=0.9,
    )
    values = trace(ours, steps)
    assert_same(values, theirs)
    assert values[0].lr == lr
    assert {v.momentum for v in values} == {0.9}


# build() and the assignment --------------------------------------------------------------------


def test_steps_per_epoch():
    assert schedule.steps_per_epoch(50_000, 512, False) == 98
    assert schedule.steps_per_epoch(50_000, 512, True) == 97
    assert schedule.steps_per_epoch(1024, 512, False) == 2
    assert schedule.steps_per_epoch(1024, 512, True) == 2
    for drop_last in (False, True):  # no full batch: an epoch of one short step, or of none
        with pytest.raises(
            ConfigError,
            match=r"train.batch_size: 512 is larger than the training set \(100 images\)",
        ):
            schedule.steps_per_epoch(100, 512, drop_last)


def test_assignment_schedule():
    # 97 steps per epoch: 50,000 images at batch 512, the short last batch dropped.
    sched = schedule.build(Config().schedule, 24, 97)
    assert isinstance(sched, OneCycle)
    assert (sched.total_steps, sched.peak_step, sched.annihilation_steps) == (2328, 484, 0)
    values = trace(sched, 2328)
    with pytest.raises(ValueError, match="outside"):
        sched(2328)
    assert values[0] == (0.004, 0.95)
    assert values[484].lr == pytest.approx(0.4, rel=1e-12)
    assert values[484].momentum == pytest.approx(0.85, rel=1e-12)
    assert values[2327].lr == pytest.approx(0.004, rel=1e-12)
    assert values[2327].momentum == pytest.approx(0.95, rel=1e-12)
    # step 484 is the last step of epoch 5 (1-based) and the only peak
    assert 484 // 97 + 1 == 5 and 485 // 97 + 1 == 6
    lrs = [v.lr for v in values]
    assert max(range(2328), key=lrs.__getitem__) == 484
    assert all(a < b for a, b in itertools.pairwise(lrs[:485]))
    assert all(a > b for a, b in itertools.pairwise(lrs[484:]))
    momenta = [v.momentum for v in values]
    assert all(a > b for a, b in itertools.pairwise(momenta[:485]))
    assert all(a < b for a, b in itertools.pairwise(momenta[484:]))
    assert min(lrs) == pytest.approx(0.004, rel=1e-12)
    assert min(momenta) == pytest.approx(0.85, rel=1e-12)


def test_build_other_policies():
    cfg = ScheduleConfig(
        policy="one_cycle", peak_epoch=1.5, annihilation_epochs=2, anneal="cos", lr_max=1.0
    )
    sched = schedule.build(cfg, 10, 20)
    assert sched == OneCycle(
        total_steps=200,
        peak_step=29,
        lr_min=0.004,
        lr_max=1.0,
        annihilation_steps=40,
        annihilation_factor=100.0,
        anneal="cos",
    )
    tri = schedule.build(ScheduleConfig(policy="triangular"), 24, 98)
    assert tri == Cyclic(0.004, 0.4, 392, "triangular", gamma=0.99994)
    exp = schedule.build(ScheduleConfig(policy="exp_range", step_size_epochs=0.001), 24, 98)
    assert isinstance(exp, Cyclic) and exp.step_size == 1 and exp.mode == "exp_range"
    multi = schedule.build(ScheduleConfig(policy="multistep", milestones=(1.5, 3)), 4, 10)
    assert multi == MultiStep(0.4, (15, 30), 0.1, 0.95)
    const = schedule.build(ScheduleConfig(policy="constant", milestones=(1.5, 3)), 4, 10)
    assert const == MultiStep(0.4, (), 0.1, 0.95)
    assert {const(k) for k in range(40)} == {(0.4, 0.95)}


# Scheduler ------------------------------------------------------------------------------------


def test_scheduler_drives_sgd():
    sched = OneCycle(total_steps=30, peak_step=9, lr_min=0.05, lr_max=0.5)
    first = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    second = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    optimizer = torch.optim.SGD(
        [{"params": [first]}, {"params": [second], "lr": 9.0, "momentum": 0.1}],
        lr=1.0,
        momentum=0.5,
    )
    scheduler = Scheduler(optimizer, sched)
    params = [first, second]
    grads = [torch.tensor(g, dtype=torch.float64) for g in ([1.0, -2.0, 0.5], [3.0, 0.25])]
    expected = [torch.zeros_like(p) for p in params]
    buffers: list[torch.Tensor | None] = [None, None]
    for k in range(30):
        assert scheduler.steps_done == k
        values = scheduler.step()
        assert values == sched(k)
        assert scheduler.steps_done == k + 1
        for group in optimizer.param_groups:
            assert group["lr"] == values.lr
            assert group["momentum"] == values.momentum
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            p.grad = g.clone()
            # torch SGD (dampening 0, no Nesterov): buf = momentum * buf + g; p -= lr * buf
            previous = buffers[i]
            buffers[i] = g.clone() if previous is None else values.momentum * previous + g
            expected[i] = expected[i] - values.lr * buffers[i]
        optimizer.step()
        for p, want in zip(params, expected, strict=True):
            torch.testing.assert_close(p.detach(), want, rtol=1e-12, atol=1e-12)


def test_scheduler_state_round_trip():
    sched = Cyclic(0.01, 0.1, 6, "triangular2")

    def make() -> Scheduler:
        param = torch.nn.Parameter(torch.zeros(1))
        return Scheduler(torch.optim.SGD([param], lr=0.5, momentum=0.5), sched)

    original = make()
    for _ in range(17):
        original.step()
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert state == {"steps_done": 17}

    restored = make()
    restored.load_state_dict(state)
    assert restored.steps_done == 17
    for k in range(17, 40):
        expected = original.step()
        assert restored.step() == expected == sched(k)
        group = restored.optimizer.param_groups[0]
        assert (group["lr"], group["momentum"]) == expected


@pytest.mark.parametrize("optimizer_class", [torch.optim.Adam, torch.optim.AdamW])
def test_scheduler_sets_adam_beta1(optimizer_class):
    sched = OneCycle(total_steps=20, peak_step=5, lr_min=1e-4, lr_max=1e-3)
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = optimizer_class([param], lr=0.5, betas=(0.5, 0.99))
    scheduler = Scheduler(optimizer, sched)
    for k in range(20):
        values = scheduler.step()
        group = optimizer.param_groups[0]
        assert group["lr"] == values.lr == sched(k).lr
        assert group["betas"] == (values.momentum, 0.99)
        assert "momentum" not in group
        param.grad = torch.ones_like(param)
        optimizer.step()
    assert optimizer.param_groups[0]["betas"][0] == sched(19).momentum


# Invalid arguments ----------------------------------------------------------------------------


def one_cycle(**changes) -> OneCycle:
    args = {"total_steps": 100, "peak_step": 20, "lr_min": 0.01, "lr_max": 0.1}
    return OneCycle(**{**args, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lr_min": 0.1}, "lr_min < lr_max"),
        ({"lr_min": 0.2}, "lr_min < lr_max"),
        ({"lr_min": 0.0}, "lr_min < lr_max"),
        ({"peak_step": 0}, r"peak_step \(0\)"),
        ({"peak_step": 99}, r"peak_step \(99\) < total_steps - 1 - annihilation_steps \(99\)"),
        ({"peak_step": 60, "annihilation_steps": 39}, r"peak_step \(60\) .*\(60\)"),
        ({"annihilation_steps": -1}, "annihilation_steps must be >= 0"),
        ({"annihilation_factor": 0.5}, "annihilation_factor must be >= 1"),
        ({"momentum_max": 1.0}, "momentum_max < 1, got 0.85 and 1.0"),
        ({"momentum_min": -0.1}, "0 <= momentum_min"),
        ({"momentum_min": 0.96}, "momentum_min <= momentum_max"),
    ],
)
def test_one_cycle_rejects(changes, message):
    with pytest.raises(ValueError, match=message):
        one_cycle(**changes)


@pytest.mark.parametrize("step", [-1, 100, 1000])
def test_one_cycle_step_out_of_range(step):
    sched = one_cycle()
    assert sched(99).lr == pytest.approx(0.01)
    with pytest.raises(ValueError, match=rf"step {step} outside \[0, 100\)"):
        sched(step)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0.1, 0.1, 5), "base_lr < max_lr"),
        ((0.2, 0.1, 5), "base_lr < max_lr"),
        ((0.01, 0.1, 0), "step_size must be >= 1, got 0"),
        ((0.01, 0.1, -3), "step_size must be >= 1, got -3"),
        ((0.01, 0.1, 5, "exp_range", 0.0), r"gamma must be in \(0, 1\]"),
        ((0.01, 0.1, 5, "exp_range", 1.5), r"gamma must be in \(0, 1\]"),
        ((0.01, 0.1, 5, "triangular", 1.0, 1.0), "momentum_max < 1"),
    ],
)
def test_cyclic_rejects(args, message):
    with pytest.raises(ValueError, match=message):
        Cyclic(*args)


def test_cyclic_and_multistep_reject_negative_steps():
    with pytest.raises(ValueError, match="step must be >= 0, got -1"):
        Cyclic(0.01, 0.1, 5)(-1)
    with pytest.raises(ValueError, match="step must be >= 0, got -1"):
        MultiStep(0.1)(-1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0.1, (5, 5)), r"milestones must increase strictly, got \(5, 5\)"),
        ((0.1, (10, 5)), r"milestones must increase strictly, got \(10, 5\)"),
        ((0.1, (1, 3, 2)), "milestones must increase strictly"),
        ((0.0,), "lr must be > 0"),
        ((0.1, (), 0.0), r"decay must be in \(0, 1\]"),
        ((0.1, (), 0.1, 1.0), r"momentum must be in \[0, 1\)"),
        ((0.1, (), 0.1, -0.5), r"momentum must be in \[0, 1\)"),
    ],
)
def test_multistep_rejects(args, message):
    with pytest.raises(ValueError, match=message):
        MultiStep(*args)


@pytest.mark.parametrize("auto", [{"lr_max": "auto"}, {"lr_min": "auto"}])
def test_build_rejects_auto(auto):
    cfg = ScheduleConfig(**auto)
    with pytest.raises(ValueError, match=r"resolve lr_min/lr_max \('auto'\)"):
        schedule.build(cfg, 24, 98)


# plot-schedule CLI ----------------------------------------------------------------------------


NOTEBOOK = """
import matplotlib
matplotlib.use("svg")  # the session's own choice, as %matplotlib inline makes one
import matplotlib.pyplot as plt
import cifar_supercon
figure = cifar_supercon.plot_schedule()
print(matplotlib.get_backend(), type(figure).__name__, plt.get_fignums())
"""


def test_the_package_leaves_the_backend_and_pyplot_alone() -> None:
    """No backend forced at import, and figures outside pyplot's list: a notebook shows a
    returned figure once, not once per open pyplot figure."""
    done = subprocess.run([sys.executable, "-c", NOTEBOOK], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["svg", "ShownFigure", "[]"]


def invoke(*args: str):
    return CliRunner().invoke(app, ["plot-schedule", *args])


def read_csv(path: Path) -> tuple[str, list[dict[str, str]]]:
    text = path.read_text(encoding="utf-8")
    return text.splitlines()[0], list(csv.DictReader(io.StringIO(text)))


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 10_000
    with Image.open(path) as image:
        width, height = image.size
    assert width > height > 200


def test_plot_schedule_default_config(tmp_path):
    png, table = tmp_path / "sched.png", tmp_path / "sched.csv"
    result = invoke("--config", str(DEFAULT_YAML), "--out", str(png), "--csv", str(table))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert str(png) in result.stdout
    assert_png(png)
    header, rows = read_csv(table)
    assert header == "step,epoch,lr,momentum"
    per_epoch = 50_000 // 512  # 97: the short last batch is dropped (data.drop_last)
    assert len(rows) == 24 * per_epoch == 2328
    assert [int(r["step"]) for r in rows] == list(range(2328))
    lr_min, lr_max = Config().schedule.lr_min, Config().schedule.lr_max
    peak = 5 * per_epoch - 1  # the last step of epoch 5
    assert float(rows[0]["lr"]) == lr_min
    assert float(rows[0]["momentum"]) == 0.95
    assert float(rows[peak]["lr"]) == pytest.approx(lr_max, rel=1e-12)
    assert float(rows[peak]["momentum"]) == pytest.approx(0.85, rel=1e-12)
    assert float(rows[-1]["lr"]) == pytest.approx(lr_min, rel=1e-12)
    assert float(rows[-1]["momentum"]) == pytest.approx(0.95, rel=1e-12)
    epochs = [int(r["epoch"]) for r in rows]
    assert set(epochs[:per_epoch]) == {1}
    assert epochs[per_epoch] == 2
    assert epochs[peak] == 5 and epochs[peak + 1] == 6
    assert epochs[-1] == 24
    assert epochs == sorted(epochs) and set(epochs) == set(range(1, 25))
    # every row is the schedule itself, to the last bit
    sched = schedule.build(Config().schedule, 24, per_epoch)
    assert [(float(r["lr"]), float(r["momentum"])) for r in rows] == trace(sched, 2328)


@pytest.mark.parametrize("cycles", [3, 2])
def test_plot_schedule_triangular_cycles(tmp_path, cycles):
    png, table = tmp_path / "triangle.png", tmp_path / "triangle.csv"
    result = invoke(
        "--policy", "triangular", "--cycles", str(cycles), "--out", str(png), "--csv", str(table)
    )
    assert result.exit_code == 0, result.output
    assert_png(png)
    header, rows = read_csv(table)
    assert header == "step,epoch,lr,momentum"
    per_epoch = 50_000 // 512  # 97 (data.drop_last)
    step_size = 4 * per_epoch  # round(schedule.step_size_epochs * steps per epoch)
    assert len(rows) == cycles * 2 * step_size
    lrs = [float(r["lr"]) for r in rows]
    momenta = [float(r["momentum"]) for r in rows]
    lr_min, lr_max = Config().schedule.lr_min, Config().schedule.lr_max
    for cycle in range(cycles):
        start = 2 * step_size * cycle
        assert lrs[start] == pytest.approx(lr_min, rel=1e-12)
        assert momenta[start] == pytest.approx(0.95, rel=1e-12)
        assert lrs[start + step_size] == pytest.approx(lr_max, rel=1e-12)
        assert momenta[start + step_size] == pytest.approx(0.85, rel=1e-12)
    assert lrs[-1] == pytest.approx(lr_min + (lr_max - lr_min) / step_size, rel=1e-12)
    assert int(rows[-1]["epoch"]) == (len(rows) - 1) // per_epoch + 1


def test_plot_schedule_cycles_needs_cyclic_policy(tmp_path):
    png = tmp_path / "sched.png"
    result = invoke("--cycles", "2", "--out", str(png))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "--cycles" in lines[0] and "one_cycle" in lines[0]
    assert "Traceback" not in result.output
    assert not png.exists()


def test_plot_schedule_unknown_policy(tmp_path):
    png = tmp_path / "sched.png"
    result = invoke("--policy", "nonsense", "--out", str(png))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "schedule.policy" in lines[0] and "nonsense" in lines[0]
    assert not png.exists()


@pytest.mark.parametrize("step_size_epochs", [20.0, 100_000.0])
def test_a_cycle_longer_than_the_drawn_steps_keeps_the_figure_its_size(
    step_size_epochs: float, tmp_path: Path
) -> None:
    """A run shorter than its CLR cycle draws part of one: the labels stay inside it (placed at
    the cycle's far end they stretched the PNG to 4,393 pixels, or past matplotlib's limit)."""
    png, table = tmp_path / "s.png", tmp_path / "s.csv"
    result = invoke(
        "--set", "schedule.policy=triangular",
        "--set", f"schedule.step_size_epochs={step_size_epochs}",
        "--epochs", "6", "--set", "data.train_subset=512", "--batch-size", "64",
        "--out", str(png), "--csv", str(table),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with Image.open(png) as image:
        assert image.size[0] < 1200
    assert len(read_csv(table)[1]) == 6 * 8  # every step listed, whatever is drawn


def test_a_long_schedule_is_drawn_from_evenly_spread_steps() -> None:
    """A report's CLR triangle spans two cycles of the run's step size: millions of steps for
    a long one, drawn from at most MAX_DRAWN_POINTS of them, first and last included."""
    from cifar_supercon.plots import MAX_DRAWN_POINTS, _drawn_steps

    assert _drawn_steps(5) == [0, 1, 2, 3, 4]
    steps = _drawn_steps(52_000_000)
    assert len(steps) == MAX_DRAWN_POINTS and steps == sorted(set(steps))
    assert (steps[0], steps[-1]) == (0, 51_999_999)
    gaps = {b - a for a, b in itertools.pairwise(steps)}
    assert max(gaps) - min(gaps) <= 1
