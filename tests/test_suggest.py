"""Reading a range test: zero-lag smoothing and every suggestion, pinned on synthetic curves."""

from __future__ import annotations

import math
import random

import pytest

from cifar_supercon import suggest

# 161 lrs, 20 per decade, from 1e-4 to 1e4.
LRS = [10 ** (-4 + i / 20) for i in range(161)]


def shape(x: float) -> float:
    """A range-test curve in log10(lr) = x: flat at 2.3 up to 1e-3, a straight fall to 1.0 at
    1e-1, flat up to 1e0, then a steep rise."""
    if x <= -3:
        return 2.3
    if x <= -1:
        return 2.3 - 1.3 * (x + 3) / 2
    if x <= 0:
        return 1.0
    return 1.0 + 5 * x**2


CURVE = [shape(math.log10(lr)) for lr in LRS]


def causal_ema(values: list[float], beta: float) -> list[float]:
    out, average = [], values[0]
    for v in values:
        average = beta * average + (1 - beta) * v
        out.append(average)
    return out


def test_zero_lag_keeps_a_symmetric_bump_in_place() -> None:
    bump = [math.exp(-(((i - 50) / 6) ** 2)) for i in range(101)]
    smoothed = suggest.zero_lag(bump, 0.9)
    assert max(range(101), key=smoothed.__getitem__) == 50
    assert smoothed[50 - 7] == pytest.approx(smoothed[50 + 7], rel=1e-2)  # still symmetric
    assert smoothed[50] < 1.0  # it did smooth
    lagging = causal_ema(bump, 0.9)
    assert max(range(101), key=lagging.__getitem__) >= 54  # what the causal average does


def test_zero_lag_of_a_constant_is_the_constant_and_a_diverged_tail_is_kept() -> None:
    assert suggest.zero_lag([3.0] * 10, 0.95) == pytest.approx([3.0] * 10)
    values = [2.0, 2.0, 2.0, math.inf, math.nan]
    smoothed = suggest.zero_lag(values, 0.5)
    assert smoothed[:3] == pytest.approx([2.0, 2.0, 2.0])
    assert smoothed[3] == math.inf and math.isnan(smoothed[4])
    assert suggest.zero_lag([], 0.9) == []


def test_bounds_and_edge_on_a_known_curve() -> None:
    # At 10% of the 1.3 drop the fall reaches 2.17 at x = -2.8 (lr 1.58e-3): both lr_min.
    # bounds: lr_max where the loss stops falling, the first point of the flat bottom (1e-1).
    # edge: the loss climbs past 1.13 at x = sqrt(0.026) = 0.161 (lr 1.45): the last lr below
    # that is 10^0.15.
    found = suggest.suggest(LRS, CURVE, tolerance=0.1, div_factor=10, flat_steps=5)
    bounds, edge = found["bounds"], found["edge"]
    assert bounds is not None and edge is not None
    assert bounds.lr_max == pytest.approx(1e-1, rel=5e-3)
    assert edge.lr_max == pytest.approx(10**0.15, rel=5e-3)
    for choice in (bounds, edge):
        assert choice.lr_min_from == "curve"
        assert choice.lr_min == pytest.approx(10**-2.8, rel=5e-3)
    reading = suggest.read(CURVE, 0.1, 5)
    assert reading is not None and reading.turned_up and reading.drop == pytest.approx(1.3)
    # A wider tolerance widens the range on both sides.
    wide = suggest.suggest(LRS, CURVE, tolerance=0.3, div_factor=10, flat_steps=5)["edge"]
    assert wide is not None and wide.lr_min > edge.lr_min and wide.lr_max > edge.lr_max


def test_floor_is_where_the_fall_reaches_the_floor() -> None:
    # 10% of the 1.3 drop above the minimum is 1.13, reached at x = -3 + 2 * 1.17 / 1.3 = -1.2;
    # lr_min is where the fall starts, as for bounds.
    floor = suggest.suggest(LRS, CURVE, tolerance=0.1, div_factor=10, flat_steps=5)["floor"]
    assert floor is not None and floor.lr_min_from == "curve"
    assert floor.lr_max == pytest.approx(10**-1.2, rel=5e-3)
    assert floor.lr_min == pytest.approx(10**-2.8, rel=5e-3)
    assert suggest.read(CURVE, 0.1, 5).floor_start == 56  # type: ignore[union-attr]


