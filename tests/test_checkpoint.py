"""The checkpoint file: nothing in it is ever executed, anything unexpected is one
CheckpointError, and a write killed or failing at any moment keeps the previous file."""
import errno
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import micrograd.checkpoint as ckpt
from micrograd.build import ModelConfigError, build_model
from micrograd.checkpoint import (CheckpointError, CheckpointSaveError, load_checkpoint,
                                  save_checkpoint)
from micrograd.config.loader import validate
from micrograd.run import restore
from micrograd.train import train

META = {"config": {}, "pipeline": {}, "epoch": 1, "step": 2, "history": [{"epoch": 1}]}
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

LINEAR = {
    "data": {"type": "synthetic", "kind": "linear", "n": 10,
             "splits": {"train": 0.8, "val": 0.2, "test": 0.0}},
    "model": {"layers": [{"type": "linear", "out_features": 1}]},
    "loss": "mse",
    "optimizer": {"type": "adam", "lr": 0.01},
    "train": {"epochs": 3, "batch_size": 4, "seed": 0},
}


def small(path, value=1.0):
    arrays = {"model/0.weight": np.full((2, 3), value, np.float32),
              "model/0.bias": np.zeros(2, np.float32), "state/0": np.arange(4)}
    meta = {**META, "optimizer": {"m": {"__array__": "state/0"}}}
    return save_checkpoint(path, meta, arrays)


