"""Just-in-time build and load of C++/CUDA extensions, with a safe fallback.

`get_plugin()` compiles an extension once per machine (cached by source hash, PyTorch build and GPU name)
and returns the loaded Python module, or `None` after ONE printed warning line if anything goes wrong, so
callers can fall back to their reference implementation. Builds go to a fresh private temporary folder
that is renamed into the cache when complete, so an interrupted build never leaves a lock behind that
another process could wait on.

Environment variables:
* `GAN_OPS_REFERENCE=1` (or `true`/`yes`/`on`): never build; `get_plugin()` returns `None` silently and every op
  uses its reference (plain PyTorch) path.
* `TORCH_EXTENSIONS_DIR`: root of the build cache (default: PyTorch's, usually `~/.cache/torch_extensions`).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import shutil
import sys
import tempfile
import types
from collections.abc import Sequence
from typing import Any

import torch
import torch.utils.cpp_extension

REFERENCE_ENV = "GAN_OPS_REFERENCE"
_TRUE_VALUES = ("1", "true", "yes", "on")

_plugin_cache: dict[str, types.ModuleType | None] = {}


def reference_forced() -> bool:
    """True when `$GAN_OPS_REFERENCE` asks for the reference (plain PyTorch) paths only."""
    return os.environ.get(REFERENCE_ENV, "").strip().lower() in _TRUE_VALUES


def get_plugin(
    module_name: str,
    sources: Sequence[str],
    headers: Sequence[str] | None = None,
    source_dir: str | None = None,
    **build_kwargs: Any,
) -> types.ModuleType | None:
    """Build (once) and load the extension `module_name`; `None` if forced off or on any failure.

    `sources` are compiled (`.cpp`, `.cu`), `headers` only take part in the cache key; both are file names
    relative to `source_dir` (or absolute paths when `source_dir` is None). `build_kwargs` go to
    `torch.utils.cpp_extension.load` (e.g. `extra_cuda_cflags`). The result is cached per process, so a
    failure warns once and later calls return `None` at once.
    """
    if reference_forced():
        return None
    if module_name in _plugin_cache:
        return _plugin_cache[module_name]
    try:
        plugin = _build_and_load(module_name, sources, headers or [], source_dir, build_kwargs)
    except Exception as error:  # noqa: BLE001 - any failure means "use the reference path"
        print(
            f"WARNING: custom op '{module_name}' is unavailable ({_one_line_cause(error)}); using the reference "
            f"PyTorch implementation instead{_save_log(module_name, error)} (set {REFERENCE_ENV}=1 to skip the build).",
            file=sys.stderr,
            flush=True,
        )
        plugin = None
    _plugin_cache[module_name] = plugin
    return plugin


def _one_line_cause(error: Exception) -> str:
    """The most telling line of an exception message (a compiler's first `error` line if there is one)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    error_lines = [line for line in lines if "error" in line.lower()]
    cause = (error_lines[1:2] or error_lines[:1] or lines[:1] or [""])[0]
    return f"{type(error).__name__}: {cause[:300]}"


def _save_log(module_name: str, error: Exception) -> str:
    """Write the full error text to a log file; returns ' (full log: PATH)' or '' if that fails too."""
    try:
        with tempfile.NamedTemporaryFile("w", prefix=f"{module_name}-build-", suffix=".log", delete=False) as file:
            file.write(str(error))
        return f" (full log: {file.name})"
    except OSError:
        return ""


def _cache_root() -> str:
    """`$TORCH_EXTENSIONS_DIR` or PyTorch's default extension build root."""
    return os.environ.get("TORCH_EXTENSIONS_DIR") or torch.utils.cpp_extension.get_default_build_root()


def _build_and_load(
    module_name: str, sources: Sequence[str], headers: Sequence[str], source_dir: str | None, build_kwargs: dict
) -> types.ModuleType:
    if not sources:
        raise ValueError("no source files given")
    source_paths = [os.path.join(source_dir, s) if source_dir else s for s in sources]
    header_paths = [os.path.join(source_dir, h) if source_dir else h for h in headers]
    if any(path.endswith(".cu") for path in source_paths) and not torch.cuda.is_available():
        raise RuntimeError("CUDA is not available")
    digest = _digest(module_name, source_paths + header_paths, build_kwargs)
    root = _cache_root()
    final_dir = os.path.join(root, f"{module_name}-{digest}")
    library = os.path.join(final_dir, module_name + _extension_suffix())
    if os.path.isfile(library):
        return _import_library(module_name, library)

    os.makedirs(root, exist_ok=True)
    build_dir = tempfile.mkdtemp(prefix=f".{module_name}-build-", dir=root)
    os.chmod(build_dir, 0o755)
    try:
        copied_sources = [shutil.copy(path, build_dir) for path in source_paths]  # build exactly what was hashed
        for path in header_paths:
            shutil.copy(path, build_dir)
        module = torch.utils.cpp_extension.load(
            name=module_name,
            sources=copied_sources,
            build_directory=build_dir,
            verbose=False,
            is_python_module=True,
            **build_kwargs,
        )
        built = os.path.join(build_dir, module_name + _extension_suffix())
        if not os.path.isfile(built):
            raise RuntimeError(f"the build produced no {os.path.basename(built)}")
        _publish(build_dir, final_dir, library)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    sys.modules[module_name] = module
    return module


def _publish(build_dir: str, final_dir: str, library: str) -> None:
    """Atomically rename the finished build folder to its cache name (another process may have won the race)."""
    try:
        os.replace(build_dir, final_dir)
    except OSError:
        if os.path.isfile(library):
            return  # an identical build was published concurrently
        shutil.rmtree(final_dir, ignore_errors=True)  # a leftover folder without the library: replace it
        os.replace(build_dir, final_dir)


def _digest(module_name: str, paths: Sequence[str], build_kwargs: dict) -> str:
    """Hash of everything that changes the binary: sources, flags, PyTorch/Python/CUDA builds, GPU name."""
    hasher = hashlib.sha256()
    for path in paths:
        hasher.update(os.path.basename(path).encode())
        with open(path, "rb") as file:
            hasher.update(file.read())
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    for item in (
        module_name,
        repr(sorted(build_kwargs.items())),
        torch.__version__,
        torch.version.cuda,
        sys.version,
        gpu,
    ):
        hasher.update(repr(item).encode())
    return hasher.hexdigest()[:16]


def _extension_suffix() -> str:
    """File suffix of the shared library that `cpp_extension.load` writes (`.so` on Linux, `.pyd` on Windows)."""
    return ".pyd" if sys.platform == "win32" else ".so"


def _import_library(module_name: str, library: str) -> types.ModuleType:
    """Import an already built extension library as module `module_name`."""
    if module_name in sys.modules:
        return sys.modules[module_name]
    loader = importlib.machinery.ExtensionFileLoader(module_name, library)
    spec = importlib.util.spec_from_file_location(module_name, library, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules[module_name] = module
    return module


__all__ = ["REFERENCE_ENV", "get_plugin", "reference_forced"]
