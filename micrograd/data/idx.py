"""The IDX file format of MNIST and Fashion-MNIST, read and written with NumPy alone.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number
of dimensions), one big-endian uint32 per dimension, then the values in C
order. Files may be gzip-compressed (``.gz``), as they are distributed.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

# IDX type code -> big-endian NumPy dtype
_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {v.newbyteorder("="): k for k, v in _TYPES.items()}


class IDXError(ValueError):
    """A file that is not a well-formed IDX file; the message names the file."""


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            if head == b"\x1f\x8b":
                return gzip.GzipFile(fileobj=fh).read()
            return fh.read()
    except (OSError, EOFError) as exc:  # gzip raises these on truncated streams
        raise IDXError(f"{path}: cannot be read as an IDX file ({exc})") from None


def read_idx(path) -> np.ndarray:
    """Read an IDX file (raw or gzip) into an array of its stored shape and type.

    Raises IDXError naming the file when the magic number, the declared sizes
    or the amount of data do not agree.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise IDXError(f"{path}: file is {len(raw)} bytes, too short for an IDX header")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise IDXError(
            f"{path}: bad magic number {raw[:4].hex()} (expected 0000 then a type code "
            f"08/09/0b/0c/0d/0e and the number of dimensions)"
        )
    dtype, ndim = _TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{path}: truncated header ({len(raw)} bytes, {ndim} dimensions declared)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header
    if actual != expected:
        what = "truncated" if actual < expected else "has trailing bytes"
        raise IDXError(
            f"{path}: {what}: header declares shape {shape} ({expected} bytes of data), "
            f"file holds {actual}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=False)


def write_idx(path, array) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed when the name ends in .gz)."""
    path = Path(path)
    array = np.asarray(array)
    code = _CODES.get(array.dtype)
    if code is None:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    payload = header + array.astype(_TYPES[code], copy=False).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(payload)
    return path