def npy_bytes(array, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def meta_bytes(meta=META) -> bytes:
    from micrograd import __version__

    meta = {"format_version": 1, "micrograd_version": __version__, **meta}
    return npy_bytes(np.frombuffer(json.dumps(meta).encode(), np.uint8))


def write_zip(path, members, compression=zipfile.ZIP_STORED) -> Path:
    """A zip with exactly these (name, bytes) members, duplicates included."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": wanted here
        with zipfile.ZipFile(path, "w", compression=compression) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return path


def refused(path, *fragments):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
    return str(info.value)


# ------------------------------------------------------------------ round trip


def test_round_trip_keeps_dtypes_shapes_and_zero_dim_arrays(tmp_path):
    arrays = {"model/a": np.arange(6, dtype=np.float32).reshape(2, 3),
              "model/count": np.array(7, dtype=np.int64),
              "pipeline/flags": np.array([True, False]),
              "pipeline/empty": np.zeros((0, 4)),
              "state/0": np.array([1.5], dtype=">f8")}
    meta = {**META, "optimizer": {"x": {"__array__": "state/0"}}}
    save_checkpoint(tmp_path / "c.npz", meta, arrays)
    loaded_meta, loaded = load_checkpoint(tmp_path / "c.npz")
    assert loaded_meta["epoch"] == 1 and loaded_meta["format_version"] == ckpt.FORMAT_VERSION
    for name, arr in arrays.items():
        assert loaded[name].shape == arr.shape and np.array_equal(loaded[name], arr), name
        assert loaded[name].dtype == arr.dtype.newbyteorder("="), name
        assert loaded[name].flags.writeable
    assert loaded["model/count"].ndim == 0


def test_saved_file_is_a_plain_npz_without_pickle(tmp_path):
    small(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["history", "meta.json", "model/0.bias", "model/0.weight",
                                     "state/0"]


def test_writer_refuses_objects_and_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="only numbers"):
        save_checkpoint(tmp_path / "c.npz", META, {"model/x": np.array([object()])})
    with pytest.raises(ValueError, match="model/<name>"):
        save_checkpoint(tmp_path / "c.npz", META, {"weights": np.zeros(1)})
    assert not (tmp_path / "c.npz").exists()


# ------------------------------------------------------------------ nothing executed


class CreatesAFile:
    """Unpickling this calls open(path, 'w'): it creates the file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickled_payload_is_never_run(tmp_path):
    target = tmp_path / "pwned"
    payload = npy_bytes(np.array([CreatesAFile(target)], dtype=object), allow_pickle=True)
    # The payload is live: NumPy with pickle allowed runs it (the control).
    control = tmp_path / "control"
    np.load(io.BytesIO(npy_bytes(np.array([CreatesAFile(control)], dtype=object),
                                 allow_pickle=True)), allow_pickle=True)
    assert control.exists()
    for name in ("model/0.weight.npy", "meta.json.npy", "state/0.npy"):
        members = [("meta.json.npy", meta_bytes())] if name != "meta.json.npy" else []
        path = write_zip(tmp_path / "evil.npz", members + [(name, payload)])
        refused(path, "pickled object array")
        assert not target.exists()


def test_raw_pickle_and_torch_style_files_are_refused(tmp_path):
    target = tmp_path / "pwned"
    (tmp_path / "raw.npz").write_bytes(pickle.dumps(CreatesAFile(target)))
    refused(tmp_path / "raw.npz", "not a readable micrograd checkpoint")
    torch_like = write_zip(tmp_path / "torch.npz", [
        ("archive/data.pkl", pickle.dumps(CreatesAFile(target))), ("archive/version", b"3")])
    refused(torch_like, "unexpected member 'archive/data.pkl'")
    assert not target.exists()


# ------------------------------------------------------------------ refused files


def test_missing_and_folder_paths(tmp_path):
    refused(tmp_path / "nope.npz", "does not exist")
    refused(tmp_path, "is not a file")


def test_unknown_and_duplicate_members(tmp_path):
    good = npy_bytes(np.zeros(2, np.float32))
    refused(write_zip(tmp_path / "a.npz", [("meta.json.npy", meta_bytes()),
                                           ("model/w.npy", good), ("model/w.npy", good)]),
            "duplicate member names")
    refused(write_zip(tmp_path / "b.npz", [("meta.json.npy", meta_bytes()),
                                           ("weights/w.npy", good)]), "unexpected member")
    refused(write_zip(tmp_path / "c.npz", [("meta.json.npy", meta_bytes()),
                                           ("model/w.txt", good)]), "unexpected member")
    refused(write_zip(tmp_path / "d.npz", [("model/w.npy", good)]), "no metadata member")
    # a state array nothing refers to is as unexpected as an unknown name
    refused(write_zip(tmp_path / "e.npz", [("meta.json.npy", meta_bytes()),
                                           ("state/3.npy", good)]), "unexpected member 'state/3'")


def test_compressed_members_are_refused(tmp_path):
    path = write_zip(tmp_path / "z.npz", [("meta.json.npy", meta_bytes()),
                                          ("model/w.npy", npy_bytes(np.zeros(100)))],
                     compression=zipfile.ZIP_DEFLATED)
    refused(path, "compressed")


def header_with(descr, shape, fortran=False, version=(1, 0)) -> bytes:
    buf = io.BytesIO()
    d = {"descr": descr, "fortran_order": fortran, "shape": shape}
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(buf, d)
    else:
        np.lib.format.write_array_header_2_0(buf, d)
    return buf.getvalue()


@pytest.mark.parametrize("descr,shape,data,fragment", [
    ("<f4", (3,), b"\0" * 8, "holds 8 bytes"),                     # shape says 12 bytes
    ("<f4", (1 << 40,), b"\0" * 8, "over the"),                    # a cap, before allocating
    ("<f4", (-1,), b"", "bytes"),
    ("|O", (1,), b"\0" * 8, "pickled object array"),
    ("|V8", (1,), b"\0" * 8, "expected plain numbers"),
    ([("a", "<f4")], (1,), b"\0" * 4, "expected plain numbers"),
    ("<U2", (1,), b"\0" * 8, "expected plain numbers"),
])
def test_bad_npy_headers_are_refused_before_reading(tmp_path, descr, shape, data, fragment):
    member = header_with(descr, shape) + data
    path = write_zip(tmp_path / "h.npz", [("meta.json.npy", meta_bytes()), ("model/w.npy", member)])
    refused(path, fragment)


def test_fortran_order_and_header_versions(tmp_path):
    data = np.arange(6, dtype="<f8").tobytes()
    path = write_zip(tmp_path / "f.npz", [("meta.json.npy", meta_bytes()),
                                          ("model/w.npy", header_with("<f8", (2, 3), True) + data)])
    refused(path, "Fortran order")
    path = write_zip(tmp_path / "v2.npz", [
        ("meta.json.npy", meta_bytes()),
        ("model/w.npy", header_with("<f8", (2, 3), version=(2, 0)) + data)])
    assert load_checkpoint(path)[1]["model/w"].shape == (2, 3)


def test_size_cap_is_checked_from_the_header(tmp_path, monkeypatch):
    small(tmp_path / "c.npz")
    monkeypatch.setattr(ckpt, "MAX_MEMBER_BYTES", 16)
    refused(tmp_path / "c.npz", "model/0.weight", "over the 16-byte cap")


@pytest.mark.parametrize("meta,fragment", [
    ({**META, "format_version": 99}, "unknown checkpoint format version 99"),
    ({**META, "format_version": True}, "format version True"),
    ({k: v for k, v in META.items() if k != "config"}, "no 'config'"),
    ({**META, "epoch": "3"}, "'epoch' is str"),
    ({**META, "epoch": -1}, "negative"),
    ({**META, "history": [1, 2]}, "list of objects"),
    ({**META, "optimizer": [1]}, "'optimizer' is list"),
    ({**META, "optimizer": {"m": {"__array__": "state/9"}}}, "missing array member"),
])
def test_bad_metadata_is_refused(tmp_path, meta, fragment):
    raw = json.dumps({"format_version": 1, **meta}).encode()
    path = write_zip(tmp_path / "m.npz", [("meta.json.npy", npy_bytes(np.frombuffer(raw, np.uint8)))])
    refused(path, fragment)


def test_metadata_that_is_not_json(tmp_path):
    for raw in (b"\xff\xfe", b"{", b"[" * 100_000 + b"]" * 100_000, b"[1, 2]"):
        path = write_zip(tmp_path / "j.npz", [("meta.json.npy",
                                               npy_bytes(np.frombuffer(raw, np.uint8)))])
        refused(path, str(path))
    path = write_zip(tmp_path / "k.npz", [("meta.json.npy", npy_bytes(np.zeros(3, np.float32)))])
    refused(path, "1-D uint8")
    path = write_zip(tmp_path / "l.npz", [("meta.json.npy", meta_bytes())])
    ckpt.MAX_META_BYTES, old = 10, ckpt.MAX_META_BYTES
    try:
        refused(path, "over the 10-byte cap")
    finally:
        ckpt.MAX_META_BYTES = old


def test_non_finite_weights_are_refused(tmp_path):
    save_checkpoint(tmp_path / "c.npz", META, {"model/0.weight": np.array([1.0, np.nan])})
    refused(tmp_path / "c.npz", "parameter '0.weight' holds NaN")


def test_crc_mismatch_is_refused(tmp_path):
    path = small(tmp_path / "c.npz")
    raw = bytearray(path.read_bytes())
    i = raw.index(np.full((2, 3), 1.0, np.float32).tobytes())
    raw[i] ^= 0xFF  # a flipped bit in the weights
    path.write_bytes(bytes(raw))
    refused(path, "not a readable micrograd checkpoint")


# ------------------------------------------------------------------ property tests


@pytest.fixture(scope="module")
def valid_bytes(tmp_path_factory):
    return small(tmp_path_factory.mktemp("valid") / "c.npz").read_bytes()


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes_are_refused(tmp_path, data):
    (tmp_path / "r.npz").write_bytes(data)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "r.npz")


