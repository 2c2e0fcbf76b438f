"""The config options every experiment script takes, read the way `supercon` reads them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cifar_supercon import config as config_lib  # noqa: E402


def add_options(parser: argparse.ArgumentParser, out: str) -> None:
    """--config (repeatable), --data-dir, --set KEY=VALUE (repeatable), --out."""
    parser.add_argument("--config", action="append", required=True, help="repeatable")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default=out, help="parent of the run directories")


def load(args: argparse.Namespace) -> config_lib.Config:
    """The configs merged left to right, then --set, --data-dir and --out."""
    overrides = [config_lib.parse_set(s) for s in args.set]
    overrides += [
        config_lib.Override("data.root", args.data_dir, "--data-dir"),
        config_lib.Override("out", args.out, "--out"),
    ]
    return config_lib.load(args.config, overrides)
