"""Library errors to click errors, in one place, for the command-line scripts.

Library code the scripts share raises plain exceptions with a one-line message: `OptionError` for a bad
command-line value (the fix is another value), its own error types for a file it cannot read or write. A script
runs such calls inside `click_errors(...)`, which reports the first kind as a usage error (exit code 2) and the
kinds it names as an error (exit code 1), each as one line without a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click


class OptionError(ValueError):
    """A bad command-line value; the message names the option and the fix."""


@contextlib.contextmanager
def click_errors(*failures: type[Exception]) -> Iterator[None]:
    """Inside: `OptionError` -> click.UsageError (exit 2); an instance of `failures` -> click.ClickException (exit 1)."""
    try:
        yield
    except OptionError as err:
        raise click.UsageError(str(err)) from None
    except failures as err:
        raise click.ClickException(str(err)) from None
