"""The base class of training callbacks: hooks into the loop, and state that resumes.

A callback overrides the hooks it needs; the :class:`~micrograd.training.Trainer`
calls every callback's hook in list order. Whatever a callback must remember
across an interrupt (a best value, a patience count) it returns from
``state_dict`` and takes back in ``load_state_dict``: the trainer stores it in
every checkpoint under the callback's ``state_key``, so a resumed run continues
exactly (Lightning's ``Callback.state_dict``, Keras's callbacks).

    class PrintLoss(Callback):
        def on_epoch_end(self, trainer, row):
            print(row["epoch"], row["train_loss"])

    Trainer(model, loss_fn, optimizer, loader, epochs=5, callbacks=[PrintLoss()]).fit()
"""
from __future__ import annotations

from typing import Optional


class Callback:
    """Hooks into :class:`~micrograd.training.Trainer`; every one is optional."""

    #: Where the trainer keeps this callback's state in a checkpoint (default: the
    #: class name); two callbacks of one class need different keys.
    state_key: str = ""

    def on_fit_start(self, trainer) -> None:
        """Before the first batch (also of a resumed run)."""

    def on_after_backward(self, trainer, loss: float) -> None:
        """After ``backward()``, before clipping and the optimiser step (``loss``: the batch's)."""

    def on_batch_end(self, trainer, loss: float) -> None:
        """After the optimiser step."""

    def on_epoch_end(self, trainer, row: dict) -> None:
        """After validation and the scheduler step; ``row`` is the epoch's metrics.
        Set ``trainer.should_stop = True`` to end training after this epoch."""

    def on_interrupt(self, trainer) -> Optional[object]:
        """A first SIGINT/SIGTERM: the state is consistent; return the path of a saved
        checkpoint, if this callback saved one."""

    def on_exception(self, trainer, exc: BaseException) -> Optional[BaseException]:
        """Training is stopping on ``exc``; return another exception to raise instead."""

    def on_fit_end(self, trainer) -> None:
        """After the last epoch (not after an interrupt or an error)."""

    def state_dict(self) -> dict:
        """JSON-able state that resuming needs."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Take back what ``state_dict`` gave (from a checkpoint: check the types)."""

    @property
    def key(self) -> str:
        return self.state_key or type(self).__name__