@FUZZ
@given(cut=st.integers(min_value=0))
def test_truncated_files_are_refused(tmp_path, valid_bytes, cut):
    (tmp_path / "t.npz").write_bytes(valid_bytes[:cut % len(valid_bytes)])
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "t.npz")


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)),
                      min_size=1, max_size=4))
def test_corrupted_files_are_refused_or_load_intact(tmp_path, valid_bytes, flips):
    raw = bytearray(valid_bytes)
    for pos, mask in flips:
        raw[pos % len(raw)] ^= mask
    (tmp_path / "f.npz").write_bytes(bytes(raw))
    (tmp_path / "ok.npz").write_bytes(valid_bytes)
    try:
        meta, arrays = load_checkpoint(tmp_path / "f.npz")
    except CheckpointError:
        return
    # Bytes no reader looks at (timestamps, padding): the content must be unchanged.
    good_meta, good = load_checkpoint(tmp_path / "ok.npz")
    assert meta == good_meta and arrays.keys() == good.keys()
    assert all(np.array_equal(arrays[k], good[k]) for k in good)


DESCRS = ["<f4", ">f8", "<i8", "|u1", "|b1", "<c8", "|O", "|V4", "<U1", "<M8[s]", "<m8[s]"]


@FUZZ
@given(descr=st.sampled_from(DESCRS),
       shape=st.lists(st.integers(-2, 5), max_size=4).map(tuple),
       fortran=st.booleans(), extra=st.integers(-3, 3))
