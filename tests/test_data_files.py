"""Data files that are missing, unreadable or hold unusable values: text and IDX
(MNIST) data, through the library and the CLI. Every case is a DataError naming
the file (and line or item), exit code 1, no raw OS error text, no traceback."""
import gzip
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from micrograd.data.idx import IDXError, read_idx, write_idx
from micrograd.data.images import load_idx_images, read_split
from micrograd.data.pipeline import DataError
from micrograd.data.text import TextFormatError, load_text
from conftest import run, write_config

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist_cnn.py"

TEXT = {"data": {"type": "text", "path": "reviews.txt"},
        "model": {"layers": [{"type": "linear", "out_features": 2}]},
        "loss": "cross_entropy", "optimizer": {"type": "sgd", "lr": 0.01},
        "train": {"epochs": 1}}

MNIST = {"data": {"type": "mnist", "root": "digits",
                  "splits": {"train": 0.6, "val": 0.2, "test": 0.2}},
         "model": {"layers": [{"type": "flatten"}, {"type": "linear", "out_features": 10}]},
         "loss": "cross_entropy", "optimizer": {"type": "sgd", "lr": 0.01},
         "train": {"epochs": 1, "batch_size": 16}}


def data_error(result, *fragments):
    """Exit 1 with one 'error:' paragraph holding every fragment, no OS error text."""
    out = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert out.startswith("error: ") and "Traceback" not in out, result.output
    assert "Errno" not in out, out
    for fragment in fragments:
        assert fragment in out, out
    return out


def digits(folder: Path, n=30, labels=None, images=None) -> Path:
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    if images is None:
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
    if labels is None:
        labels = (np.arange(n) % 10).astype(np.uint8)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels)
    return folder


# ------------------------------------------------------------------ text files


def test_missing_text_file_exits_1_naming_it(tmp_path):
    config = write_config(tmp_path, TEXT)
    data_error(run(["train", config], tmp_path), "text data file not found",
               "error: text data file not found: reviews.txt")


def test_missing_text_file_from_set_override(tmp_path):
    (tmp_path / "reviews.txt").write_text("good\t1\nbad\t0\n")
    config = write_config(tmp_path, TEXT)
    data_error(run(["train", config, "--set", "data.path=[reviews.txt, nowhere.txt]"], tmp_path),
               "nowhere.txt")


def test_text_path_that_is_a_directory(tmp_path):
    (tmp_path / "reviews.txt").mkdir()
    config = write_config(tmp_path, TEXT)
    data_error(run(["train", config], tmp_path), "error: reviews.txt is a directory",
               "is a directory")


def test_non_utf8_text_names_file_and_line(tmp_path):
    (tmp_path / "reviews.txt").write_bytes(b"good one\t1\nbad one\t0\ncaf\xe9 au lait\t1\n")
    config = write_config(tmp_path, TEXT)
    data_error(run(["train", config], tmp_path), "reviews.txt, line 3", "not UTF-8 text")


def test_unreadable_text_file_is_a_data_error(tmp_path, monkeypatch):
    path = tmp_path / "reviews.txt"
    path.write_text("good\t1\nbad\t0\n")

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(DataError) as info:
        load_text(path)
    message = str(info.value)
    assert str(path) in message and "cannot be read" in message and "Errno" not in message


def test_missing_text_file_is_still_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_text(tmp_path / "gone.txt")
    assert isinstance(info.value, DataError)


@pytest.mark.parametrize("content", [b"", b"\n  \n\t\n"])
def test_empty_text_file_names_it(tmp_path, content):
    (tmp_path / "reviews.txt").write_bytes(content)
    config = write_config(tmp_path, TEXT)
    data_error(run(["train", config], tmp_path), "error: reviews.txt", "is empty",
               "sentence<TAB>label")


def test_every_line_bad_with_skip_bad_lines(tmp_path):
    (tmp_path / "reviews.txt").write_text("no label\nnone here either\n")
    config = write_config(tmp_path, TEXT)
    data_error(run(["train", config, "--set", "data.skip_bad_lines=true"], tmp_path),
               "all 2 line(s)", "reviews.txt, line 1", "no label")


def test_malformed_label_names_file_and_line(tmp_path):
    (tmp_path / "reviews.txt").write_text("good\t1\nbad\t0\nshifted\tword\t1\nfine\t0\n")
    config = write_config(tmp_path, TEXT)
    data_error(run(["train", config], tmp_path), "reviews.txt, line 3", "'word'",
               "is not an integer")


