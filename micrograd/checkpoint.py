"""The checkpoint format: one ``.npz`` file, no pickle anywhere.

Members:

- ``meta.json``: a uint8 array holding UTF-8 JSON: format version, micrograd
  version, the resolved config, preprocessing metadata, epoch, step, RNG state,
  the metrics history's column names, and the structure of the
  optimiser/scheduler state with every array replaced by a reference
  ``{"__array__": "member name"}``;
- one plain numeric array per parameter/buffer (``model/<name>``), per
  optimiser state tensor (``state/<n>``) and per preprocessing array
  (``pipeline/<name>``), and ``history``: the metrics history as one float64
  table, a row per epoch (NaN where an epoch has no value), so that a long
  run's checkpoint stays small. ``load_checkpoint`` gives the history back as
  a list of dicts, as format 1 stored it in the JSON.

Writes are atomic (temporary file in the same folder, flush, fsync, rename,
fsync of the folder), so a process killed at any moment leaves the previous
checkpoint intact; a failed write raises :class:`CheckpointSaveError` and
leaves it intact too.

A checkpoint may come from anyone, so reading never lets NumPy (or pickle)
interpret a member: each member's ``.npy`` header is parsed and checked here
(plain numeric dtype, C order, a shape whose byte size is exactly what the
member holds and under :data:`MAX_MEMBER_BYTES`) before anything is allocated,
and every problem - a broken zip, a pickled or object member, an unknown
member name, bad JSON, an unknown format version - is one
:class:`CheckpointError` naming it.
"""
from __future__ import annotations

import errno
import io
import json
import math
import os
import re
import secrets
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

FORMAT_VERSION = 2
#: Versions this micrograd reads: 1 kept the history as JSON rows.
READABLE_VERSIONS = (1, 2)
META = "meta.json"
PREFIXES = ("model/", "state/", "pipeline/")
#: Largest array member accepted, checked from its header before any allocation.
MAX_MEMBER_BYTES = 4 << 30
#: Largest metadata member (the JSON text) accepted.
MAX_META_BYTES = 256 << 20
MAX_MEMBERS = 100_000
MAX_NDIM = 32

# model/0.weight, pipeline/center, state/12 (+ ".npy" inside the zip)
_MEMBER = re.compile(r"(?:(?:model|pipeline)/[A-Za-z0-9_.\-]+|state/[0-9]+|history)")
# What reading a hostile file can raise, anywhere from the zip layer to the JSON.
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, struct.error, UnicodeDecodeError, ValueError,
                TypeError, KeyError, IndexError, EOFError, OSError, RecursionError,
                OverflowError, NotImplementedError, RuntimeError, SyntaxError)


