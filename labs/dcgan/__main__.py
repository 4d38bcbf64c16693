"""`python -m labs.dcgan`: the command line of `labs/dcgan/cli.py`."""

from labs.dcgan.cli import main

main()