def test_text_format_errors_are_data_errors(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("fine\t1\nno label\n")
    with pytest.raises(TextFormatError) as info:
        load_text(path)
    assert isinstance(info.value, DataError) and "line 2" in str(info.value)


# ------------------------------------------------------------------ IDX / MNIST folders


def test_idx_error_is_a_data_error():
    assert issubclass(IDXError, DataError) and IDXError.__name__ == "IDXError"


def test_missing_mnist_root_folder(tmp_path):
    config = write_config(tmp_path, MNIST)
    out = data_error(run(["train", config], tmp_path), "folder digits does not exist",
                     "does not exist", "t10k-images-idx3-ubyte", "Place the IDX files")
    assert "download: true" in out


def test_missing_mnist_files_are_data_errors(tmp_path):
    (tmp_path / "digits").mkdir()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\[\.gz\]") as info:
        load_idx_images(tmp_path / "digits")
    assert isinstance(info.value, FileNotFoundError)  # what callers caught before
    write_idx(tmp_path / "digits" / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28), np.uint8))
    config = write_config(tmp_path, MNIST)
    out = data_error(run(["train", config], tmp_path), "missing t10k-labels-idx1-ubyte[.gz]",
                     "Place the IDX files")
    assert "t10k-images-idx3-ubyte[.gz]" not in out


def test_read_idx_of_a_missing_file(tmp_path):
    with pytest.raises(IDXError, match="file not found") as info:
        read_idx(tmp_path / "nothing.gz")
    assert "Errno" not in str(info.value) and str(tmp_path / "nothing.gz") in str(info.value)


# ------------------------------------------------------------------ gzip bombs


def _bomb(path: Path, header: bytes, payload: int, member_mib=64) -> Path:
    """header + ``payload`` zero bytes, gzip-compressed as concatenated members
    (one member compressed once and repeated: building a 1 GiB bomb is cheap)."""
    block = gzip.compress(bytes(member_mib << 20), compresslevel=9)
    count, rest = divmod(payload, member_mib << 20)
    with open(path, "wb") as fh:
        fh.write(gzip.compress(header + bytes(rest)))
        for _ in range(count):
            fh.write(block)
    return path


def _header(code, *shape):
    return bytes([0, 0, code, len(shape)]) + b"".join(n.to_bytes(4, "big") for n in shape)


def test_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    """10 declared images of 28x28 followed by 1 GiB of zeros in a ~1 MB file."""
    path = _bomb(tmp_path / "t10k-images-idx3-ubyte.gz", _header(0x08, 10, 28, 28) + bytes(7840),
                 payload=1 << 30)
    assert path.stat().st_size < 2 << 20
    tracemalloc.start()
    try:
        with pytest.raises(IDXError) as info:
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert str(path) in message and "trailing data" in message
    assert "(10, 28, 28)" in message and "7840 bytes" in message
    assert peak < 32 << 20, f"read_idx allocated {peak} bytes for a 7,840-byte payload"


def test_header_declaring_an_absurd_size_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.idx.gz"
    path.write_bytes(gzip.compress(_header(0x0E, 60000, 60000, 60000) + bytes(64)))
    with pytest.raises(IDXError, match=r"huge\.idx\.gz.*\(60000, 60000, 60000\).*limit"):
        read_idx(path)
    raw = tmp_path / "huge.idx"
    raw.write_bytes(_header(0x08, 3, 1 << 30) + bytes(16))
    with pytest.raises(IDXError, match=r"huge\.idx.*limit"):
        read_idx(raw)


def test_limit_is_adjustable_and_exact_sizes_pass(tmp_path):
    data = np.arange(100, dtype=np.float64).reshape(10, 10)
    path = write_idx(tmp_path / "a.idx.gz", data)
    np.testing.assert_array_equal(read_idx(path), data)
    with pytest.raises(IDXError, match="limit"):
        read_idx(path, max_bytes=799)
    np.testing.assert_array_equal(read_idx(path, max_bytes=800), data)


def test_gzip_payload_shorter_or_longer_than_declared(tmp_path):
    short = tmp_path / "short.idx.gz"
    short.write_bytes(gzip.compress(_header(0x08, 10, 4) + bytes(39)))
    with pytest.raises(IDXError, match=r"short\.idx\.gz.*truncated.*\(10, 4\).*40 bytes.*39"):
        read_idx(short)
    long = tmp_path / "long.idx.gz"
    long.write_bytes(gzip.compress(_header(0x08, 10, 4) + bytes(41)))
    with pytest.raises(IDXError, match=r"long\.idx\.gz.*trailing data"):
        read_idx(long)


