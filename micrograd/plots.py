"""Figures of runs and checkpoints as PNG files, for ``micrograd plot`` and ``eval --plot``.

matplotlib (the ``plot`` extra) is imported only when a figure is drawn, with the
Agg backend: files, never windows, so it works on a server and in CI.

    paths = plot_runs(["runs/a", "runs/b"])       # curves overlaid + each run's test figures
    paths = checkpoint_figures("runs/a/best.npz", out_dir="figs")   # confusion matrix, or
                                                  # predicted vs actual and residuals
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

INSTALL = "pip install 'micrograd-trainer[plot]'"
DPI = 100


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PlotsUnavailable(f"plotting needs matplotlib: {INSTALL}") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 11, "axes.titlesize": 12, "axes.grid": True,
                         "grid.alpha": 0.3, "legend.fontsize": 9})
    return plt


# ------------------------------------------------------------------ runs


def plot_runs(run_dirs, output=None) -> list[Path]:
    """Learning curves of the runs (overlaid when there are several) and, for each run
    with a best.npz (else checkpoint.npz), its test-split figures. Files go into each
    run's folder, or all into ``output`` (named after the run where several share it)."""
    run_dirs = [Path(d) for d in run_dirs]
    for d in run_dirs:
        if not (d / "metrics.csv").is_file():
            raise FileNotFoundError(f"{d} is not a run folder (no metrics.csv)")
    output = Path(output) if output is not None else None
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
    written = []
    if len(run_dirs) > 1:
        target = output or run_dirs[0]
        written.append(learning_curves(run_dirs, target / "learning_curves_compare.png"))
    for d in run_dirs:
        folder = output or d
        prefix = f"{d.name}-" if output is not None and len(run_dirs) > 1 else ""
        if len(run_dirs) == 1:
            written.append(learning_curves([d], folder / f"{prefix}learning_curves.png"))
        checkpoint = next((d / n for n in ("best.npz", "checkpoint.npz") if (d / n).is_file()),
                          None)
        if checkpoint is not None:
            written += checkpoint_figures(checkpoint, out_dir=folder, prefix=prefix)
    return written