def test_header_checks_agree_with_an_oracle(tmp_path, descr, shape, fortran, extra):
    dtype = np.dtype(descr)
    size = int(np.prod(shape)) * dtype.itemsize if all(n >= 0 for n in shape) else 0
    data = bytes(range(256)) * (max(size + extra, 0) // 256 + 1)
    data = data[:max(size + extra, 0)]
    member = header_with(descr, shape, fortran) + data
    path = write_zip(tmp_path / "o.npz", [("meta.json.npy", meta_bytes()),
                                          ("pipeline/x.npy", member)])
    valid = (dtype.kind in "biufc" and not fortran and all(n >= 0 for n in shape)
             and len(data) == size)
    if not valid:
        with pytest.raises(CheckpointError):
            load_checkpoint(path)
        return
    arr = load_checkpoint(path)[1]["pipeline/x"]
    assert arr.shape == shape and arr.tobytes() == np.frombuffer(data, dtype).astype(
        dtype.newbyteorder("=")).tobytes()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5), children, max_size=4), max_leaves=20)


@FUZZ
@given(extra=st.dictionaries(st.sampled_from(["config", "pipeline", "epoch", "step", "history",
                                              "optimizer", "rng_state", "train_state"]),
                             json_values, max_size=5))
def test_restore_refuses_random_metadata(tmp_path, extra):
    raw = json.dumps({"format_version": 1, **META, **extra}).encode()
    path = write_zip(tmp_path / "m.npz", [
        ("meta.json.npy", npy_bytes(np.frombuffer(raw, np.uint8))),
        ("model/0.weight.npy", npy_bytes(np.zeros((1, 1), np.float32)))])
    with pytest.raises(CheckpointError):
        restore(path)


@FUZZ
@given(members=st.lists(st.tuples(
    st.sampled_from(["meta.json.npy", "model/0.weight.npy", "model/0.bias.npy", "state/0.npy",
                     "pipeline/mean.npy", "model/x", "../evil.npy", "model/ä.npy"]),
    st.one_of(st.binary(max_size=64), st.just(npy_bytes(np.zeros(2))),
              st.just(npy_bytes(np.array([1, "a"], dtype=object), allow_pickle=True)))),
    max_size=5))
def test_random_archives_are_refused(tmp_path, members):
    path = write_zip(tmp_path / "a.npz", members)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


# ------------------------------------------------------------------ model fit


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    return train(validate({**LINEAR, "output": {"dir": str(folder)}})).run_dir


def rewrite(src, dst, edit_meta=None, edit_arrays=None):
    meta, arrays = load_checkpoint(src)
    for key in ("format_version", "micrograd_version"):
        meta.pop(key)
    if edit_meta:
        edit_meta(meta)
    if edit_arrays:
        edit_arrays(arrays)
    return save_checkpoint(dst, meta, arrays)


def test_restore_names_the_parameter_that_does_not_fit(trained, tmp_path):
    def wider(arrays):
        arrays["model/0.weight"] = np.zeros((1, 3), np.float32)
    with pytest.raises(CheckpointError, match=r"parameter '0.weight' has shape 1x3 in the "
                                              r"checkpoint, but 1x1"):
        restore(rewrite(trained / "best.npz", tmp_path / "w.npz", edit_arrays=wider))
    def renamed(arrays):
        arrays["model/0.b"] = arrays.pop("model/0.bias")
    with pytest.raises(CheckpointError, match="no values for parameter '0.bias'"):
        restore(rewrite(trained / "best.npz", tmp_path / "b.npz", edit_arrays=renamed))
    with pytest.raises(CheckpointError, match="'1.weight' is not part of the model"):
        restore(rewrite(trained / "best.npz", tmp_path / "x.npz",
                        edit_arrays=lambda a: a.update({"model/1.weight": np.zeros(1)})))


