"""Datasets fetched over HTTP from a local server (real sockets on 127.0.0.1):
good downloads land in the data folder atomically, a corrupted or cut-short file
is refused and the next mirror tried, no reachable mirror is a clear DataError,
and a second run reads the cache without the network."""
import gzip
import hashlib
import http.server
import os
import socket
import threading

import numpy as np
import pytest

from micrograd.data import download
from micrograd.data.download import DownloadError, STEMS
from micrograd.data.images import load_idx_images, read_split
from micrograd.data.pipeline import DataError
from micrograd.datasets.make_digits_sample import idx_bytes
from conftest import run, write_config as _write_config


def write_config(folder, data):
    """A one-epoch linear classifier on the given data section."""
    return _write_config(folder, {
        "data": {**data, "splits": {"train": 0.6, "val": 0.2, "test": 0.2}},
        "model": {"layers": [{"type": "flatten"}, {"type": "linear", "out_features": 10}]},
        "loss": "cross_entropy", "optimizer": {"type": "sgd", "lr": 0.01},
        "train": {"epochs": 1, "batch_size": 16}})


def dataset(seed=0, n=(30, 10)):
    """The four IDX files of a small MNIST-like set: {stem: raw bytes}."""
    rng = np.random.default_rng(seed)
    files = {}
    for prefix, count in zip(("train", "t10k"), n):
        files[f"{prefix}-images-idx3-ubyte"] = idx_bytes(
            rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
        files[f"{prefix}-labels-idx1-ubyte"] = idx_bytes(
            (np.arange(count) % 10).astype(np.uint8))
    return files


class Mirror:
    """One HTTP server on a free port; ``files`` maps a URL path to its body and
    ``mode`` to how it is served: ok, truncate (half the body, full Content-Length,
    then the connection closes), missing (404)."""

    def __init__(self):
        self.files, self.mode, self.requests = {}, {}, []
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                mirror.requests.append(self.path)
                body, mode = mirror.files.get(self.path), mirror.mode.get(self.path, "ok")
                if body is None or mode == "missing":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode == "truncate":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/mnist/"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

    def serve(self, files, mode="ok"):
        for stem, raw in files.items():
            self.files[f"/mnist/{stem}.gz"] = gzip.compress(raw)
            self.mode[f"/mnist/{stem}.gz"] = mode

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def data_folder(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    monkeypatch.setenv("MICROGRAD_DATA", str(folder))
    monkeypatch.delenv("MICROGRAD_MIRRORS", raising=False)
    return folder


@pytest.fixture
def files(monkeypatch):
    """The small data set, with its checksums in place of MNIST's."""
    raw = dataset()
    monkeypatch.setitem(download.CHECKSUMS, "mnist", {
        stem: (hashlib.sha256(body).hexdigest(), len(body)) for stem, body in raw.items()})
    return raw


@pytest.fixture
def mirrors(monkeypatch):
    servers = [Mirror(), Mirror()]
    monkeypatch.setitem(download.MIRRORS, "mnist", [s.url for s in servers])
    yield servers
    for s in servers:
        s.close()


def unreachable_url():
    """A URL on a port where nothing listens (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_a_good_download_lands_in_the_data_folder(data_folder, files, mirrors):
    mirrors[0].serve(files)
    folder = download.dataset_folder("mnist", progress=False)
    assert folder == data_folder / "mnist"
    assert leftovers(data_folder) == sorted(s + ".gz" for s in STEMS)  # no .part file
    for stem in STEMS:
        assert gzip.decompress((folder / (stem + ".gz")).read_bytes()) == files[stem]
    assert not mirrors[1].requests
    x, y = read_split(folder, "train")
    assert x.shape == (30, 28, 28) and y.tolist() == [i % 10 for i in range(30)]


def test_files_are_renamed_into_place_from_the_same_folder(data_folder, files, mirrors,
                                                            monkeypatch):
    """Atomic placement: each file is written beside its final name, then renamed."""
    mirrors[0].serve(files)
    moves, real_replace = [], os.replace

    def replace(src, dst):
        assert not os.path.exists(dst)
        moves.append((os.path.dirname(src), os.path.dirname(dst), os.path.basename(src)))
        real_replace(src, dst)

    monkeypatch.setattr(download.os, "replace", replace)
    download.dataset_folder("mnist", progress=False)
    assert len(moves) == 4
    assert all(src == dst == str(data_folder / "mnist") for src, dst, _ in moves)
    assert all(name.startswith(".") and name.endswith(".part") for _, _, name in moves)


def test_a_second_run_reads_the_cache_without_the_network(data_folder, files, mirrors,
                                                          monkeypatch):
    mirrors[0].serve(files)
    download.dataset_folder("mnist", progress=False)
    count = len(mirrors[0].requests)
    monkeypatch.setitem(download.MIRRORS, "mnist", [unreachable_url()])
    for s in mirrors:
        s.close()
    assert download.dataset_folder("mnist") == data_folder / "mnist"
    assert len(mirrors[0].requests) == count == 4


def test_a_corrupted_file_is_refused_and_the_next_mirror_tried(data_folder, files, mirrors):
    bad = dict(files)
    bad["train-labels-idx1-ubyte"] = files["train-labels-idx1-ubyte"][:-1] + b"\x03"
    mirrors[0].serve(bad)
    mirrors[1].serve(files)
    folder = download.dataset_folder("mnist", progress=False)
    labels = gzip.decompress((folder / "train-labels-idx1-ubyte.gz").read_bytes())
    assert labels == files["train-labels-idx1-ubyte"]
    assert "/mnist/train-labels-idx1-ubyte.gz" in mirrors[1].requests
    assert leftovers(data_folder) == sorted(s + ".gz" for s in STEMS)


def test_a_corrupted_file_everywhere_is_reported_and_not_kept(data_folder, files, mirrors):
    bad = dict(files)
    bad["t10k-images-idx3-ubyte"] = files["t10k-images-idx3-ubyte"][:-1] + b"\x01"
    for s in mirrors:
        s.serve(bad)
    with pytest.raises(DownloadError) as info:
        download.dataset_folder("mnist", progress=False)
    message = str(info.value)
    assert "SHA-256" in message and "t10k-images-idx3-ubyte.gz" in message
    assert str(data_folder / "mnist") in message
    assert "t10k-images-idx3-ubyte.gz" not in leftovers(data_folder)
    assert not [name for name in leftovers(data_folder) if name.endswith(".part")]


def test_more_data_than_expected_is_refused(data_folder, files, mirrors):
    """A file that inflates past its recorded size is cut off, not inflated to the end."""
    big = dict(files)
    big["train-labels-idx1-ubyte"] = files["train-labels-idx1-ubyte"] + bytes(10_000_000)
    mirrors[0].serve(big)
    mirrors[1].serve(big)
    with pytest.raises(DownloadError, match="more than the expected 38 bytes"):
        download.dataset_folder("mnist", progress=False)
    assert "train-labels-idx1-ubyte.gz" not in leftovers(data_folder)


def test_a_dropped_connection_moves_on_to_the_next_mirror(data_folder, files, mirrors):
    mirrors[0].serve(files, mode="truncate")
    mirrors[1].serve(files)
    folder = download.dataset_folder("mnist", progress=False)
    assert len(mirrors[0].requests) == len(mirrors[1].requests) == 4
    for stem in STEMS:
        assert gzip.decompress((folder / (stem + ".gz")).read_bytes()) == files[stem]
    assert leftovers(data_folder) == sorted(s + ".gz" for s in STEMS)


def test_a_dropped_connection_everywhere_is_reported(data_folder, files, mirrors):
    for s in mirrors:
        s.serve(files, mode="truncate")
    with pytest.raises(DownloadError) as info:
        download.dataset_folder("mnist", progress=False)
    assert "connection" in str(info.value) and mirrors[1].url in str(info.value)
    assert leftovers(data_folder) == []


def test_a_missing_file_on_one_mirror_comes_from_the_next(data_folder, files, mirrors):
    mirrors[0].serve(files)
    mirrors[0].mode["/mnist/t10k-labels-idx1-ubyte.gz"] = "missing"
    mirrors[1].serve(files)
    download.dataset_folder("mnist", progress=False)
    assert mirrors[1].requests == ["/mnist/t10k-labels-idx1-ubyte.gz"]


def test_no_mirror_reachable_says_what_to_place_where(data_folder, files, monkeypatch):
    monkeypatch.setitem(download.MIRRORS, "mnist", [unreachable_url(), unreachable_url()])
    with pytest.raises(DownloadError) as info:
        download.dataset_folder("mnist", progress=False)
    assert isinstance(info.value, DataError) and isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    for fragment in (str(data_folder / "mnist"), "train-images-idx3-ubyte.gz",
                     "t10k-labels-idx1-ubyte.gz", "Place", "MICROGRAD_DATA", "refused"):
        assert fragment in message, message
    assert leftovers(data_folder) == []


def test_no_mirror_reachable_exits_1_from_the_command_line(tmp_path, data_folder, files,
                                                           monkeypatch):
    monkeypatch.setenv("MICROGRAD_MIRRORS", unreachable_url())
    config = write_config(tmp_path, {"type": "mnist"})
    result = run(["train", str(config), "-q"], tmp_path)
    out = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert out.startswith("error: MNIST files not found in") and "Traceback" not in out
    assert "train-images-idx3-ubyte.gz" in out and "MICROGRAD_DATA" in out


def test_download_false_never_touches_the_network(tmp_path, data_folder, files, mirrors):
    mirrors[0].serve(files)
    config = write_config(tmp_path, {"type": "mnist", "download": False})
    result = run(["train", str(config), "-q"], tmp_path)
    assert result.exit_code == 1 and "download: false" in result.output
    assert not mirrors[0].requests


def test_mirrors_from_the_environment_come_first(data_folder, files, mirrors, monkeypatch):
    mirrors[1].serve(files)
    monkeypatch.setenv("MICROGRAD_MIRRORS", f"{unreachable_url()} {mirrors[1].url}")
    download.dataset_folder("mnist", progress=False)
    assert not mirrors[0].requests and len(mirrors[1].requests) == 4


def test_the_config_trains_from_the_downloaded_cache(tmp_path, data_folder, files, mirrors):
    mirrors[0].serve(files)
    config = write_config(tmp_path, {"type": "mnist"})
    assert run(["train", str(config), "-q"], tmp_path).exit_code == 0
    assert leftovers(data_folder) == sorted(s + ".gz" for s in STEMS)


def test_an_explicit_root_downloads_only_when_asked(tmp_path, data_folder, files, mirrors):
    mirrors[0].serve(files)
    with pytest.raises(DataError, match="download: true"):
        load_idx_images(tmp_path / "mine")
    assert not mirrors[0].requests
    s = load_idx_images(tmp_path / "mine", download=True, splits=(0.8, 0.2, 0.0))
    assert len(s.y_train) == 24 and len(s.y_test) == 10
    assert leftovers(tmp_path / "mine") == sorted(s + ".gz" for s in STEMS)
    assert leftovers(data_folder) == []
