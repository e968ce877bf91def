"""How `micrograd train` shows progress: rich bars on a terminal, plain lines elsewhere.

Both implement micrograd.train.Reporter; the training loop never prints.
"""
from __future__ import annotations

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table

from micrograd.sparkline import monitored_series, sparkline
from micrograd.train import Reporter

from .display import relative


def _fmt(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _val_summary(row: dict) -> str:
    return "  ".join(f"{k} {_fmt(v)}" for k, v in row.items()
                     if k.startswith("val_") or k == "train_loss")


def _every(epochs: int) -> int:
    """Print every epoch of a short run; about 25 evenly spaced lines of a long one."""
    return 1 if epochs <= 50 else -(-epochs // 25)


class PlainReporter(Reporter):
    """One line per epoch (CI logs, pipes; every k-th epoch of long runs);
    with quiet=True only the result."""

    def __init__(self, console: Console, quiet: bool = False):
        self.console, self.quiet = console, quiet

    def start(self, run, run_dir, epochs, batches):
        self.epochs, self.every = epochs, _every(epochs)
        self.monitor = run.config.train.monitor
        if not self.quiet:
            params = sum(p.size for p in run.model.parameters())
            self.say(f"training {params:,} parameters on {len(run.splits.y_train):,} samples "
                     f"for {epochs} epochs -> {relative(run_dir)}")

    def resumed(self, checkpoint, epoch, batch, step):
        if not self.quiet:
            where = f"epoch {epoch + 1}, batch {batch + 1}" if batch else f"epoch {epoch + 1}"
            self.say(f"resuming from {checkpoint} at {where} (step {step})")

    def say(self, text):
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def epoch_line(self, row):
        return (f"epoch {row['epoch']}/{self.epochs}  {_val_summary(row)}  "
                f"lr {_fmt(row['lr'])}  {row['seconds']:.2f}s")

    def wants(self, row):
        e = row["epoch"]
        return e % self.every == 0 or e == 1 or e == self.epochs

    def epoch(self, row):
        if not self.quiet and self.wants(row):
            self.say(self.epoch_line(row))

    def finish(self, result):
        if not self.quiet and result.history and not self.wants(result.history[-1]):
            self.say(self.epoch_line(result.history[-1]))  # the epoch it stopped at
        print_result(self.console, result, quiet=self.quiet,
                     monitor=getattr(self, "monitor", "loss"))


class RichReporter(PlainReporter):
    """Live bars on a terminal: epochs overall, and the current epoch's batches with
    running loss, samples/s and ETA; a line of validation metrics per epoch."""

    def start(self, run, run_dir, epochs, batches):
        super().start(run, run_dir, epochs, batches)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.progress.start()
        self.epochs_task = self.progress.add_task("epochs", total=epochs, info="")
        self.batch_task = self.progress.add_task("epoch 1", total=batches, info="")
        self.batches = batches

    def resumed(self, checkpoint, epoch, batch, step):
        super().resumed(checkpoint, epoch, batch, step)
        self.progress.update(self.epochs_task, completed=epoch)
        self.progress.update(self.batch_task, completed=batch, description=f"epoch {epoch + 1}")

    def say(self, text):
        progress = getattr(self, "progress", None)
        (progress.console if progress else self.console).print(
            text, markup=False, highlight=False, soft_wrap=True)

    def batch(self, epoch, done, batches, loss, samples_per_s):
        if done == 1:
            self.progress.reset(self.batch_task, total=batches, description=f"epoch {epoch}")
        # Redrawing costs more than a tiny batch: update a few times per epoch.
        if done == batches or done % max(1, batches // 20) == 0:
            self.progress.update(self.batch_task, completed=done,
                                 info=f"loss {loss:.4g}  {samples_per_s:,.0f} samples/s")

    def epoch(self, row):
        summary = "  ".join(f"{k[4:]} {_fmt(v)}" for k, v in row.items() if k.startswith("val_"))
        self.progress.update(self.epochs_task, completed=row["epoch"],
                             info=f"train_loss {_fmt(row['train_loss'])}  {summary}")
        super().epoch(row)

    def close(self):
        self.progress.stop()

    def finish(self, result):
        self.progress.stop()
        super().finish(result)


def print_result(console: Console, result, quiet: bool = False, monitor: str = "loss"):
    """The final summary: best epoch, test metrics, the monitored figure's sparkline,
    where the files went."""
    if quiet:
        figures = result.test_metrics or {k: v for k, v in result.best.items()
                                          if k.startswith("val_")}
        shown = [f"{k}={_fmt(v)}" for k, v in figures.items()
                 if isinstance(v, (int, float)) and "/" not in k and k != "support"]
        console.print(" ".join(shown + [f"run={relative(result.run_dir)}"]), markup=False,
                      highlight=False, soft_wrap=True)
        return
    table = Table(title="result", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    if result.best:
        table.add_row("best epoch", str(result.best.get("epoch")))
        for k, v in result.best.items():
            if k.startswith("val_"):
                table.add_row(k, _fmt(v))
    for k, v in result.test_metrics.items():
        if isinstance(v, (int, float)) and "/" not in k:
            table.add_row(f"test_{k}", _fmt(v))
    if result.stopped_early:
        table.add_row("stopped early", "yes")
    console.print(table)
    key, series = monitored_series(result.run_dir, monitor)
    if len(series) > 1:
        console.print(f"{key} by epoch: {sparkline(series, width=60)}", markup=False,
                      highlight=False, soft_wrap=True)
    d = relative(result.run_dir)
    console.print(f"run folder: {d}\n  config.yaml, metrics.csv, checkpoint.npz (last epoch), "
                  f"best.npz (best validation)\n  `micrograd eval` and `micrograd predict` now "
                  f"use this run by default.", highlight=False)