def test_raw_file_shorter_than_declared_is_refused_from_its_size(tmp_path):
    path = tmp_path / "r.idx"
    path.write_bytes(_header(0x0C, 1000, 1000) + bytes(10))
    with pytest.raises(IDXError, match=r"r\.idx.*truncated.*4000000 bytes.*file holds 10"):
        read_idx(path)


# ------------------------------------------------------------------ labels


def test_mnist_label_out_of_range_names_file_item_and_value(tmp_path):
    labels = (np.arange(30) % 10).astype(np.uint8)
    labels[5], labels[9] = 11, 12
    digits(tmp_path / "digits", labels=labels)
    config = write_config(tmp_path, MNIST)
    data_error(run(["train", config], tmp_path),
               "label 11 at item 5 of", "t10k-labels-idx1-ubyte.gz", "MNIST labels are 0..9")


def test_fashion_mnist_label_out_of_range(tmp_path):
    labels = (np.arange(30) % 10).astype(np.uint8)
    labels[0] = 10
    digits(tmp_path, labels=labels)
    with pytest.raises(DataError, match=r"label 10 at item 0 of .*Fashion-MNIST labels are 0\.\.9"):
        read_split(tmp_path, "test", "fashion_mnist")


def test_negative_and_fractional_labels(tmp_path):
    labels = (np.arange(30) % 10).astype(np.int8)
    labels[3] = -1
    digits(tmp_path, labels=labels)
    with pytest.raises(DataError, match="label -1 at item 3 of"):
        read_split(tmp_path, "test", "mnist")
    labels = (np.arange(30) % 10).astype(np.float32)
    labels[7] = 2.5
    digits(tmp_path, labels=labels)
    with pytest.raises(DataError, match=r"label 2\.5 at item 7 of .*not an integer"):
        read_split(tmp_path, "test", "mnist")
    digits(tmp_path, labels=(np.arange(30) % 10).astype(np.float32))  # whole numbers: fine
    assert read_split(tmp_path, "test", "mnist")[1].dtype == np.int64


def test_image_and_label_counts_must_match(tmp_path):
    digits(tmp_path, labels=np.zeros(29, np.uint8))
    with pytest.raises(DataError, match="29 labels for 30 images"):
        read_split(tmp_path, "test", "mnist")


# ------------------------------------------------------------------ float images


@pytest.mark.parametrize("code_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_images_name_file_and_item(tmp_path, code_dtype, bad):
    images = np.random.default_rng(0).random((30, 28, 28)).astype(code_dtype)
    images[4, 10, 3] = bad
    images[8, 0, 0] = np.nan
    digits(tmp_path / "digits", images=images)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz.*item 4"):
        read_split(tmp_path / "digits", "test", "mnist")
    config = write_config(tmp_path, MNIST)
    data_error(run(["train", config], tmp_path), "t10k-images-idx3-ubyte.gz", "item 4",
               "finite")


# ------------------------------------------------------------------ the example script


def test_example_without_data_says_where_to_put_it(tmp_path):
    missing = tmp_path / "no-mnist-here"
    result = subprocess.run([sys.executable, str(EXAMPLE), str(missing)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(missing) in lines[0] and "t10k-images-idx3-ubyte" in lines[0]
    assert "mnist-t10k" in lines[0] and "MNIST_FOLDER" in lines[0]


def test_example_reads_its_folder_from_the_environment(tmp_path):
    missing = tmp_path / "from-env"
    env = {**os.environ, "MNIST_FOLDER": str(missing)}
    result = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 1 and str(missing) in result.stderr, result
    assert "Traceback" not in result.stderr


def test_example_with_a_corrupt_file_prints_one_line(tmp_path):
    digits(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    result = subprocess.run([sys.executable, str(EXAMPLE), str(tmp_path)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result
    assert len(result.stderr.strip().splitlines()) == 1
    assert "t10k-images-idx3-ubyte.gz" in result.stderr


def test_line_numbers_count_newlines_only(tmp_path):
    """A form feed, a vertical tab or U+2028 inside a sentence does not end its line
    (str.splitlines would split there and call the rest a line without a label)."""
    path = tmp_path / "r.txt"
    path.write_bytes("page one\x0cpage two\t1\r\nsep\u2028arated\t0\nvt\x0bhere\t1\n"
                     "no label\nfine\t0\n".encode())
    with pytest.raises(TextFormatError, match=r"r\.txt, line 4: .*no label"):
        load_text(path)
    path.write_bytes(b"good one\t1\rbad one\t0\r")  # old Mac line ends
    assert load_text(path, splits=(1.0, 0.0, 0.0)).info["samples"] == 2
