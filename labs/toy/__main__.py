"""`python -m labs.toy`: the command line of `labs/toy/cli.py`."""

from labs.toy.cli import main

main()
