"""Configuration dicts, URL/file opening with an on-disk cache, dynamic construction, logging, time format."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import os
import re
import signal
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any, BinaryIO

from dnnlib import atomic

CACHE_DIR_ENV = "DNNLIB_CACHE_DIR"


class EasyDict(dict):
    """A dict whose items are also attributes: `d.lr == d['lr']`."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        del self[name]


# ----------------------------------------------------------------------------
# Logging and time.


class Logger:
    """Tees everything written to stdout/stderr into a log file (and still to the console).

    Use as a context manager or call `close()`; the original streams are restored on close.
    """

    def __init__(self, file_name: str | None = None, file_mode: str = "w", should_flush: bool = True):
        self.file = open(file_name, file_mode, encoding="utf-8") if file_name is not None else None
        self.should_flush = should_flush
        self.stdout = sys.stdout
        self.stderr = sys.stderr
        sys.stdout = self
        sys.stderr = self

    def __enter__(self) -> Logger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def write(self, text: str) -> int:
        if len(text) == 0:
            return 0
        if self.file is not None:
            self.file.write(text)
        self.stdout.write(text)
        if self.should_flush:
            self.flush()
        return len(text)

    def write_file_only(self, text: str) -> None:
        """Write `text` to the log file but not the console (e.g. a traceback the console will show anyway)."""
        if self.file is not None:
            self.file.write(text)
            self.file.flush()

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()
        self.stdout.flush()

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        self.flush()
        if sys.stdout is self:
            sys.stdout = self.stdout
        if sys.stderr is self:
            sys.stderr = self.stderr
        if self.file is not None:
            self.file.close()
            self.file = None


def format_time(seconds: float) -> str:
    """Human-readable duration: `42s`, `3m 05s`, `2h 01m 09s`, `1d 02h 03m`."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 60 * 60:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 24 * 60 * 60:
        return f"{s // 3600}h {(s // 60) % 60:02d}m {s % 60:02d}s"
    return f"{s // 86400}d {(s // 3600) % 24:02d}h {(s // 60) % 60:02d}m"


def load_weights_only(path: str) -> Any:
    """`torch.load(path, map_location="cpu", weights_only=True)`: tensors and plain values only, no code from the
    file runs. torch's warning about a foreign pickle protocol (it comes just before a refusal) is silenced."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        return torch.load(path, map_location="cpu", weights_only=True)


