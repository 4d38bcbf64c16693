"""Which code a file may name: the one allow-list for class names in options files, snapshots and pickles.

Files the project reads (network pickles, `training_options.json`, a snapshot's `training_set_kwargs`) name
classes by dotted name (`class_name="training.networks.Generator"`). A file is data, never code, so a name
is resolved only when it is

* a class defined in one of this project's modules listed in `PROJECT_MODULES` (networks, augmentation,
  datasets, losses). Constructing these only allocates tensors or opens the named dataset;
* a `torch.optim` optimizer class; or
* a class or function defined in a module the user trusts by name: `--trust-module=mypkg` on `train.py`,
  `generate.py` and `calc_metrics.py`, or `GAN_TRUSTED_MODULES=mypkg,other.pkg` in the environment.
  Trusting `mypkg` trusts its submodules too, and importing it runs its code: name only your own code.

The module part of a name is checked before anything is imported, so a file naming `os.system`,
`logging.basicConfig` or `torch.hub.load` imports and runs nothing; objects re-exported by a trusted module
(`training.dataset.os`) are refused because their `__module__` lies elsewhere.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterable
from typing import Any

from dnnlib.cli import OptionError

TRUSTED_MODULES_ENV = "GAN_TRUSTED_MODULES"

# This project's modules whose classes files may name (a package entry covers its submodules).
PROJECT_MODULES = (
    "training.networks",
    "training.networks_layers",
    "training.networks_generator",
    "training.networks_discriminator",
    "training.augment",
    "training.dataset",
    "training.loss",
    "training.techniques",
)
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class UntrustedNameError(ValueError):
    """A file names a class or function outside the allow-list; the message says how to trust a module."""


def _within(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def trusted_modules() -> tuple[str, ...]:
    """The user's trusted modules: the comma-separated names in `$GAN_TRUSTED_MODULES` (set by --trust-module)."""
    names = [name.strip() for name in os.environ.get(TRUSTED_MODULES_ENV, "").split(",")]
    return tuple(name for name in names if name)


def trust_modules(names: Iterable[str]) -> None:
    """Add module names to the user's trusted modules, for this process and the processes it starts.

    Raises ValueError for a name that is not a dotted Python module name.
    """
    names = [name.strip() for name in names if name.strip()]
    for name in names:
        if not _MODULE_NAME.match(name):
            raise ValueError(f'"{name}" is not a Python module name (e.g. mypkg or mypkg.networks)')
    merged = list(trusted_modules()) + [name for name in names if name not in trusted_modules()]
    os.environ[TRUSTED_MODULES_ENV] = ",".join(merged)


def trust_module_option(values: Iterable[str]) -> None:
    """`--trust-module` values (repeatable, each a comma-separated list) -> `trust_modules`.

    Raises `OptionError` (a usage error inside `dnnlib.cli.click_errors`) naming the option.
    """
    try:
        trust_modules(name for text in values for name in text.split(","))
    except ValueError as err:
        raise OptionError(f"--trust-module: {err}") from None


def is_user_trusted(module: str) -> bool:
    """True if `module` is, or lies inside, a module the user trusts."""
    return _within(module, trusted_modules())


# Top-level packages that are never a user's own network code: no refusal suggests trusting them.
_NOT_USER_CODE = frozenset(sys.stdlib_module_names) | {
    "torch",
    "numpy",
    "scipy",
    "PIL",
    "click",
    "requests",
    "dnnlib",
    "training",
    "metrics",
    "torch_utils",
    "adaptivemix",
}


def trust_hint(module: str) -> str:
    """The advice appended to a refusal: how to trust `module`'s package, unless it cannot be user code."""
    package = module.split(".")[0]
    if package in _NOT_USER_CODE or not _MODULE_NAME.match(package):
        return ""
    return f"; if {package} is your own code, pass --trust-module={package} or set {TRUSTED_MODULES_ENV}={package}"


def _refuse(name: str, where: str, reason: str) -> UntrustedNameError:
    return UntrustedNameError(
        f'refusing "{name}" named in {where}: {reason}; files may name only this project\'s '
        f"classes, torch optimizers and modules you trust{trust_hint(name)}"
    )


def resolve_class_name(name: Any, where: str = "a file") -> Any:
    """The class (or, in a user-trusted module, the class or function) named by `name`; see the module docstring.

    `where` names the source in the message (e.g. 'training_options.json'). Raises UntrustedNameError.
    """
    if not isinstance(name, str) or not _MODULE_NAME.match(name) or "." not in name:
        raise _refuse(str(name)[:200], where, "not a dotted name such as package.module.Class")
    module_name, attr = name.rsplit(".", 1)
    user = _within(module_name, trusted_modules())
    optimizer = module_name == "torch.optim"
    if not (user or optimizer or _within(module_name, PROJECT_MODULES)):
        raise _refuse(name, where, f'module "{module_name}" is not trusted')
    try:
        obj = getattr(importlib.import_module(module_name), attr, None)
    except ImportError as err:
        raise _refuse(name, where, f"cannot import {module_name} ({err})") from None
    if optimizer:
        import torch

        if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer):
            return obj
        raise _refuse(name, where, "not a torch.optim optimizer class")
    defined_in = getattr(obj, "__module__", None) or ""
    if user and callable(obj) and is_user_trusted(defined_in):
        return obj
    if isinstance(obj, type) and _within(defined_in, PROJECT_MODULES):
        return obj
    raise _refuse(name, where, "not a class defined in a trusted module")


def check_class_names(options: Any, where: str) -> None:
    """Resolve every `class_name` value in a nested dict/list of options (UntrustedNameError on the first refusal)."""
    if isinstance(options, dict):
        for key, value in options.items():
            if key == "class_name":
                resolve_class_name(value, where)
            else:
                check_class_names(value, where)
    elif isinstance(options, (list, tuple)):
        for value in options:
            check_class_names(value, where)
