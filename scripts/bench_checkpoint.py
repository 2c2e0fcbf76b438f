"""What checkpointing costs: the same run with last.pt written after every epoch (the old
behaviour, train.checkpoint_seconds=0) and on the default clock (every 60 s, at the end and on a
signal), side by side, from each run's own timeline in summary.json.

    python scripts/bench_checkpoint.py --config configs/default.yaml --data-dir data/cifar10-png \\
        --set data.train_subset=256 --set train.batch_size=128 --set train.epochs=4 \\
        --set schedule.peak_epoch=1 --set data.test_subset=500

Prints, per variant, the checkpoint seconds, the number of saves and their share of the wall time.
The width-64 model writes checkpoints of 52.6 MB: a short epoch on a small subset shows on the CPU
what a GPU's 0.4-second epochs would show at full scale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import script_config  # noqa: E402

from cifar_supercon import api, engine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    script_config.add_options(parser, out="runs/bench-checkpoint")
    parser.add_argument("--log", type=Path, help="JSON log to write")
    args = parser.parse_args()

    base = script_config.load(args)
    device = engine.device_name(engine.resolve_device(base.train.device))
    print(f"{' '.join(args.config)} {' '.join(args.set)}; {device}")
    results = {}
    for label, seconds in (("every epoch", 0.0), ("clock (default)", None)):
        changes = {} if seconds is None else {"train.checkpoint_seconds": seconds}
        summary = api.train(base, overrides=changes, log=lambda _: None)
        timeline = summary["timeline_seconds"]
        share = timeline["checkpoint"] / summary["wall_seconds"]
        size = (Path(summary["run_dir"]) / "checkpoints" / "last.pt").stat().st_size
        results[label] = {**timeline, "wall": summary["wall_seconds"], "share": share}
        wall = summary["wall_seconds"]
        print(
            f"{label:<16} checkpoints {timeline['checkpoint']:.2f} s of {wall:.1f} s wall "
            f"({100 * share:.2f}%); train {timeline['train']:.1f} s; last.pt {size / 1e6:.1f} MB"
        )
    if args.log:
        args.log.write_text(json.dumps({"config": args.config, "set": args.set, "device": device,
                                        "results": results}, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
