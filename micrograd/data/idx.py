"""The IDX file format of MNIST and Fashion-MNIST, read and written with NumPy alone.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number
of dimensions), one big-endian uint32 per dimension, then the values in C
order. Files may be gzip-compressed (``.gz``), as they are distributed.

``read_idx`` reads and checks the header first, then reads (decompresses)
exactly the number of bytes the header declares, at most ``max_bytes``
(2 GiB by default), and one byte more to detect trailing data: a small gzip
file that inflates to gigabytes is refused without being inflated.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from .pipeline import DataError

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

#: The largest payload ``read_idx`` reads by default: 2 GiB (MNIST's 60,000
#: training images are 47 MB).
MAX_BYTES = 2 << 30
# Payloads are read in pieces, so a truncated file never allocates its declared size.
_CHUNK = 16 << 20


class IDXError(DataError):
    """A file that is missing or not a well-formed IDX file; the message names the file."""


def _read_exactly(fh, n: int) -> bytearray:
    """Up to ``n`` bytes from ``fh``; fewer only at the end of the file."""
    buf = bytearray()
    while len(buf) < n:
        chunk = fh.read(min(_CHUNK, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _describe(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n} bytes"


def _read(path: Path, fh, max_bytes: int, raw_size: int | None) -> np.ndarray:
    head = _read_exactly(fh, 4)
    if len(head) < 4:
        raise IDXError(f"{path}: file is {len(head)} bytes, too short for an IDX header")
    if head[0] != 0 or head[1] != 0 or head[2] not in _TYPES:
        raise IDXError(
            f"{path}: bad magic number {bytes(head).hex()} (expected 0000 then a type code "
            f"08/09/0b/0c/0d/0e and the number of dimensions)"
        )
    dtype, ndim = _TYPES[head[2]], head[3]
    dims = _read_exactly(fh, 4 * ndim)
    if len(dims) < 4 * ndim:
        raise IDXError(f"{path}: truncated header ({4 + len(dims)} bytes, {ndim} dimensions "
                       f"declared)")
    shape = tuple(int.from_bytes(dims[4 * i: 4 * i + 4], "big") for i in range(ndim))
    expected = dtype.itemsize
    for n in shape:  # Python integers: no overflow however absurd the dimensions
        expected *= n
    if expected > max_bytes:
        raise IDXError(
            f"{path}: header declares shape {shape} of {dtype.newbyteorder('=').name} "
            f"({_describe(expected)} of data), more than the {_describe(max_bytes)} limit; "
            f"not an MNIST-style file, or a damaged header (pass max_bytes to read larger files)"
        )
    if raw_size is not None and raw_size - 4 - 4 * ndim != expected:
        actual = raw_size - 4 - 4 * ndim
        what = "truncated" if actual < expected else "has trailing bytes"
        raise IDXError(f"{path}: {what}: header declares shape {shape} ({expected} bytes of "
                       f"data), file holds {actual}")
    payload = _read_exactly(fh, expected)
    if len(payload) < expected:
        raise IDXError(f"{path}: truncated: header declares shape {shape} ({expected} bytes of "
                       f"data), file holds {len(payload)}")
    if fh.read(1):  # one byte more, never the rest: a gzip bomb is not inflated
        raise IDXError(f"{path}: trailing data: header declares shape {shape} ({expected} bytes "
                       f"of data), but the file holds more")
    data = np.frombuffer(payload, dtype=dtype).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """Read an IDX file (raw or gzip) into an array of its stored shape and type.

    Raises IDXError (a ``DataError``) naming the file when it is missing or
    unreadable, or when the magic number, the declared sizes or the amount of
    data do not agree. A header declaring more than ``max_bytes`` of data is
    refused before any data is read.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            if fh.read(2) == b"\x1f\x8b":
                fh.seek(0)
                with gzip.GzipFile(fileobj=fh) as gz:
                    return _read(path, gz, max_bytes, None)
            fh.seek(0)
            return _read(path, fh, max_bytes, path.stat().st_size)
    except FileNotFoundError:
        raise IDXError(f"{path}: file not found (expected an IDX file, gzip or raw)") from None
    except IsADirectoryError:
        raise IDXError(f"{path} is a directory, not an IDX file") from None
    except PermissionError:
        raise IDXError(f"{path}: cannot be read (permission denied)") from None
    except (OSError, EOFError, zlib.error) as exc:  # gzip raises these on damaged streams
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise IDXError(f"{path}: cannot be read as an IDX file ({reason})") from None


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
