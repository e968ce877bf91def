"""train.loggers: [tensorboard]: events read back with TensorBoard's own reader."""
import sys

import pytest

from conftest import config
from micrograd.config.loader import ConfigError
from micrograd.train import train

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator")


def read_events(folder):
    acc = event_accumulator.EventAccumulator(
        str(folder), size_guidance={event_accumulator.SCALARS: 0,
                                    event_accumulator.HISTOGRAMS: 0,
                                    event_accumulator.TENSORS: 0})
    acc.Reload()
    return acc


def test_scalars_histograms_and_config_text(tmp_path):
    result = train(config(tmp_path / "run", loggers=["csv", "tensorboard"], histogram_every=2))
    acc = read_events(result.run_dir / "tensorboard")
    tags = acc.Tags()
    for tag in ("train_loss", "val_loss", "val_accuracy", "lr", "seconds"):
        assert tag in tags["scalars"], tag
    losses = acc.Scalars("train_loss")
    assert [e.step for e in losses] == [1, 2, 3, 4, 5, 6]
    for event, row in zip(losses, result.history):
        assert event.value == pytest.approx(row["train_loss"], rel=1e-6)
    # the epoch's learning rate; the step scheduler halves it every 2 epochs
    assert [e.value for e in acc.Scalars("lr")] == pytest.approx(
        [0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025], rel=1e-6)
    assert "weights/0.weight" in tags["histograms"] and "grads/0.weight" in tags["histograms"]
    hist = acc.Histograms("weights/0.weight")
    assert [h.step for h in hist] == [2, 4, 6]
    assert hist[0].histogram_value.num == 8 * 2  # 2 blob features -> 8 units
    text_tags = [t for t in tags["tensors"] if t.startswith("config")]
    assert text_tags
    text = acc.Tensors(text_tags[0])[0].tensor_proto.string_val[0].decode()
    assert "cross_entropy" in text and "tensorboard" in text
    assert (result.run_dir / "metrics.csv").is_file()  # csv stays on


def test_histograms_off(tmp_path):
    result = train(config(tmp_path / "run", loggers=["tensorboard"], histogram_every=0, epochs=2))
    acc = read_events(result.run_dir / "tensorboard")
    assert acc.Tags()["histograms"] == []
    assert len(acc.Scalars("train_loss")) == 2


def test_resume_continues_the_event_folder(tmp_path):
    first = train(config(tmp_path / "run", loggers=["tensorboard"], epochs=3))
    train(config(tmp_path / "other", loggers=["tensorboard"], epochs=6), resume=first.run_dir)
    acc = read_events(first.run_dir / "tensorboard")
    assert [e.step for e in acc.Scalars("train_loss")] == [1, 2, 3, 4, 5, 6]


def test_missing_extra_fails_before_the_run(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ConfigError, match=r"pip install 'micrograd-trainer\[tensorboard\]'"):
        train(config(tmp_path / "run", loggers=["tensorboard"]))
    assert not (tmp_path / "run").exists()


def test_unknown_logger_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="loggers"):
        config(tmp_path / "run", loggers=["wandb"])
