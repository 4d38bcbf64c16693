"""`python -m labs.classify`: the command line of `labs/classify/cli.py`."""

from labs.classify.cli import cli

cli()