def test_floor_ignores_where_on_a_flat_floor_the_noise_puts_the_minimum() -> None:
    # A floor from 1e-1 to 1e0 with a dip of 0.02 at either end: the minimum jumps a decade; the
    # floor's start stays put (the dip deepens the drop by 0.02, moving it by one point at most).
    floors = []
    for dip_at in (60, 79):
        dipped = [v - (0.02 if i == dip_at else 0.0) for i, v in enumerate(CURVE)]
        found = suggest.suggest(LRS, dipped, 0.1, 10, flat_steps=5)
        assert found["bounds"] is not None and found["bounds"].lr_max == pytest.approx(
            LRS[dip_at], rel=5e-3
        )
        assert found["floor"] is not None
        floors.append(found["floor"].lr_max)
    assert floors[0] == floors[1] and 10**-1.2 <= floors[0] <= 10**-1.1


def test_middle_is_the_log_middle_of_the_floor() -> None:
    # The floor runs from where the fall reaches 1.13 (x = -1.2) to where the rise passes it
    # (last point below: x = 0.15): its middle on a log scale is x = -0.525, lr_min as bounds.
    middle = suggest.suggest(LRS, CURVE, tolerance=0.1, div_factor=10, flat_steps=5)["middle"]
    assert middle is not None and middle.lr_min_from == "curve"
    assert middle.lr_max == suggest.round_lr(10**-0.525)
    assert middle.lr_min == pytest.approx(10**-2.8, rel=5e-3)
    # A floor a decade longer to the right (flat up to 1e1) moves it right by half a decade.
    longer = [shape(min(x, 0.0) + max(x - 1.0, 0.0)) for x in (math.log10(lr) for lr in LRS)]
    wider = suggest.suggest(LRS, longer, tolerance=0.1, div_factor=10, flat_steps=5)["middle"]
    assert wider is not None and wider.lr_max == suggest.round_lr(10**-0.025)


def test_middle_ignores_where_on_a_flat_floor_the_noise_puts_the_minimum() -> None:
    middles = []
    for dip_at in (60, 79):
        dipped = [v - (0.02 if i == dip_at else 0.0) for i, v in enumerate(CURVE)]
        found = suggest.suggest(LRS, dipped, 0.1, 10, flat_steps=5)["middle"]
        assert found is not None
        middles.append(found.lr_max)
    assert middles[0] == middles[1] == suggest.round_lr(10**-0.525)


def test_floor_under_noise_stays_on_the_fall_below_bounds() -> None:
    for seed in range(5):
        rng = random.Random(seed)
        noisy = [v + rng.gauss(0, 0.05) for v in CURVE]
        smoothed = suggest.zero_lag(noisy, 0.9, ceiling=noisy[0])  # as the range test does
        found = suggest.suggest(LRS, smoothed, 0.1, 10, flat_steps=10)
        floor, bounds = found["floor"], found["bounds"]
        assert floor is not None and bounds is not None and floor.lr_min_from == "curve"
        assert 10**-1.2 / 1.5 < floor.lr_max < 10**-1.2 * 1.5
        assert floor.lr_max < bounds.lr_max


def test_the_other_methods_on_the_known_curve() -> None:
    found = suggest.suggest(LRS, CURVE, tolerance=0.1, div_factor=10, flat_steps=5)
    # The flat bottom's first point (1e-1) is the lowest; its tenth is `minimum`.
    assert found["minimum"] is not None and found["minimum"].lr_max == pytest.approx(1e-2)
    # A straight fall in log(lr): the first slope wholly on it wins (x = -2.9).
    assert found["steepest"] is not None and found["steepest"].lr_max == pytest.approx(
        10**-2.9, rel=5e-3
    )
    assert found["valley"] is not None and 1e-3 < found["valley"].lr_max < 1e-1
    for method in ("minimum", "steepest", "valley"):
        choice = found[method]
        assert choice is not None and choice.lr_min_from == "lr_max / 10"
        assert choice.lr_min == pytest.approx(choice.lr_max / 10, rel=5e-3)


