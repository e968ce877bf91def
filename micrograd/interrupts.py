"""Ctrl-C and SIGTERM during training: finish the step, save, then stop.

    with deferred_signals() as caught:
        for batch in loader:
            step(batch)
            if caught:
                save_checkpoint(...)
                raise TrainingInterrupted(...)

Inside the block the first SIGINT or SIGTERM is only recorded, so the loop can
finish its step and write a checkpoint; a second one raises KeyboardInterrupt
at once (checkpoint writes are atomic, so that corrupts nothing), and any
after that are ignored while the stack unwinds. Handlers are
installed only in the main thread, where Python delivers signals, and the
previous ones are restored on the way out.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name))


class Caught:
    """The first signal received inside :func:`deferred_signals`, if any (truthy then)."""

    def __init__(self):
        self.signum = None
        self.stopping = False  # a second signal has raised KeyboardInterrupt

    def __bool__(self):
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""


@contextmanager
def deferred_signals(signals=SIGNALS):
    """Record the first of ``signals`` instead of stopping; a second raises KeyboardInterrupt."""
    caught = Caught()
    if threading.current_thread() is not threading.main_thread():
        yield caught  # only the main thread may set handlers; signals reach it anyway
        return

    def handler(signum, frame):
        if not caught:
            caught.signum = signum
        elif not caught.stopping:
            caught.stopping = True
            raise KeyboardInterrupt(f"{signal.Signals(signum).name} received twice")
        # Later ones are ignored: they would cut short the clean-up of the second.

    previous = {}
    try:
        for signum in signals:
            previous[signum] = signal.signal(signum, handler)
        yield caught
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)


@contextmanager
def signals_held(signals=SIGNALS):
    """Hold ``signals`` back (blocked, not lost) for a short write that must not be cut
    in half by a Ctrl-C held down; they are delivered when the block ends."""
    block = getattr(signal, "pthread_sigmask", None)
    if block is None:  # pragma: no cover - not POSIX
        yield
        return
    previous = block(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        block(signal.SIG_SETMASK, previous)
