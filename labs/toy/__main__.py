"""`python -m labs.toy`: the command line of `labs/toy/cli.py`."""

from labs.toy.cli import main

if __name__ == "__main__":  # --jobs spawns workers that import this module again: only the parent runs main.
    main()
