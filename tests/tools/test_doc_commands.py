"""Every command line in README.md, labs/README.md and docs/*.md parses: each `python script.py ...` or
`python -m module ...` names a click command that exists and accepts every option it is given.

Commands are read from the fenced shell blocks (with `\\` continuations joined) and from inline code spans that
carry options. Shell variables become `0` (they stand for seeds, paths and counts), `[...]` marks an optional
part and is dropped, and `...` marks an elided command, which is skipped. Parsing uses click's own parser
(`make_context`), so nothing runs; a missing required option or file is accepted (a documented command may
rely on a file made by an earlier line).
"""

from __future__ import annotations

import importlib
import re
import shlex

import click
import pytest

from tests.conftest import REPO_ROOT

DOC_FILES = [
    "README.md",
    "labs/README.md",
    *sorted(p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "docs").glob("*.md")),
]
NOT_OURS = {"pip", "pytest", "venv", "torch.distributed.run", "http.server"}
CALL = r"python3?\s+(-m\s+[\w.]*\w|[\w/]+\.py)(?=\s|$|`)"


def shell_blocks(text: str) -> list[str]:
    """The fenced code blocks of `text` whose language is a shell or none."""
    blocks, current, language = [], None, None
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            if current is None:
                current, language = [], line.strip()[3:].strip()
            else:
                if language in ("", "bash", "sh", "shell", "console"):
                    blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def documented_commands(text: str) -> list[tuple[str, str]]:
    """(target, arguments) of each command in `text`: target is '-m module' or 'path.py'."""
    found = []
    for block in shell_blocks(text):
        for line in block.replace("\\\n", " ").split("\n"):
            found += [(m.group(1), m.group(2)) for m in re.finditer(CALL + r"[ \t]*([^;&|#\n]*)", line)]
    found += [(m.group(1), m.group(2)) for m in re.finditer(r"`" + CALL + r"[ \t]+(-[^`]*)`", text)]
    return [(target, args) for target, args in found if target.split()[-1] not in NOT_OURS]


def shell_words(args: str) -> list[str]:
    """`args` as the words the shell would pass, with documentation placeholders resolved.

    A command quoted into a variable (`S="python -m labs.ssl --epochs=20"`) ends at its closing quote; `[...]` is
    an optional part (dropped); a whole-word `$VAR` expands to options we cannot know (dropped); a `$VAR` inside
    a value (`--seed=$seed`, `--data=$D/x.zip`) becomes `0`.
    """
    if args.count('"') % 2:
        args = args[: args.rindex('"')]
    args = re.sub(r"\[[^\]]*\]", " ", args)
    args = re.sub(r"(?<!\S)(\$\{[^}]*\}|\$\w+)(?!\S)", " ", args)
    args = re.sub(r"\$\([^)]*\)|\$\{[^}]*\}|\$\w+", "0", args).replace("~", "/tmp")
    return shlex.split(args)


def click_command(target: str) -> click.Command | None:
    """The click command that `python <target>` runs (a package runs its cli.py); None if it is not click."""
    module_name = target.split()[1] if target.startswith("-m") else target[:-3].replace("/", ".")
    module = importlib.import_module(module_name)
    if hasattr(module, "__path__"):
        module = importlib.import_module(module_name + ".cli")
    commands = [
        value
        for value in vars(module).values()
        if isinstance(value, click.Command)
        and value.callback is not None
        and value.callback.__module__ == module.__name__
    ]
    groups = [c for c in commands if isinstance(c, click.Group)]
    return (groups or commands or [None])[0]


def cases() -> list:
    params = []
    for doc in DOC_FILES:
        for target, args in documented_commands((REPO_ROOT / doc).read_text(encoding="utf-8")):
            if "..." in args or "…" in args:
                continue
            params.append(pytest.param(target, args, id=f"{doc}: {target} {args}"[:120]))
    return params


def test_the_reader_finds_block_and_inline_commands():
    text = "```bash\nF=x\npython train.py --outdir=o \\\n  --kimg=1   # note\n```\nrun `python -m labs.toy --steps=2` or `python -m pip`."
    assert documented_commands(text) == [("train.py", "--outdir=o    --kimg=1   "), ("-m labs.toy", "--steps=2")]
    assert documented_commands("```python\nx = 1\n```\ntext python a.py --no\n```bash\npython b.py --yes\n```") == [
        ("b.py", "--yes")
    ]


def test_placeholders_resolve_to_words_click_can_parse():
    assert shell_words('--seed=$seed --data=$D/x.zip $M ${opts} [--fp16=1] --n=20"') == [
        "--seed=0",
        "--data=0/x.zip",
        "--n=20",
    ]


@pytest.mark.parametrize("target, args", cases())
def test_documented_command_parses(target, args):
    command = click_command(target)
    if command is None:
        pytest.skip(f"{target} is not a click command")
    try:
        command.make_context(target, shell_words(args))
    except click.exceptions.Exit:
        pass  # --help and the like.
    except click.UsageError as error:
        if not re.search(r"Missing (option|parameter|argument)|does not exist", str(error)):
            raise AssertionError(f"python {target} {args}\n  -> {error}") from None
