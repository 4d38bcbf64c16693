"""`python -m labs.ssl`: the command line of `labs/ssl/cli.py`."""

from labs.ssl.cli import main

main()
