"""`python -m cifar_supercon` runs the `supercon` command line."""

from .cli import main

main()
