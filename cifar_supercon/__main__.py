"""`python -m cifar_supercon` runs the `supercon` command line."""

from .entry import main

main()