def _history(run_dir: Path) -> dict[str, list]:
    """metrics.csv as columns of floats (NaN where a cell is empty)."""
    with (run_dir / "metrics.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    columns = {}
    for key in (rows[0] if rows else {}):
        columns[key] = [_float(r.get(key)) for r in rows]
    return columns


def _float(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _monitor(run_dir: Path, columns: dict) -> str:
    """The metric panel's column: val_<train.monitor>, or for a loss-monitored run the
    first task figure validation recorded (val_accuracy, val_r2, ...)."""
    from micrograd.runs import read_run

    monitor = read_run(run_dir).monitor or "loss"
    if monitor != "loss" and f"val_{monitor}" in columns:
        return f"val_{monitor}"
    for key in ("val_accuracy", "val_r2", "val_f1_macro", "val_rmse", "val_mae"):
        if key in columns:
            return key
    return next((k for k in columns if k.startswith("val_") and k != "val_loss"), "")


def learning_curves(run_dirs, path) -> Path:
    """Loss (train solid, validation dashed) and the monitored metric per epoch, one
    colour per run, the legend naming each run by its folder."""
    plt = _pyplot()
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(13, 5), dpi=DPI)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    metrics, losses = set(), []
    for i, d in enumerate(Path(p) for p in run_dirs):
        columns, colour = _history(d), colours[i % len(colours)]
        epochs = columns.get("epoch", [])
        name = d.name
        for key, style, label in (("train_loss", "-", "train"), ("val_loss", "--", "val")):
            if key in columns and any(math.isfinite(v) for v in columns[key]):
                ax_loss.plot(epochs, columns[key], style, color=colour, label=f"{name} {label}")
                losses += [v for v in columns[key] if math.isfinite(v)]
        metric = _monitor(d, columns)
        if metric:
            metrics.add(metric)
            ax_metric.plot(epochs, columns[metric], "-", color=colour, marker="." if
                           len(epochs) <= 50 else None, label=f"{name} {metric}")
    if losses and min(losses) > 0 and max(losses) >= 100 * min(losses):
        ax_loss.set_yscale("log")
    ax_loss.set(title="loss per epoch", xlabel="epoch", ylabel="loss")
    metric_name = ", ".join(sorted(metrics)) or "no validation metric"
    ax_metric.set(title=f"{metric_name} per epoch", xlabel="epoch", ylabel=metric_name)
    for ax in (ax_loss, ax_metric):
        if ax.lines:
            ax.legend(loc="best")
    fig.suptitle("learning curves: " + ", ".join(Path(p).name for p in run_dirs), fontsize=13)
    return _save(fig, plt, path)


def _save(fig, plt, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


# ------------------------------------------------------------------ checkpoints


def checkpoint_figures(checkpoint, data=None, out_dir=None, prefix="") -> list[Path]:
    """The checkpoint's figures on its test split (the validation split if it has no
    test split) or on ``data``: a confusion matrix (counts and row-normalised) for
    classification, predicted vs actual and residuals for regression. Written into
    ``out_dir`` (default: the checkpoint's folder)."""
    from micrograd.inference import class_probabilities, predict_outputs
    from micrograd.run import restore

    checkpoint = Path(checkpoint)
    restored = restore(checkpoint)
    config, pipeline = restored.config, restored.pipeline
    x, y, where = _evaluation_data(checkpoint, data, config, pipeline)
    out_dir = Path(out_dir) if out_dir is not None else checkpoint.parent
    outputs = predict_outputs(restored.model, x)
    title = f"{checkpoint.parent.name}/{checkpoint.name} on {where}"
    stem = f"{prefix}{checkpoint.stem}"
    if pipeline.task == "classification":
        from micrograd import metrics as M

        pred = class_probabilities(outputs, config).argmax(axis=1)
        names = list(pipeline.class_names or [])
        n = max(len(names), int(np.max(y)) + 1 if len(y) else 0, int(pred.max()) + 1 if len(pred) else 0)
        names += [str(i) for i in range(len(names), n)]
        cm = M.classification_report(y, pred, class_names=names)["confusion_matrix"]
        return [confusion_matrix(np.asarray(cm), names, out_dir / f"{stem}_confusion.png", title)]
    true = pipeline.inverse_target(np.asarray(y, dtype=np.float64).reshape(-1))
    pred = pipeline.inverse_target(outputs.reshape(-1).astype(np.float64))
    return [predicted_vs_actual(true, pred, out_dir / f"{stem}_predicted.png", title)]


def _evaluation_data(checkpoint, data, config, pipeline):
    """(x, y, description), as ``micrograd.evaluate.evaluate_checkpoint`` chooses them."""
    if data is not None:
        from micrograd.evaluate import read_labelled

        x, y = read_labelled(Path(data), config, pipeline)
        return x, y, Path(data).name
    from micrograd.build import build_data
    from micrograd.config.loader import ConfigError

    splits = build_data(config)
    if len(splits.y_test):
        return splits.x_test, splits.y_test, "the test split"
    if len(splits.y_val):
        return splits.x_val, splits.y_val, "the validation split (no test split)"
    raise ConfigError(f"{checkpoint}: the stored config has no test or validation split to "
                      f"plot; pass --data")


def confusion_matrix(cm: np.ndarray, names: list, path, title: str) -> Path:
    """Counts beside row-normalised shares (each true class's row sums to 1)."""
    plt = _pyplot()
    k = len(names)
    side = min(max(5.5, 0.55 * k + 2), 16)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 1.5, side), dpi=DPI)
    totals = cm.sum(axis=1, keepdims=True)
    shares = np.divide(cm, totals, out=np.zeros(cm.shape, dtype=float), where=totals > 0)
    annotate = k <= 30
    size = 10 if k <= 12 else 8 if k <= 20 else 6
    for ax, values, label, fmt in ((axes[0], cm, "count", "{:d}"),
                                   (axes[1], shares, "share of true class", "{:.2f}")):
        image = ax.imshow(values, cmap="Blues", vmin=0)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=label)
        ax.set_xticks(range(k), labels=names, rotation=45 if max(map(len, names), default=0) > 2
                      else 0, ha="right" if max(map(len, names), default=0) > 2 else "center")
        ax.set_yticks(range(k), labels=names)
        ax.set(xlabel="predicted class", ylabel="true class")
        ax.grid(False)
        if annotate:
            high = values.max() if values.size else 0
            for i in range(k):
                for j in range(k):
                    v = values[i, j]
                    ax.text(j, i, fmt.format(int(v)) if fmt == "{:d}" else fmt.format(v),
                            ha="center", va="center", fontsize=size,
                            color="white" if high and v > 0.6 * high else "black")
    axes[0].set_title(f"confusion matrix: counts (n={int(cm.sum())})")
    axes[1].set_title("confusion matrix: normalised by row (recall on the diagonal)")
    fig.suptitle(title, fontsize=13)
    return _save(fig, plt, path)


def predicted_vs_actual(true: np.ndarray, pred: np.ndarray, path, title: str) -> Path:
    """Predicted against actual with the y = x line, and residuals against predicted."""
    plt = _pyplot()
    fig, (ax, ax_res) = plt.subplots(1, 2, figsize=(13, 5.5), dpi=DPI)
    marker = dict(s=28 if len(true) < 500 else 8, alpha=0.7 if len(true) < 500 else 0.4)
    ax.scatter(true, pred, label=f"samples (n={len(true)})", **marker)
    both = np.concatenate([true, pred]) if len(true) else np.array([0.0, 1.0])
    low, high = float(np.min(both)), float(np.max(both))
    pad = 0.05 * (high - low or 1.0)
    ax.plot([low - pad, high + pad], [low - pad, high + pad], "k--", lw=1, label="y = x (perfect)")
    ax.set(title="predicted vs actual", xlabel="actual", ylabel="predicted",
           xlim=(low - pad, high + pad), ylim=(low - pad, high + pad))
    ax.set_aspect("equal", adjustable="box")
    ax.legend(loc="upper left")
    residuals = pred - true
    ax_res.scatter(pred, residuals, color="tab:orange", label="residual = predicted - actual",
                   **marker)
    ax_res.axhline(0, color="k", ls="--", lw=1)
    ax_res.set(title="residuals", xlabel="predicted", ylabel="residual (predicted - actual)")
    ax_res.legend(loc="best")
    fig.suptitle(title, fontsize=13)
    return _save(fig, plt, path)
