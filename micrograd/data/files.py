"""Reading a data or input file's text: one place for every kind.

``read_text`` reads a UTF-8 file (or standard input, ``-``) whole, and
``source_name`` names it in messages; a missing, unreadable or non-UTF-8 file
is a ``DataError`` (exit 1) naming the file.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .pipeline import DataError


def source_name(source) -> str:
    """How a file (or ``-``, standard input) is named in messages."""
    return "<stdin>" if str(source) == "-" else str(source)


def read_text(source, what="data file") -> str:
    """The whole text of a UTF-8 file (a BOM, as Excel writes, is dropped), or of
    standard input when ``source`` is ``-``.

    A missing or unreadable file, or bytes that are not UTF-8 (a Latin-1
    export), raise ``DataError`` naming the file and, for bad bytes, the line.
    """
    name = source_name(source)
    if str(source) == "-":
        stream = sys.stdin
        raw = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
    else:
        path = Path(source)
        if not path.is_file():
            raise DataError(f"{what} not found: {path}" + (" (it is a directory)" if path.is_dir()
                                                          else ""))
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise DataError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    if isinstance(raw, str):
        return raw[1:] if raw.startswith("\ufeff") else raw
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        offset = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(f"{name} is not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}, "
                        f"byte {offset} of the line cannot be decoded; expected UTF-8 text "
                        f"(re-save it as UTF-8, e.g. Excel's 'CSV UTF-8')") from None
