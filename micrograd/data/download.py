"""Well-known image datasets, found in a cache folder or fetched over HTTPS.

``data.type: mnist`` (or ``fashion_mnist``) with no ``root`` reads the IDX
files from the data folder (``cache_dir()``)::

    $MICROGRAD_DATA, else $XDG_CACHE_HOME/micrograd, else ~/.cache/micrograd
        mnist/            train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
                          t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz
        mnist-t10k/       the t10k pair only (read as the whole data set)
        fashion-mnist/    the four Fashion-MNIST files

and downloads what is missing into ``mnist/`` (``fashion-mnist/``) from the
mirrors in ``MIRRORS``, tried in order (``$MICROGRAD_MIRRORS``, base URLs
separated by spaces, replaces them). Each file is checked against the SHA-256
and size of its *decompressed* IDX content, so that a mirror that gzips the
same data differently is accepted and a damaged or altered file is not; it is
written to a temporary file in the target folder and renamed into place only
once it checks out, so the folder never holds a partial file. Standard library
only (urllib): no torch.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import zlib
from pathlib import Path

from .pipeline import DataError

STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# SHA-256 and size in bytes of each file's decompressed IDX content. MNIST's t10k
# values were computed from a copy of the files and match published listings,
# which also give the train values; Fashion-MNIST's were computed from Debian's
# dataset-fashion-mnist package and match the values published for the
# upstream files.
CHECKSUMS: dict[str, dict[str, tuple[str, int]]] = {
    "mnist": {
        "train-images-idx3-ubyte":
            ("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 47_040_016),
        "train-labels-idx1-ubyte":
            ("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60_008),
        "t10k-images-idx3-ubyte":
            ("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 7_840_016),
        "t10k-labels-idx1-ubyte":
            ("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10_008),
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte":
            ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47_040_016),
        "train-labels-idx1-ubyte":
            ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60_008),
        "t10k-images-idx3-ubyte":
            ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7_840_016),
        "t10k-labels-idx1-ubyte":
            ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10_008),
    },
}

# Base URLs serving ``<stem>.gz``, tried in order (HTTPS only).
MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion_mnist": [
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
}

# The folders under the data folder where each data set is looked for; the first
# is where downloads go. mnist-t10k/ is the layout of the development data.
FOLDERS = {"mnist": ("mnist", "mnist-t10k"), "fashion_mnist": ("fashion-mnist", "fashion_mnist")}
DISPLAY_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
TIMEOUT = 30.0          # seconds without a byte before a mirror is given up
CHUNK = 1 << 16


class DownloadError(DataError, FileNotFoundError):
    """A data set is not in the data folder and no mirror delivered it; the message
    names the folder and the files and says how to place them (the CLI exits 1)."""


def cache_dir() -> Path:
    """The data folder: $MICROGRAD_DATA, else $XDG_CACHE_HOME/micrograd, else the
    platform's cache folder (~/.cache/micrograd on Linux)."""
    explicit = os.environ.get("MICROGRAD_DATA")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "micrograd"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "micrograd"
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "micrograd" / "Cache"
    return Path.home() / ".cache" / "micrograd"


def mirrors(name: str) -> list[str]:
    override = os.environ.get("MICROGRAD_MIRRORS", "").split()
    return override or list(MIRRORS[name])


def _has(folder: Path, stem: str) -> bool:
    return (folder / (stem + ".gz")).is_file() or (folder / stem).is_file()


def find_dataset(name: str, base: Path | None = None) -> Path | None:
    """The folder under the data folder holding ``name``: all four files, else the
    t10k pair; None when neither is there."""
    base = cache_dir() if base is None else Path(base)
    folders = [base / f for f in FOLDERS[name]]
    for stems in (STEMS, STEMS[2:]):
        for folder in folders:
            if all(_has(folder, s) for s in stems):
                return folder
    return None


def dataset_folder(name: str, download: bool = True, progress: bool | None = None) -> Path:
    """The folder holding data set ``name`` (``mnist`` or ``fashion_mnist``), fetching
    its files into the data folder first when they are not there and ``download``."""
    found = find_dataset(name)
    if found is not None:
        return found
    target = cache_dir() / FOLDERS[name][0]
    if not download:
        raise offline_error(name, target, [s for s in STEMS if not _has(target, s)],
                            "download: false")
    fetch_files(name, target, progress=progress)
    return target