def load_error_reason(err: BaseException) -> str:
    """One short line for why `torch.load` (or another reader) refused a file, for one-line error messages.

    torch's weights-only refusal starts with a paragraph about its defaults that ends in advice to load the file
    with `weights_only=False`, which would run the code a hostile file names; the reason is a later line (e.g.
    "Trying to load unsupported GLOBAL posix.system ..."). Other errors give their first line.
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if lines and lines[0].startswith("Weights only load failed"):
        detail = next((line for line in lines[1:] if not line.startswith("Check the documentation")), None)
        return f"it names something other than tensors and plain values: {detail or 'refused by weights_only'}"[:240]
    return (lines[0] if lines else type(err).__name__)[:240]


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt in the main thread, as Ctrl-C does.

    A process killed by SIGTERM's default action runs no cleanup; raised as an exception, `finally` blocks and
    `dnnlib.atomic` remove their temp files. Outside the main thread this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"terminated by {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def ignore_stop_signals(worker_id: int = 0) -> None:
    """DataLoader `worker_init_fn`: the worker ignores SIGINT and SIGTERM.

    Ctrl-C, `kill -TERM -PGID` and `timeout` signal the whole process group. A worker killed by SIGTERM makes
    its loader raise "DataLoader worker ... is killed by signal: Terminated" in the middle of the clean stop;
    ignoring the signal leaves the stop to the main process, which then shuts its workers down.
    """
    del worker_id
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


# ----------------------------------------------------------------------------
# Construction of objects by dotted name (used by configuration dicts).


def construct_class_by_name(*args: Any, class_name: str, **kwargs: Any) -> Any:
    """Construct the class named by `class_name` (dotted), which must pass `dnnlib.trust.resolve_class_name`.

    Option dicts come from files (training_options.json, snapshots), so only this project's classes, torch
    optimizers and modules the user trusts are constructed; anything else raises `UntrustedNameError`.
    """
    from dnnlib import trust

    return trust.resolve_class_name(class_name, where="the options")(*args, **kwargs)


# ----------------------------------------------------------------------------
# URLs and the download cache.


def make_cache_dir_path(*paths: str) -> str:
    """Path inside the cache folder: `$DNNLIB_CACHE_DIR`, else `~/.cache/dnnlib`, else `<tmp>/.cache/dnnlib`."""
    if os.environ.get(CACHE_DIR_ENV):
        return os.path.join(os.environ[CACHE_DIR_ENV], *paths)
    for home_var in ("HOME", "USERPROFILE"):
        if os.environ.get(home_var):
            return os.path.join(os.environ[home_var], ".cache", "dnnlib", *paths)
    return os.path.join(tempfile.gettempdir(), ".cache", "dnnlib", *paths)


def is_url(obj: Any, allow_file_urls: bool = False) -> bool:
    """True for strings of the form `scheme://...` (file:// only if `allow_file_urls`)."""
    if not isinstance(obj, str) or re.match(r"^[a-z]+://", obj) is None:
        return False
    return allow_file_urls or not obj.startswith("file://")


def file_url_to_path(url: str) -> str:
    """`file:///a/b` -> `/a/b` (a `/` before a Windows drive letter is dropped)."""
    path = urllib.parse.unquote(urllib.parse.urlparse(url).path)
    if re.match(r"^/[a-zA-Z]:", path):
        path = path[1:]
    return path


def _safe_name(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z\-._]", "_", name)


def url_cache_path(url: str, cache_dir: str, name: str | None = None) -> str:
    """Where the download of `url` lives in the cache: `<cache_dir>/<md5(url)>_<name>` (name: the URL's file name)."""
    url_md5 = hashlib.md5(url.encode("utf-8")).hexdigest()
    if name is None:
        name = os.path.basename(urllib.parse.urlparse(url).path) or "download"
    return os.path.join(cache_dir, f"{url_md5}_{_safe_name(name)}")


class DownloadError(OSError):
    """A URL could not be fetched; the message says where the file may be placed by hand."""


def _download(url: str, num_attempts: int, verbose: bool) -> tuple[bytes, str | None]:
    import requests  # Imported lazily: only needed for http(s).

    last_error: Exception | None = None
    for attempt in range(num_attempts):
        try:
            with requests.Session() as session:
                with session.get(url, timeout=60) as res:
                    res.raise_for_status()
                    if len(res.content) == 0:
                        raise OSError("empty response")
                    name = None
                    disposition = res.headers.get("Content-Disposition", "")
                    match = re.search(r'filename="?([^";]+)"?', disposition)
                    if match:
                        name = match.group(1)
                    return res.content, name
        except KeyboardInterrupt:
            raise
        except Exception as err:  # noqa: BLE001 - any failure is retried, then reported once.
            last_error = err
            if (
                isinstance(err, requests.exceptions.HTTPError)
                and err.response is not None
                and 400 <= err.response.status_code < 500
            ):
                break  # Client errors do not get better by retrying.
            if verbose and attempt + 1 < num_attempts:
                print(f"Retrying {url} ({attempt + 1}/{num_attempts}): {err}", file=sys.stderr)
            time.sleep(min(2.0**attempt, 10.0) * 0.1)
    raise DownloadError(str(last_error) if last_error else "unknown error")


def open_url(
    url: str,
    cache_dir: str | None = None,
    num_attempts: int = 10,
    verbose: bool = True,
    return_filename: bool = False,
    cache: bool = True,
) -> BinaryIO | str:
    """Open a URL (http, https, file) or a local path for binary reading, downloading through a cache.

    http(s) files are cached as `<cache_dir>/<md5(url)>_<name>`, with `cache_dir` defaulting to
    `make_cache_dir_path('downloads')` (set `DNNLIB_CACHE_DIR` to move it). A cached copy is used without
    touching the network, so a file placed there by hand makes an offline machine work.
    Returns an open binary file, or its local path when `return_filename=True`.
    """
    if not isinstance(url, str) or not url:
        raise ValueError(f"open_url expects a path or URL string, got {url!r}")
    if not is_url(url, allow_file_urls=True):
        path = os.path.expanduser(url)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'No such file: "{path}"')
        return path if return_filename else open(path, "rb")
    if url.startswith("file://"):
        path = file_url_to_path(url)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'No such file: "{path}" (from {url})')
        return path if return_filename else open(path, "rb")

    if return_filename and not cache:
        raise ValueError("open_url: return_filename=True needs cache=True")
    cache_dir = cache_dir if cache_dir is not None else make_cache_dir_path("downloads")
    if cache:
        url_md5 = hashlib.md5(url.encode("utf-8")).hexdigest()
        matches = glob.glob(os.path.join(glob.escape(cache_dir), f"{url_md5}_*"))
        matches = [m for m in matches if not atomic.is_temp_name(m)]
        if len(matches) == 1:
            return matches[0] if return_filename else open(matches[0], "rb")

    try:
        data, name = _download(url, num_attempts, verbose)
    except DownloadError as err:
        expected = url_cache_path(url, cache_dir)
        raise DownloadError(
            f"Cannot download {url} ({err}). Offline? Place the file by hand at {expected} "
            f"(cache folder set by ${CACHE_DIR_ENV}), or pass a local path instead of the URL."
        ) from None

    if cache:
        os.makedirs(cache_dir, exist_ok=True)
        path = url_cache_path(url, cache_dir, name)
        atomic.write_bytes(path, data)  # A crash never leaves a partial file under the final name.
        if return_filename:
            return path
    return io.BytesIO(data)