def test_bounds_and_edge_under_noise_with_zero_lag_smoothing() -> None:
    # Smoothing spreads the steep rise and the fall over its span (about 13 steps at beta 0.9,
    # 0.65 decades here): the edges move outwards in loss, i.e. the range narrows at the top
    # and reaches lower at the bottom, never the reverse.
    smoothed = suggest.zero_lag(CURVE, 0.9)
    clean = suggest.suggest(LRS, smoothed, 0.1, 10, flat_steps=10)
    edge, bounds = clean["edge"], clean["bounds"]
    assert edge is not None and bounds is not None and edge.lr_min_from == "curve"
    assert 10**0.15 / 10 < edge.lr_max < 10**0.15
    assert 10**-2.8 / 3 < edge.lr_min < 10**-2.8
    assert 1e-1 <= bounds.lr_max <= 1  # somewhere on the flat bottom
    # Noise of 0.05 (4% of the drop) per step hardly moves the edges.
    for seed in range(5):
        rng = random.Random(seed)
        noisy = [v + rng.gauss(0, 0.05) for v in CURVE]
        found = suggest.suggest(LRS, suggest.zero_lag(noisy, 0.9), 0.1, 10, flat_steps=10)
        noisy_edge, noisy_bounds = found["edge"], found["bounds"]
        assert noisy_edge is not None and noisy_bounds is not None
        assert noisy_edge.lr_min_from == "curve"
        assert edge.lr_max / 1.3 < noisy_edge.lr_max < edge.lr_max * 1.3
        assert edge.lr_min / 2 < noisy_edge.lr_min < edge.lr_min * 2
        assert 1e-1 / 2 <= noisy_bounds.lr_max <= 1


def test_a_curve_that_never_turns_up_suggests_its_last_lr() -> None:
    falling = [shape(math.log10(lr)) for lr in LRS[:60]]  # stops at 10^-1.05, still falling
    reading = suggest.read(falling, 0.1, 5)
    assert reading is not None and not reading.turned_up and reading.valley_end == 59
    for method in ("bounds", "edge"):
        choice = suggest.suggest(LRS[:60], falling, 0.1, 10, 5)[method]
        assert choice is not None and choice.lr_max == pytest.approx(LRS[59], rel=5e-3)
    # Its floor is where it first came within 10% of the drop of its last point.
    assert reading.floor_start == 56


def test_a_curve_that_diverges_at_once_gives_nothing() -> None:
    rising = [2.3 + i * 0.1 for i in range(30)] + [math.inf]
    assert suggest.read(rising, 0.1, 5) is None
    assert suggest.suggest(LRS[:31], rising, 0.1, 10, 5) == dict.fromkeys(suggest.METHODS)
    assert suggest.suggest([1e-3, 1e-2], [2.0, 1.0], 0.1, 10, 5) == dict.fromkeys(suggest.METHODS)


def test_no_clear_start_takes_lr_min_from_the_divisor() -> None:
    # Falling from the first step: there is no plateau to leave, so lr_min = lr_max / div_factor.
    curve = CURVE[20:]  # starts at 1e-3, where the fall begins
    bounds = suggest.suggest(LRS[20:], curve, 0.1, div_factor=25, flat_steps=10)["bounds"]
    assert bounds is not None and bounds.lr_min_from == "lr_max / 25"
    assert bounds.lr_min == pytest.approx(bounds.lr_max / 25, rel=5e-3)


def test_a_start_too_close_to_the_top_takes_the_divisor() -> None:
    # A fall and a rise within a factor of 3 in lr is no range to cycle over.
    narrow = [2.0, 2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 5.0, 9.0]
    lrs = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8]
    found = suggest.suggest(lrs, narrow, 0.1, 10, flat_steps=3)
    edge, floor = found["edge"], found["floor"]
    assert edge is not None and edge.lr_min_from == "lr_max / 10"
    assert edge.lr_max == 1.6 and edge.lr_min == 0.16
    assert floor is not None and floor.lr_min_from == "lr_max / 10"
    assert floor.lr_max == 1.5 and floor.lr_min == 0.15


