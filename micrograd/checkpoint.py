"""The checkpoint format: one ``.npz`` file, no pickle anywhere.

Members:

- ``meta.json``: a uint8 array holding UTF-8 JSON: format version, micrograd
  version, the resolved config, preprocessing metadata, epoch, step, RNG state,
  metrics history, and the structure of the optimiser/scheduler state with
  every array replaced by a reference ``{"__array__": "member name"}``;
- one plain numeric array per parameter/buffer (``model/<name>``), per
  optimiser state tensor (``state/<n>``) and per preprocessing array
  (``pipeline/<name>``).

Writes are atomic (temporary file in the same folder, fsync, rename), so an
interrupted save leaves the previous checkpoint intact. Loading uses
``allow_pickle=False`` and refuses anything it does not expect.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
META = "meta.json"
PREFIXES = ("model/", "state/", "pipeline/")
#: Largest member accepted, checked from the header before any allocation.
MAX_MEMBER_BYTES = 4 << 30


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or used; the message names the problem."""


# ------------------------------------------------------- nested state <-> arrays


def pack_state(obj, arrays: dict, prefix: str):
    """Replace every ndarray inside nested dicts/lists by a reference to a member."""
    if isinstance(obj, np.ndarray):
        name = f"{prefix}{len(arrays)}"
        arrays[name] = obj
        return {"__array__": name}
    if isinstance(obj, dict):
        return {str(k): pack_state(v, arrays, prefix) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [pack_state(v, arrays, prefix) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def unpack_state(obj, arrays: dict):
    """Inverse of ``pack_state``."""
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            name = obj["__array__"]
            if name not in arrays:
                raise CheckpointError(f"state refers to a missing array member {name!r}")
            return arrays[name]
        return {k: unpack_state(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unpack_state(v, arrays) for v in obj]
    return obj


# ------------------------------------------------------------------ writing


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that readers see the old file or the new, never half."""
    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def save_checkpoint(path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Write ``meta`` (JSON-able) and numeric ``arrays`` as one checkpoint file, atomically."""
    from micrograd import __version__

    meta = {"format_version": FORMAT_VERSION, "micrograd_version": __version__, **meta}
    members = {META: np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)}
    for name, arr in arrays.items():
        if not name.startswith(PREFIXES):
            raise ValueError(f"checkpoint member {name!r} must start with one of {PREFIXES}")
        arr = np.ascontiguousarray(arr)
        if arr.dtype == object:
            raise ValueError(f"checkpoint member {name!r} is an object array; only numbers are stored")
        members[name] = arr
    buf = io.BytesIO()
    np.savez(buf, **members)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


# ------------------------------------------------------------------ reading


def load_checkpoint(path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a checkpoint: (meta, arrays). Raises CheckpointError for anything unexpected."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            if len(names) != len(set(names)):
                raise CheckpointError(f"{path}: duplicate member names")
            for info in infos:
                if info.file_size > MAX_MEMBER_BYTES:
                    raise CheckpointError(
                        f"{path}: member {info.filename} declares {info.file_size} bytes, "
                        f"over the {MAX_MEMBER_BYTES}-byte cap"
                    )
                key = info.filename.removesuffix(".npy")
                if not info.filename.endswith(".npy") or not (
                    key == META or key.startswith(PREFIXES)
                ):
                    raise CheckpointError(f"{path}: unexpected member {info.filename!r}")
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise CheckpointError(f"{path}: not a readable micrograd checkpoint ({exc})") from None
    raw = arrays.pop(META, None)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"{path}: no metadata member {META!r}")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise CheckpointError(
            f"{path}: unknown checkpoint format version {version!r} (this micrograd reads "
            f"version {FORMAT_VERSION})"
        )
    for name, arr in arrays.items():
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise CheckpointError(f"{path}: member {name!r} has non-numeric dtype {arr.dtype}")
        if name.startswith("model/") and np.issubdtype(arr.dtype, np.floating) and not np.all(
            np.isfinite(arr)
        ):
            raise CheckpointError(f"{path}: parameter {name[6:]!r} holds NaN or infinite values")
    return meta, arrays
