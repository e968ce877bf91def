"""The Trainer from Python: any Module, any callbacks, state that resumes bit for bit."""
import numpy as np
import pytest

import micrograd.nn as mn
import micrograd.tensor as mt
from micrograd.checkpoint import load_checkpoint
from micrograd.training import (Callback, CSVLogger, EarlyStopping, ModelCheckpoint, Trainer,
                                TrainingDiverged)


class TwoLayer(mn.Module):
    """A hand-written model: no Sequential anywhere."""

    def __init__(self):
        super().__init__()
        self.hidden = mn.Linear(2, 8)
        self.out = mn.Linear(8, 1)

    def forward(self, x):
        return self.out(self.hidden(x).tanh())


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = (x[:, :1] * 3 - x[:, 1:] + 0.5).astype(np.float32)
    return x, y


def make(epochs, callbacks=(), seed=0, lr=0.05):
    mt.manual_seed(seed)
    model = TwoLayer()
    x, y = data()
    loader = mt.DataLoader(mt.TensorDataset(x, y), batch_size=16, shuffle=True, seed=seed)
    xv, yv = data(16, seed=1)
    loss_fn = mt.MSELoss()

    def validate(m):
        with mt.no_grad():
            pred = m(mt.Tensor(xv)).data
        return {"loss": float(((pred - yv) ** 2).mean()), "mae": float(np.abs(pred - yv).mean())}

    optimizer = mt.Adam(model.parameters(), lr=lr)
    return Trainer(model, loss_fn, optimizer, loader, epochs=epochs, validate=validate,
                   scheduler=mt.StepLR(optimizer, step_size=2, gamma=0.5),
                   callbacks=list(callbacks))


class CountBatches(Callback):
    """A user's callback with state of its own."""

    def __init__(self):
        self.seen = 0

    def on_batch_end(self, trainer, loss):
        self.seen += 1

    def state_dict(self):
        return {"seen": self.seen}

    def load_state_dict(self, state):
        self.seen = state.get("seen", 0)


def test_a_hand_written_module_trains_with_callbacks(tmp_path):
    counter = CountBatches()
    trainer = make(6, [counter, ModelCheckpoint(tmp_path, monitor="mae"),
                       CSVLogger(tmp_path / "m.csv", ["epoch", "train_loss", "val_loss", "val_mae"])])
    state = trainer.fit()
    assert state.epoch == 6 and counter.seen == 6 * 4
    assert state.history[-1]["val_mae"] < state.history[0]["val_mae"]
    best = load_checkpoint(tmp_path / "best.npz")[0]
    maes = [row["val_mae"] for row in state.history]
    assert best["epoch"] == 1 + int(np.argmin(maes))
    assert (tmp_path / "m.csv").read_text().count("\n") == 7


def test_state_dict_resumes_bit_for_bit_with_every_callback():
    straight = make(6, [CountBatches(), EarlyStopping("mae")])
    straight.fit()

    first = make(3, [CountBatches(), EarlyStopping("mae")])
    first.fit()
    meta, arrays = first.state_dict()
    second = make(6, [CountBatches(), EarlyStopping("mae")], seed=123)  # other init, other rng
    second.load_state_dict(meta, arrays)
    assert second.callbacks[0].seen == 12
    second.fit()
    for (name, a), (_, b) in zip(straight.model.state_dict().items(),
                                 second.model.state_dict().items()):
        assert np.array_equal(a, b), name
    assert second.callbacks[0].seen == straight.callbacks[0].seen == 24
    assert second.callbacks[1].state_dict() == straight.callbacks[1].state_dict()
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in straight.state.history]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in second.state.history]


def test_early_stopping_follows_the_metric_direction():
    class Scripted(Callback):
        """Puts a scripted val_r2 into each row before EarlyStopping reads it."""

        def __init__(self, values):
            self.values = iter(values)

        def on_epoch_end(self, trainer, row):
            row["val_r2"] = next(self.values)

    stopper = EarlyStopping("r2", patience=2)
    trainer = make(10, [Scripted([0.1, 0.5, 0.7, 0.6, 0.65, 0.9, 0.9, 0.9, 0.9, 0.9]), stopper])
    state = trainer.fit()
    assert state.stopped_early and state.epoch == 5 and stopper.best_value == 0.7


def test_divergence_is_a_callback():
    from micrograd.training import DivergenceCheck

    trainer = make(3, [DivergenceCheck()], lr=1e30)
    with pytest.raises(TrainingDiverged, match="diverged at epoch"):
        with np.errstate(all="ignore"):
            trainer.fit()


def test_callbacks_need_distinct_state_keys():
    with pytest.raises(ValueError, match="share a state_key"):
        make(1, [CountBatches(), CountBatches()])