def test_weight_decay_by_lowest_loss_then_largest_lr() -> None:
    # Curves 0 and 1 reach (within 10% of the drop) the lowest loss; 1 tolerates the larger lr.
    assert suggest.pick_curve([1.00, 1.05, 1.60], [1.0, 1.0, 0.6], [0.3, 0.5, 2.0], 0.1) == 1
    # Curve 1 goes further but ends clearly higher: the lowest loss wins.
    assert suggest.pick_curve([1.00, 1.20], [1.0, 0.8], [0.3, 0.9], 0.1) == 0
    # Equal on both: the first listed.
    assert suggest.pick_curve([1.0, 1.0], [1.0, 1.0], [0.4, 0.4], 0.1) == 0
    # A curve without a suggestion cannot be chosen; none at all gives None.
    assert suggest.pick_curve([0.5, 1.0], [1.0, 1.0], [None, 0.4], 0.1) == 1
    assert suggest.pick_curve([1.0], [0.0], [None], 0.1) is None


def test_a_diverging_tail_is_clipped_at_the_start_level() -> None:
    tail = [*CURVE[:85], 50.0, 5e3, 5e5]  # the loss explodes after the flat bottom
    clipped = suggest.zero_lag(tail, 0.9, ceiling=tail[0])
    assert clipped == pytest.approx(suggest.zero_lag([*CURVE[:85], 2.3, 2.3, 2.3], 0.9))
    assert 60 <= min(range(88), key=clipped.__getitem__) <= 80  # the bottom stays in [0.1, 1]
    assert min(suggest.zero_lag(tail, 0.9)) > 2.3  # unclipped, the tail lifts the whole curve


def test_the_point_where_the_sweep_diverged_is_outside_the_valley() -> None:
    flat_end = [2.0] * 10 + [1.0] * 30 + [1.05]  # smoothing hides the last, diverged point
    assert suggest.read(flat_end, 0.1, 3).valley_end == 40  # type: ignore[union-attr]
    reading = suggest.read(flat_end, 0.1, 3, diverged=True)
    assert reading is not None and reading.valley_end == 39 and reading.turned_up


def test_step_noise_is_the_noise_not_the_trend() -> None:
    """The known curve's fall and rise are trend: with noise of sd 0.05 on top, the estimate
    is that sd (within sampling error), and without noise it is all but zero."""
    for seed in range(5):
        rng = random.Random(seed)
        noisy = [v + rng.gauss(0, 0.05) for v in CURVE]
        assert 0.04 < suggest.step_noise(noisy) < 0.06
    assert suggest.step_noise(CURVE) < 0.01
    assert suggest.step_noise([2.3, 2.2, math.nan, 9.0]) == 0.0  # one finite step says nothing


@pytest.mark.parametrize("beta", [0.8, 0.9, 0.98])
def test_noise_without_a_fall_gives_no_reading(beta: float) -> None:
    """A flat loss with step-to-step noise: its smoothed curve wanders below its start by
    chance; that is no descent, and no method may suggest anything from it."""
    fooled = 0  # curves that read as a descent when the noise is not weighed
    for seed in range(20):
        rng = random.Random(seed)
        flat = [2.3 + rng.gauss(0, 0.05) for _ in LRS]
        noise = suggest.step_noise(flat)
        smoothed = suggest.zero_lag(flat, beta, ceiling=flat[0])
        assert suggest.read(smoothed, 0.1, 10, noise=noise) is None
        fooled += suggest.read(smoothed, 0.1, 10) is not None
    assert fooled > 10


def test_a_clear_fall_under_the_same_noise_is_read() -> None:
    rng = random.Random(0)
    noisy = [v + rng.gauss(0, 0.05) for v in CURVE]
    smoothed = suggest.zero_lag(noisy, 0.9)
    reading = suggest.read(smoothed, 0.1, 10, noise=suggest.step_noise(noisy))
    assert reading is not None and reading.drop > suggest.NOISE_MULTIPLE * 0.05