def test_restore_refuses_a_config_bigger_than_the_file(trained, tmp_path):
    def huge(meta):
        meta["config"]["model"]["layers"] = [{"type": "linear", "out_features": 10**6},
                                             {"type": "linear", "out_features": 1}]
    with pytest.raises(CheckpointError, match="more than the 2 allowed"):
        restore(rewrite(trained / "best.npz", tmp_path / "h.npz", edit_meta=huge))
    with pytest.raises(CheckpointError, match="stored config is not valid"):
        restore(rewrite(trained / "best.npz", tmp_path / "c.npz",
                        edit_meta=lambda m: m["config"].update(optimizer={"type": "nope"})))
    with pytest.raises(CheckpointError, match="preprocessing state"):
        restore(rewrite(trained / "best.npz", tmp_path / "p.npz",
                        edit_meta=lambda m: m.update(pipeline={"kind": "array"})))


def test_parameter_budget_counts_what_the_layers_hold():
    config = validate({**LINEAR, "model": {"layers": [
        {"type": "conv2d", "out_channels": 2, "kernel_size": 3}, {"type": "batchnorm2d"},
        {"type": "relu"}, {"type": "maxpool2d", "kernel_size": 2}, {"type": "flatten"},
        {"type": "linear", "out_features": 4}, {"type": "batchnorm1d"}, {"type": "dropout"},
        {"type": "linear", "out_features": 1, "bias": False}]}})
    model, _ = build_model(config, (1, 8, 8))
    held = sum(v.size for v in model.state_dict().values())
    build_model(config, (1, 8, 8), max_values=held)
    with pytest.raises(ModelConfigError, match=f"{held:,} values"):
        build_model(config, (1, 8, 8), max_values=held - 1)


# ------------------------------------------------------------------ failed writes


def leftovers(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("where,err", [("replace", errno.ENOSPC), ("fsync", errno.ENOSPC),
                                       ("replace", errno.EACCES)])
def test_a_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch, where, err):
    path = small(tmp_path / "checkpoint.npz", value=1.0)

    def fail(*args, **kwargs):
        raise OSError(err, os.strerror(err))
    monkeypatch.setattr(os, where, fail)
    with pytest.raises(CheckpointSaveError) as info:
        small(path, value=2.0)
    monkeypatch.undo()
    message = str(info.value)
    assert os.strerror(err) in message and "previous checkpoint.npz is unchanged" in message
    assert ("free some space" if err == errno.ENOSPC else "is writable") in message
    assert load_checkpoint(path)[1]["model/0.weight"][0, 0] == 1.0
    assert leftovers(tmp_path) == []


