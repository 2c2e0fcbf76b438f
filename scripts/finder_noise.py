"""How far does a range test's smoothed loss fall by chance? The evidence for
suggest.NOISE_MULTIPLE: the largest fall, in units of `suggest.step_noise`, of simulated
noise-only range tests (a flat loss of 2.3 with Gaussian noise, smoothed as the range test
smooths, for several betas and lengths), beside the falls of the range tests committed under
docs/results.

    python scripts/finder_noise.py > docs/results/finder-noise.txt
"""

from __future__ import annotations

import csv
import platform
import random
import sys
from pathlib import Path

from cifar_supercon import suggest

REPO = Path(__file__).resolve().parents[1]
BETAS = (0.8, 0.9, 0.95, 0.98)
LENGTHS = (30, 100, 200, 500)
CURVES_EACH = 100


def fall_in_noise_units(losses: list[float], smoothed: list[float]) -> float:
    reading = suggest.read(smoothed, 0.1, 5)
    return (reading.drop if reading else 0.0) / suggest.step_noise(losses)


def main() -> None:
    rng = random.Random(1)
    print(f"python {platform.python_version()}, {platform.machine()}; seed 1")
    print(f"noise only ({CURVES_EACH} curves per beta and length):")
    worst = 0.0
    for beta in BETAS:
        for length in LENGTHS:
            falls = []
            for _ in range(CURVES_EACH):
                losses = [2.3 + rng.gauss(0, 0.05) for _ in range(length)]
                smoothed = suggest.zero_lag(losses, beta, ceiling=losses[0])
                falls.append(fall_in_noise_units(losses, smoothed))
            worst = max(worst, *falls)
            print(f"  beta {beta:<4} {length:>3} steps: largest fall {max(falls):.2f}")
    print(f"largest fall of any noise-only curve: {worst:.2f} x step_noise")
    print(f"suggest.NOISE_MULTIPLE: {suggest.NOISE_MULTIPLE:g}")
    print("committed range tests (first weight decay of each):")
    for path in sorted((REPO / "docs" / "results").rglob("lr_finder.csv")):
        rows = list(csv.DictReader(path.open()))
        first = rows[0].get("weight_decay", "")
        curve = [r for r in rows if r.get("weight_decay", "") == first]
        losses = [float(r["loss"]) for r in curve]
        smoothed = [float(r["smoothed_loss"]) for r in curve]
        fall = fall_in_noise_units(losses, smoothed)
        print(f"  {fall:6.1f}  {path.relative_to(REPO)}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