#: What putting a checkpoint's JSON state into live objects (a pipeline, an optimiser,
#: a data loader) can raise when the file is hostile; callers turn it into CheckpointError.
STATE_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError,
                RecursionError)


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or used; the message names the problem."""


class CheckpointSaveError(CheckpointError):
    """A checkpoint could not be written (full disk, no permission); the previous
    file under that name is unchanged."""


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
            if not isinstance(name, str) or name not in arrays:
                raise CheckpointError(f"state refers to a missing array member {name!r}")
            return arrays[name]
        return {k: unpack_state(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unpack_state(v, arrays) for v in obj]
    return obj


def _references(obj):
    """Every ``{"__array__": name}`` value inside nested JSON data (iteratively)."""
    stack = [obj]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if set(node) == {"__array__"}:
                yield node["__array__"]
            else:
                stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


# ------------------------------------------------------------------ writing


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files that a killed writer left beside ``path``.

    Their names carry the writer's process id; those of a process still alive
    (another run writing the same folder) are left alone.
    """
    prefix = _temp_prefix(path)
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid = name[len(prefix):].split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        try:
            entry.unlink()
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but is someone else's, or no way to tell
        return True
    return True


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable (POSIX; other systems have no folder handles)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that readers see the old file or the new, never half.

    The bytes go to a temporary file in the same folder, which is flushed,
    fsynced and renamed over ``path``; then the folder is fsynced. Raises
    :class:`CheckpointSaveError` (the old file untouched) when any step fails.
    """
    path = Path(path)
    folder = path.parent
    # Named before it exists, so that an interrupt at any point after its creation
    # still finds it to delete; the process id lets a later save remove it if we die.
    tmp = folder / f"{_temp_prefix(path)}{os.getpid()}.{secrets.token_hex(8)}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(path)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        _discard(tmp)
        kept = (f"the previous {path.name} is unchanged" if path.exists()
                else f"no {path.name} was written")
        raise CheckpointSaveError(f"could not write {path}: {write_failure(exc, folder)}; "
                                  f"{kept}") from exc
    except BaseException:  # KeyboardInterrupt included: never leave our temporary behind
        _discard(tmp)
        raise
    _fsync_folder(folder)


def write_new_file(path, payload: bytes, force: bool = False) -> Path:
    """Write a file the user names (an export, a predictions CSV) without ever writing
    over one that is there: a temporary beside it, then linked into place, which fails
    if a file appeared meanwhile; ``force`` renames over it instead. FileExistsError
    says how to go on."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(f"{path} already exists; choose another --output, or "
                                      f"--force to replace it") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_failure(exc: OSError, folder: Path) -> str:
    """Why a write into ``folder`` failed, with what to do about it."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason += " (free some space, or set output.dir to another disk)"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason += f" (check that {folder} is writable)"
    return reason


def _discard(tmp) -> None:
    if tmp is not None:
        try:
            os.unlink(tmp)
        except OSError:  # never created, or already renamed
            pass


def save_checkpoint(path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Write ``meta`` (JSON-able) and numeric ``arrays`` as one checkpoint file, atomically."""
    from micrograd import __version__

    meta = {"format_version": FORMAT_VERSION, "micrograd_version": __version__, **meta}
    meta["history"], table = _history_table(meta.get("history", []))
    members = {META: np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
               "history": table}
    for name, arr in arrays.items():
        if not _MEMBER.fullmatch(name):
            raise ValueError(f"checkpoint member {name!r} must be model/<name>, state/<n> or "
                             f"pipeline/<name>")
        arr = np.asarray(arr, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ValueError(f"checkpoint member {name!r} has dtype {arr.dtype}; only numbers "
                             f"are stored")
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
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file (expected a .npz checkpoint)")
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            with zipfile.ZipFile(fh) as zf:
                arrays = _read_members(zf, size, path)
    except CheckpointError:
        raise
    except MemoryError:
        raise CheckpointError(f"{path}: too large to load into memory") from None
    except _READ_ERRORS as exc:
        raise CheckpointError(f"{path}: not a readable micrograd checkpoint "
                              f"({type(exc).__name__}: {exc})") from None
    meta = _read_meta(arrays.pop(META), path)
    if meta["format_version"] >= 2:
        meta["history"] = _history_rows(meta.get("history"), arrays.pop("history", None), path)
    elif "history" in arrays:
        raise CheckpointError(f"{path}: unexpected member 'history' in a format 1 checkpoint")
    _check_contents(meta, arrays, path)
    return meta, arrays


def _history_table(rows) -> tuple[dict, np.ndarray]:
    """Metrics history rows (dicts of numbers) -> ({columns, integer columns}, float64 table)."""
    rows = list(rows)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    table = np.full((len(rows), len(columns)), np.nan)
    for i, row in enumerate(rows):
        for j, key in enumerate(columns):
            if key in row:
                table[i, j] = row[key]
    integer = [k for k in columns
               if all(type(row[k]) is int for row in rows if k in row)]
    return {"columns": columns, "integer": integer}, table


def _history_rows(spec, table, path) -> list[dict]:
    """Inverse of ``_history_table``, checking that the two fit together."""
    if (not isinstance(spec, dict) or set(spec) != {"columns", "integer"}
            or not all(isinstance(spec[k], list) and all(isinstance(c, str) for c in spec[k])
                       for k in spec)):
        raise CheckpointError(f"{path}: metadata 'history' must name its columns and integer "
                              f"columns")
    if table is None or table.ndim != 2 or table.shape[1] != len(spec["columns"]) \
            or table.dtype != np.float64:
        raise CheckpointError(f"{path}: the 'history' member does not fit its "
                              f"{len(spec['columns'])} columns")
    integer = set(spec["integer"])
    try:
        return [{key: int(v) if key in integer else float(v)
                 for key, v in zip(spec["columns"], row.tolist()) if v == v}
                for row in table]
    except OverflowError:
        raise CheckpointError(f"{path}: an integer column of the history holds an infinite "
                              f"value") from None


def _read_members(zf: zipfile.ZipFile, file_size: int, path: Path) -> dict[str, np.ndarray]:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise CheckpointError(f"{path}: {len(infos)} members, more than {MAX_MEMBERS}")
    names = [info.filename for info in infos]
    if len(names) != len(set(names)):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise CheckpointError(f"{path}: duplicate member names {dup[:5]}")
    stored = 0
    for info in infos:
        key = info.filename[:-4] if info.filename.endswith(".npy") else None
        if key is None or not (key == META or _MEMBER.fullmatch(key)):
            raise CheckpointError(f"{path}: unexpected member {info.filename!r} (a micrograd "
                                  f"checkpoint holds only meta.json, model/, state/ and "
                                  f"pipeline/ arrays)")
        if info.flag_bits & 0x1:
            raise CheckpointError(f"{path}: member {info.filename!r} is encrypted")
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise CheckpointError(f"{path}: member {info.filename!r} is compressed; micrograd "
                                  f"checkpoints store members uncompressed")
        stored += info.file_size
    if f"{META}.npy" not in names:
        raise CheckpointError(f"{path}: no metadata member {META!r}")
    # Stored members: their declared sizes must fit in the bytes actually on disk,
    # so no header can make us allocate more than the file holds.
    if stored > file_size:
        raise CheckpointError(f"{path}: members declare {stored} bytes, but the file holds "
                              f"{file_size}; the file is truncated or corrupt")
    arrays = {}
    for info in infos:
        arrays[info.filename[:-4]] = _read_member(zf, info, path)
    return arrays


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    """One ``.npy`` member, its header checked before its data is allocated."""
    name = info.filename[:-4]
    where = f"{path}: member {name!r}"
    with zf.open(info) as fp:
        version = npy_format.read_magic(fp)
        if version == (1, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_2_0(fp)
        else:
            raise CheckpointError(f"{where}: unsupported .npy version {version}")
        if dtype.hasobject:
            raise CheckpointError(f"{where} is a pickled object array; checkpoints hold only "
                                  f"numbers and are never unpickled")
        if dtype.names is not None or dtype.subdtype is not None or dtype.kind not in "biufc":
            raise CheckpointError(f"{where} has dtype {dtype}; expected plain numbers")
        if fortran_order:
            raise CheckpointError(f"{where} is stored in Fortran order; expected C order")
        if len(shape) > MAX_NDIM:
            raise CheckpointError(f"{where} declares {len(shape)} dimensions")
        if name == META and (dtype != np.uint8 or len(shape) != 1):
            raise CheckpointError(f"{where} must be a 1-D uint8 array (UTF-8 JSON), got "
                                  f"{dtype} of shape {shape}")
        nbytes = math.prod(shape) * dtype.itemsize
        cap = MAX_META_BYTES if name == META else MAX_MEMBER_BYTES
        if nbytes > cap:
            raise CheckpointError(f"{where} declares shape {shape} ({nbytes} bytes), over the "
                                  f"{cap}-byte cap")
        held = info.file_size - fp.tell()
        if nbytes != held:
            raise CheckpointError(f"{where} declares shape {shape} of {dtype} ({nbytes} bytes), "
                                  f"but holds {held} bytes of data")
        arr = np.empty(shape, dtype)
        view = memoryview(arr.reshape(-1).view(np.uint8))
        got = 0
        while got < nbytes:
            n = fp.readinto(view[got:])
            if not n:
                raise CheckpointError(f"{where} is truncated ({got} of {nbytes} bytes)")
            got += n
        if fp.read(1):  # also reaches the end of the member, where zipfile checks its CRC
            raise CheckpointError(f"{where} has trailing bytes")
    if not dtype.isnative:
        arr = arr.astype(dtype.newbyteorder("="))
    return arr


def _read_meta(raw: np.ndarray, path: Path) -> dict:
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path}: metadata is not valid JSON ({type(exc).__name__}: "
                              f"{exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: metadata is a JSON {type(meta).__name__}, expected an "
                              f"object")
    version = meta.get("format_version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{path}: unknown checkpoint format version {version!r} (this micrograd reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))})"
        )
    return meta


#: Metadata keys every checkpoint has, and their JSON types.
_REQUIRED = {"config": dict, "pipeline": dict, "epoch": int, "step": int, "history": list}
_OPTIONAL = {"micrograd_version": str, "rng_state": dict, "optimizer": dict, "scheduler": dict,
             "loader": dict, "train_state": dict}


def _check_contents(meta: dict, arrays: dict[str, np.ndarray], path: Path) -> None:
    """Metadata shape, array references, and finite weights."""
    for key, kind in _REQUIRED.items():
        if key not in meta:
            raise CheckpointError(f"{path}: metadata has no {key!r}")
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise CheckpointError(f"{path}: metadata {key!r} is {type(meta[key]).__name__}, "
                                  f"expected {kind.__name__}")
    for key, kind in _OPTIONAL.items():
        if meta.get(key) is not None and not isinstance(meta[key], kind):
            raise CheckpointError(f"{path}: metadata {key!r} is {type(meta[key]).__name__}, "
                                  f"expected {kind.__name__}")
    if meta["epoch"] < 0 or meta["step"] < 0:
        raise CheckpointError(f"{path}: negative epoch or step in the metadata")
    if not all(isinstance(row, dict) for row in meta["history"]):
        raise CheckpointError(f"{path}: metadata 'history' must be a list of objects")
    referenced = set()
    for name in _references(meta):
        if not isinstance(name, str) or not name.startswith("state/") or name not in arrays:
            raise CheckpointError(f"{path}: metadata refers to a missing array member {name!r}")
        referenced.add(name)
    unused = sorted(n for n in arrays if n.startswith("state/") and n not in referenced)
    if unused:
        raise CheckpointError(f"{path}: unexpected member {unused[0]!r} (no metadata refers to it)")
    for name, arr in arrays.items():
        if name.startswith("model/") and arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
            raise CheckpointError(f"{path}: parameter {name[6:]!r} holds NaN or infinite values")


# ------------------------------------------------------------ into a model


def load_weights(model, weights: dict, path) -> None:
    """Copy checkpoint arrays into ``model``; CheckpointError names any misfit parameter."""
    own = model.state_dict()
    for name, target in own.items():
        if name not in weights:
            raise CheckpointError(f"{path}: no values for parameter {name!r} of the model its "
                                  f"config describes")
        value = weights[name]
        if value.shape != target.shape:
            raise CheckpointError(
                f"{path}: parameter {name!r} has shape {_fmt_shape(value.shape)} in the "
                f"checkpoint, but {_fmt_shape(target.shape)} in the model its config describes")
        if (value.dtype.kind == "f") != (target.dtype.kind == "f") or value.dtype.kind == "c":
            raise CheckpointError(f"{path}: parameter {name!r} is {value.dtype} in the "
                                  f"checkpoint, the model expects {target.dtype}")
    extra = sorted(set(weights) - set(own))
    if extra:
        raise CheckpointError(f"{path}: parameter {extra[0]!r} is not part of the model its "
                              f"config describes")
    model.load_state_dict(weights)


def _fmt_shape(shape) -> str:
    return "x".join(map(str, shape)) or "scalar"
