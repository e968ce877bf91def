"""CSVLogger: metrics.csv, one row per epoch."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from micrograd.checkpoint import CheckpointSaveError, atomic_write_bytes, write_failure

from ..callback import Callback


class MetricsWriteError(CheckpointSaveError):
    """A row could not be appended to the metrics file (full disk, no permission)."""


class CSVLogger(Callback):
    """Writes ``path``: a header of ``columns``, then one row per epoch (empty cells
    where an epoch lacks a figure, e.g. validation every other epoch).

    At the start of a run, resumed or not, the file is rewritten atomically from the
    trainer's history (rows a killed run appended after its last checkpoint are
    dropped, so no epoch appears twice); then each epoch appends its row. A failed
    append raises :class:`MetricsWriteError` naming the file.
    """

    def __init__(self, path, columns):
        self.path, self.columns = Path(path), list(columns)

    def on_fit_start(self, trainer):
        buf = io.StringIO(newline="")
        writer = csv.writer(buf)
        writer.writerow(self.columns)
        for row in trainer.state.history:
            writer.writerow(self._cells(row))
        atomic_write_bytes(self.path, buf.getvalue().encode("utf-8"))

    def on_epoch_end(self, trainer, row):
        try:
            with open(self.path, "a", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerow(self._cells(row))
        except OSError as exc:
            raise MetricsWriteError(f"could not append epoch {row.get('epoch')} to {self.path}: "
                                    f"{write_failure(exc, self.path.parent)}") from exc

    def _cells(self, row: dict) -> list:
        return [_cell(row.get(c, "")) for c in self.columns]


def _cell(v):
    return f"{v:.6g}" if isinstance(v, float) else v