def fetch_files(name: str, folder, stems=STEMS, progress: bool | None = None) -> None:
    """Download each of ``stems`` missing from ``folder``, trying every mirror in
    turn; DownloadError (what to place where) when a file cannot be had."""
    folder = Path(folder)
    missing = [s for s in stems if not _has(folder, s)]
    if not missing:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise offline_error(name, folder, missing,
                            f"cannot create the folder: {exc.strerror or exc}") from None
    if progress is None:
        progress = sys.stderr.isatty()
    for i, stem in enumerate(missing):
        problems = []
        for base in mirrors(name):
            url = base.rstrip("/") + "/" + stem + ".gz"
            try:
                _fetch(url, folder, stem, CHECKSUMS[name][stem], progress)
                break
            except _Failed as exc:
                problems.append(f"{url}: {exc}")
        else:
            raise offline_error(name, folder, missing[i:], "; ".join(problems))


class _Failed(Exception):
    """One mirror did not deliver one file (the reason is the message)."""


def _fetch(url: str, folder: Path, stem: str, expected, progress: bool) -> None:
    """Stream ``url`` into a temporary file in ``folder``, checking the decompressed
    content as it arrives; rename it to ``stem.gz`` only when it checks out."""
    import urllib.error
    import urllib.request

    sha256, size = expected
    request = urllib.request.Request(url, headers={"User-Agent": "micrograd-trainer"})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        raise _Failed(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise _Failed(_reason(exc)) from None
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".part", dir=folder)
    try:
        with response, os.fdopen(fd, "wb") as out:
            length = response.headers.get("Content-Length")
            length = int(length) if length and length.isdigit() else None
            inflate = zlib.decompressobj(wbits=47)  # gzip or zlib header
            digest, produced, received = hashlib.sha256(), 0, 0
            with _bar(progress, f"{stem}.gz", length) as advance:
                while True:
                    try:
                        chunk = response.read(CHUNK)
                    except (OSError, ValueError) as exc:  # reset, timeout, IncompleteRead
                        raise _Failed(f"connection lost after {received:,} bytes "
                                      f"({_reason(exc)})") from None
                    if not chunk:
                        break
                    received += len(chunk)
                    out.write(chunk)
                    try:
                        data = inflate.decompress(chunk, size + 1 - produced)
                    except zlib.error as exc:
                        raise _Failed(f"not a gzip file ({exc})") from None
                    produced += len(data)
                    if produced > size or inflate.unconsumed_tail:
                        raise _Failed(f"holds more than the expected {size:,} bytes of data")
                    digest.update(data)
                    advance(len(chunk))
            if length is not None and received != length:
                raise _Failed(f"connection closed after {received:,} of {length:,} bytes")
            if not inflate.eof:
                raise _Failed(f"the gzip stream ends early (after {received:,} bytes)")
            if produced != size or digest.hexdigest() != sha256:
                raise _Failed(f"content does not match the expected SHA-256 {sha256[:12]}... "
                              f"and size {size:,} (got {produced:,} bytes, SHA-256 "
                              f"{digest.hexdigest()[:12]}...)")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, folder / (stem + ".gz"))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _reason(exc) -> str:
    reason = getattr(exc, "reason", None) or exc
    return str(getattr(reason, "strerror", None) or reason) or type(exc).__name__


class _bar:
    """A rich progress bar for one file on a terminal; nothing otherwise."""

    def __init__(self, show: bool, label: str, total):
        self.show, self.label, self.total = show, label, total
        self.progress = None

    def __enter__(self):
        if not self.show:
            return lambda n: None
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                   TransferSpeedColumn)
        self.progress = Progress(TextColumn("downloading {task.description}"), BarColumn(),
                                 DownloadColumn(), TransferSpeedColumn(), transient=False)
        self.progress.start()
        task = self.progress.add_task(self.label, total=self.total)
        return lambda n: self.progress.advance(task, n)

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False


def offline_error(name: str, folder: Path, missing, why: str) -> DownloadError:
    """What is missing, where it goes and how to get it there."""
    display = DISPLAY_NAMES.get(name, name)
    files = ", ".join(s + ".gz" for s in missing)
    urls = " or ".join(mirrors(name))
    return DownloadError(
        f"{display} files not found in {folder} and not downloaded ({_short(why)}). Place "
        f"{files} (gzip or raw; from {urls}) in that folder, or set MICROGRAD_DATA to a "
        f"folder whose {FOLDERS[name][0]}/ subfolder holds them, or give data.root"
    )


def _short(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."
