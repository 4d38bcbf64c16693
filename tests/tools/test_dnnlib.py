"""dnnlib: EasyDict, open_url (local, file://, http with cache, offline errors), construction by name, Logger."""

import http.server
import os
import sys
import threading

import pytest
import torch

import dnnlib
from dnnlib import trust, util


def test_easydict_attribute_and_item_access():
    d = dnnlib.EasyDict(a=1)
    d.b = 2
    assert d["b"] == 2 and d.a == 1
    del d.a
    assert "a" not in d
    with pytest.raises(AttributeError):
        _ = d.missing


def test_open_url_local_path_and_file_url(tmp_path):
    path = tmp_path / "x y.bin"
    path.write_bytes(b"abc")
    with util.open_url(str(path)) as f:
        assert f.read() == b"abc"
    with util.open_url("file://" + str(path).replace(" ", "%20")) as f:
        assert f.read() == b"abc"
    assert util.open_url(str(path), return_filename=True) == str(path)
    with pytest.raises(FileNotFoundError, match="No such file"):
        util.open_url(str(tmp_path / "missing.pkl"))


@pytest.fixture
def http_server(tmp_path):
    """A loopback HTTP server serving `tmp_path/www`, counting requests."""
    root = tmp_path / "www"
    root.mkdir()
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def test_open_url_downloads_once_then_uses_cache(http_server, tmp_path, monkeypatch):
    root, base, hits = http_server
    (root / "net.pkl").write_bytes(b"weights")
    monkeypatch.setenv(util.CACHE_DIR_ENV, str(tmp_path / "cache"))
    url = base + "/net.pkl"
    with util.open_url(url, verbose=False) as f:
        assert f.read() == b"weights"
    with util.open_url(url, verbose=False) as f:
        assert f.read() == b"weights"
    assert hits == ["/net.pkl"]
    cached = util.open_url(url, return_filename=True)
    assert cached.startswith(str(tmp_path / "cache" / "downloads")) and cached.endswith("_net.pkl")
    assert not [p for p in os.listdir(os.path.dirname(cached)) if ".tmp-" in p]


def test_open_url_offline_error_names_url_cache_path_and_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(util.CACHE_DIR_ENV, str(tmp_path / "cache"))
    url = "http://127.0.0.1:9/detectors/vgg16.pt"  # Port 9 (discard) refuses connections.
    with pytest.raises(util.DownloadError) as info:
        util.open_url(url, num_attempts=1, verbose=False)
    message = str(info.value)
    expected = util.url_cache_path(url, str(tmp_path / "cache" / "downloads"))
    assert url in message and expected in message and util.CACHE_DIR_ENV in message
    # A file placed by hand at that path is then used without any network access.
    os.makedirs(os.path.dirname(expected))
    with open(expected, "wb") as f:
        f.write(b"by hand")
    with util.open_url(url, num_attempts=1) as f:
        assert f.read() == b"by hand"


def test_http_404_is_not_retried_forever(http_server, tmp_path):
    _root, base, hits = http_server
    with pytest.raises(util.DownloadError, match="404"):
        util.open_url(base + "/missing.pt", cache_dir=str(tmp_path), num_attempts=5, verbose=False)
    assert len(hits) == 1


def test_cache_dir_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv(util.CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert util.make_cache_dir_path("downloads") == os.path.join(str(tmp_path), ".cache", "dnnlib", "downloads")
    monkeypatch.setenv(util.CACHE_DIR_ENV, "/somewhere")
    assert util.make_cache_dir_path("a", "b") == os.path.join("/somewhere", "a", "b")


def test_construct_class_by_name_admits_only_trusted_classes():
    opt = util.construct_class_by_name([torch.zeros(2, requires_grad=True)], class_name="torch.optim.Adam", lr=0.5)
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["lr"] == 0.5
    for name in ("collections.OrderedDict", "math.sqrt", "builtins.eval"):
        with pytest.raises(trust.UntrustedNameError, match="is not trusted"):
            util.construct_class_by_name(class_name=name)


def test_logger_tees_stdout_and_stderr(tmp_path, capsys):
    log_path = tmp_path / "log.txt"
    with util.Logger(str(log_path)):
        print("hello")
        print("oops", file=sys.stderr)
    print("after")
    text = log_path.read_text()
    assert "hello\n" in text and "oops\n" in text and "after" not in text
    assert "hello" in capsys.readouterr().out


@pytest.mark.parametrize(
    "seconds, text",
    [(0, "0s"), (59.4, "59s"), (60, "1m 00s"), (3599, "59m 59s"), (3600, "1h 00m 00s"), (90061, "1d 01h 01m")],
)
def test_format_time(seconds, text):
    assert util.format_time(seconds) == text


def test_progress_bar_renders_counts_and_stays_silent_off_terminal():
    import io

    from dnnlib.progress import ProgressBar

    silent = io.StringIO()
    with ProgressBar(10, desc="x", stream=silent) as bar:
        bar.update(4)
    assert silent.getvalue() == ""  # StringIO is not a terminal.
    shown = io.StringIO()
    with ProgressBar(10, desc="convert", stream=shown, enabled=True, min_interval=0) as bar:
        bar.update(4)
        assert "4/10  40%" in bar.render() and "[############" in bar.render()
        bar.update(6)
    text = shown.getvalue()
    assert text.endswith("\n") and "10/10 100%" in text and "convert" in text