def test_training_stops_cleanly_when_the_disk_fills(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from micrograd_cli.main import app

    real_replace, saves = os.replace, []

    def replace(src, dst):
        if str(dst).endswith("checkpoint.npz"):
            saves.append(dst)
            if len(saves) > 1:  # the first save works, then the disk is full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(src, dst)

    (tmp_path / "c.yaml").write_text(json.dumps(
        {**LINEAR, "train": {**LINEAR["train"], "checkpoint_every": 1}}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "replace", replace)
    result = CliRunner().invoke(app, ["train", "c.yaml", "--set", "output.dir=run"])
    monkeypatch.undo()
    assert result.exit_code == 1, result.output
    out = " ".join(result.output.split())
    assert "error: could not write" in out and "No space left on device" in out
    assert "the previous checkpoint.npz is unchanged" in out and "Traceback" not in out
    assert load_checkpoint(tmp_path / "run" / "checkpoint.npz")[0]["epoch"] == 1
    assert leftovers(tmp_path / "run") == []


def test_a_folder_that_cannot_be_written(tmp_path, monkeypatch):
    real_open = os.open

    def denied(path, *args, **kwargs):
        if str(path).endswith(".tmp"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(CheckpointSaveError, match="Permission denied.*no checkpoint.npz was "
                                                  "written"):
        small(tmp_path / "checkpoint.npz")


posix_only = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")

WRITER = """
import resource, signal, sys
import numpy as np
from micrograd.checkpoint import CheckpointSaveError, save_checkpoint
meta = {"config": {}, "pipeline": {}, "epoch": 0, "step": 0, "history": []}
path, start = sys.argv[1], int(sys.argv[2])
if sys.argv[3] == "limit":   # a real write error: files may not grow past 64 KiB
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))
print("ready", flush=True)
i = start
while True:
    i += 1
    arrays = {"model/w": np.full(1 << 19, i, np.float32), "model/b": np.full(7, i, np.float32)}
    try:
        save_checkpoint(path, {**meta, "epoch": i}, arrays)
    except CheckpointSaveError as exc:
        print("error", exc, flush=True)
        break
    print(i, flush=True)
"""


def writer(tmp_path, path, start, mode="loop"):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    return subprocess.Popen([sys.executable, str(script), str(path), str(start), mode],
                            stdout=subprocess.PIPE, text=True)


@posix_only
def test_write_error_from_the_os_keeps_the_old_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, {**META, "epoch": 0}, {"model/w": np.zeros(3, np.float32)})
    proc = writer(tmp_path, path, 0, mode="limit")
    out, _ = proc.communicate(timeout=60)
    assert "error could not write" in out and "File too large" in out, out
    assert "the previous checkpoint.npz is unchanged" in out
    assert load_checkpoint(path)[0]["epoch"] == 0
    assert leftovers(tmp_path) == []


@posix_only
def test_sigkill_while_saving_never_leaves_a_broken_checkpoint(tmp_path):
    """A process saving in a loop, killed at random moments: the file under the
    final name is always a complete checkpoint, the latest or the one before."""
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, {**META, "epoch": 0}, {"model/w": np.zeros(3, np.float32),
                                                 "model/b": np.zeros(7, np.float32)})
    rng = np.random.default_rng(0)
    last = 0
    for round_ in range(16):
        proc = writer(tmp_path, path, last)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, 0.04))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        written = [int(v) for v in out.split()]
        meta, arrays = load_checkpoint(path)  # always loads
        epoch = meta["epoch"]
        # the last save it reported, or the one it had renamed into place when killed
        reported = written[-1] if written else last
        assert epoch in (reported, reported + 1), (round_, epoch, written)
        assert np.all(arrays["model/w"] == epoch) and np.all(arrays["model/b"] == epoch)
        last = epoch
    assert last > 0  # some saves did complete between the kills
    # The killed writers' temporary files go with the next save.
    save_checkpoint(path, {**META, "epoch": last + 1}, {"model/w": np.zeros(3, np.float32)})
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz", "writer.py"]


def test_temporaries_of_a_live_writer_are_left_alone(tmp_path):
    live = tmp_path / f".checkpoint.npz.{os.getppid()}.abc.tmp"
    dead = tmp_path / ".checkpoint.npz.999999999.abc.tmp"
    live.write_bytes(b"x")
    dead.write_bytes(b"x")
    small(tmp_path / "checkpoint.npz")
    assert live.exists() and not dead.exists()


def _paths(tree, prefix=()):
    if prefix:
        yield prefix
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _paths(v, prefix + (i,))


@pytest.fixture(scope="module")
def tabular_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tabular")
    (folder / "t.csv").write_text("area,kind,y\n" + "".join(
        f"{10 + i},{'abc'[i % 3]},{i % 2}\n" for i in range(30)))
    cfg = {**LINEAR, "data": {"type": "csv", "path": str(folder / "t.csv"), "target": "y",
                              "task": "classification"},
           "model": {"layers": [{"type": "linear", "out_features": 2}]}, "loss": "cross_entropy",
           "output": {"dir": str(folder / "run")}}
    return train(validate(cfg)).run_dir / "best.npz"


@FUZZ
@given(data=st.data())
def test_restore_of_mutated_metadata_refuses_or_works(tmp_path, tabular_checkpoint, data):
    """A real checkpoint with some metadata values replaced: restore either gives a
    model or one CheckpointError, whatever the values."""
    meta, arrays = load_checkpoint(tabular_checkpoint)
    for key in ("format_version", "micrograd_version"):
        meta.pop(key)
    for _ in range(data.draw(st.integers(1, 3))):
        section = meta[data.draw(st.sampled_from(["pipeline", "config"]))]
        where = data.draw(st.sampled_from(list(_paths(section))))
        node = section
        for part in where[:-1]:
            node = node[part]
        node[where[-1]] = data.draw(st.sampled_from(
            [None, True, 0, -1, 3, 1e9, 0.5, "", "x", [], {}, [0], ["a", 1], {"a": 1}]))
    path = save_checkpoint(tmp_path / "m.npz", meta, arrays)
    try:
        restored = restore(path)
    except CheckpointError:
        return
    assert restored.model is not None
