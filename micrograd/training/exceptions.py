"""How training stops early: diverged (NaN/inf) or interrupted (SIGINT/SIGTERM)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional


class TrainingDiverged(RuntimeError):
    """The loss or a gradient became NaN or infinite.

    ``epoch`` and ``step`` say where, ``parameter`` names the parameter whose
    gradient went bad (None for the loss); once a checkpoint callback has
    handled it, ``run_dir`` is its folder and ``kept`` maps each checkpoint file
    left there to the epoch it holds.
    """

    def __init__(self, message: str, *, epoch: int, step: int, parameter: Optional[str] = None):
        super().__init__(message)
        self.epoch, self.step, self.parameter = epoch, step, parameter
        self.run_dir: Optional[Path] = None
        self.kept: dict[str, int] = {}


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by SIGINT or SIGTERM.

    ``checkpoint`` resumes it (``train(config, resume=run_dir)``); it is None
    when nothing had been saved yet. ``saved`` says whether the state at the
    moment of the interrupt was written (False after a second signal, which
    stops at once: then ``checkpoint`` is the last regular save, if any).
    """

    def __init__(self, message: str, *, run_dir: Optional[Path], checkpoint: Optional[Path],
                 epoch: int, step: int, signal_name: str, saved: bool):
        super().__init__(message)
        self.run_dir, self.checkpoint, self.epoch, self.step = run_dir, checkpoint, epoch, step
        self.signal_name, self.saved = signal_name, saved

    def __str__(self):
        return self.args[0]
