"""The `micrograd` command: a thin Typer shell over the library.

    micrograd train configs/mnist_cnn.yaml
    micrograd eval checkpoint.npz
    micrograd predict --input 11
    micrograd summary configs/mnist_cnn.yaml
    micrograd data configs/sentiment.yaml
    micrograd cv configs/house_prices.yaml --folds 5

Start-up imports nothing heavy (the engine, NumPy-based data code and
torchvision are imported inside each command) so that `micrograd --help`
answers at once. Errors are one paragraph and an exit code, with a traceback
only under --debug: 2 for a bad config or input, 1 for unreadable data or
checkpoints (or one that cannot be written), 3 when training diverges, 130
when training is interrupted (Ctrl-C or SIGTERM; it prints how to resume).
"""
from __future__ import annotations

import json
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from .display import relative

app = typer.Typer(
    name="micrograd",
    help="Train, evaluate and run neural networks on micrograd's NumPy autograd engine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)

_state = {"debug": False}


def _hide_flag_types():
    """Typer's rich help prints `<bool>` beside on/off flags, which take no value."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "_hides_flags", False):
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag else shown(self, ctx)

    display_type_rich._hides_flags = True
    TyperOption.display_type_rich = display_type_rich


_hide_flag_types()

EXIT_INPUT, EXIT_DATA, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 1, 3, 130


def _version(value: bool):
    if value:
        from micrograd import __version__

        typer.echo(f"micrograd {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show full tracebacks on errors.")] = False,
):
    """Train, evaluate and run neural networks on micrograd's NumPy autograd engine."""
    _state["debug"] = debug
    if not debug:
        import warnings

        _state["showwarning"] = warnings.showwarning
        warnings.showwarning = _show_warning


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Library warnings (an unseen category, skipped lines) as one line, no source code."""
    typer.echo(f"warning: {relative(str(message))}", err=True)


def _console():
    from rich.console import Console

    return Console()


def _fail(message: str, code: int):
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[bold red]error:[/] {escape(relative(message))}",
                               highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _errors():
    """Turn the library's exceptions into one-paragraph messages and exit codes."""
    from micrograd.checkpoint import CheckpointError
    from micrograd.config.loader import ConfigError
    from micrograd.data.pipeline import DataError, PipelineError
    from micrograd.train import TrainingDiverged

    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        if _state["debug"]:
            raise
        _exiting()
        _fail("interrupted", EXIT_INTERRUPTED)
    except Exception as exc:
        if _state["debug"]:
            raise
        if isinstance(exc, ConfigError):
            _fail(str(exc), EXIT_INPUT)
        if isinstance(exc, DataError):
            _fail(str(exc), EXIT_DATA)
        if isinstance(exc, PipelineError):
            _fail(str(exc), EXIT_INPUT)
        if isinstance(exc, TrainingDiverged):
            _fail(f"{exc} {_kept(exc)}", EXIT_DIVERGED)
        if isinstance(exc, (CheckpointError, FileNotFoundError, ValueError, OSError)):
            _fail(str(exc), EXIT_DATA)
        _fail(f"{type(exc).__name__}: {exc} (run with --debug for the traceback)", EXIT_DATA)


def _kept(exc) -> str:
    """Which good checkpoints a diverged run left, in words."""
    if exc.run_dir is None:
        return ""
    if not exc.kept:
        return f"No checkpoint had been saved yet in {exc.run_dir}."
    files = ", ".join(f"{name} (epoch {epoch})" for name, epoch in sorted(exc.kept.items()))
    return f"The run folder {exc.run_dir} keeps the last good checkpoints: {files}."


def _overrides_help():
    return ("Override a config value, validated like the file: KEY=VALUE, e.g. "
            "optimizer.lr=1e-3. Repeat it for several keys.")


# `--debug` is accepted after the command too (`micrograd train c.yaml --debug`), as
# users type it where they notice the need.
DebugOption = Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")]


def _debug(flag: bool) -> None:
    """A command's own --debug: tracebacks, and warnings as Python prints them."""
    if flag:
        import warnings

        _state["debug"] = True
        warnings.showwarning = _state.get("showwarning", warnings.showwarning)


# ------------------------------------------------------------------ train


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="YAML config file.")],
    set_: Annotated[Optional[List[str]], typer.Option(
        "--set", metavar="KEY=VALUE", help=_overrides_help())] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the result.")] = False,
    resume: Annotated[Optional[Path], typer.Option(
        "--resume", help="Continue an interrupted or finished run: its folder or a checkpoint "
        "(.npz). Training goes on from the saved epoch in the same run folder.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an earlier run in output.dir (its files are deleted); "
        "without it such a folder is refused.")] = False,
    print_config: Annotated[bool, typer.Option(
        "--print-config", help="Print the resolved config (every default filled in, --set "
        "applied) as YAML and exit without training or writing anything.")] = False,
    debug: DebugOption = False,
):
    """Train the model a config describes and write a run folder.

    The run folder (output.dir, or a new runs/<config>-<time>) must be new or
    empty, or hold an earlier run and --force be given; it is locked while the
    run writes. Ctrl-C (or SIGTERM) finishes the current step, saves
    checkpoint.npz and prints the command that resumes the run; a second Ctrl-C
    stops at once.
    """
    _debug(debug)
    with _errors():
        from micrograd.config.loader import load_config
        from micrograd.train import TrainingInterrupted
        from micrograd.train import train as run_training

        from .progress import PlainReporter, RichReporter

        cfg = load_config(config, set_ or [])
        if print_config:
            from micrograd.config.loader import dump_yaml

            typer.echo(dump_yaml(cfg), nl=False)
            return
        if resume is not None:
            _check_resume_target(resume, cfg, set_ or [], force)
        console = _console()
        interactive = console.is_terminal and not quiet
        reporter = (RichReporter if interactive else PlainReporter)(console, quiet=quiet)
        try:
            run_training(cfg, name=config.stem, reporter=reporter, resume=resume, force=force)
        except TrainingInterrupted as exc:
            if _state["debug"]:
                raise
            _interrupted(exc, config, set_ or [])


def _check_resume_target(resume: Path, cfg, overrides: list[str], force: bool):
    """--resume continues a run in its own folder: an output.dir set on the command line
    that names another folder, or --force, would be silently ignored, so refuse them."""
    from micrograd.config.loader import ConfigError

    if force:
        raise ConfigError("--force replaces an earlier run, --resume continues one: give one "
                          "of them")
    folder = resume if resume.is_dir() else resume.parent
    if cfg.output.dir and any(o.split("=", 1)[0].strip() == "output.dir" for o in overrides) \
            and Path(cfg.output.dir).resolve() != folder.resolve():
        raise ConfigError(f"--set output.dir={cfg.output.dir}: --resume continues the run in its "
                          f"own folder {folder}; a resumed run cannot move. Copy the folder and "
                          f"resume the copy, or drop --set output.dir")


def _exiting():
    """From here the process only prints and exits: ignore further Ctrl-C (a key held
    down repeats it), which would turn a clean exit into a traceback from the
    interpreter's shutdown."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        for name in ("SIGINT", "SIGTERM"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_IGN)


def _interrupted(exc, config: Path, overrides: list[str]):
    """Say where training stopped and how to go on; exit 130."""
    from rich.console import Console

    _exiting()
    if exc.checkpoint is None:
        _fail(f"{exc}; there is nothing to resume", EXIT_INTERRUPTED)
    words = ["micrograd", "train", str(config), "--resume", str(exc.run_dir)]
    for item in overrides:
        words += ["--set", item]
    console = Console(stderr=True)
    console.print(f"{exc}\nresume with: {shlex.join(words)}", markup=False, highlight=False,
                  soft_wrap=True)
    raise typer.Exit(EXIT_INTERRUPTED)


# ------------------------------------------------------------------ tune


@app.command()
def tune(
    config: Annotated[Path, typer.Argument(help="YAML config file.")],
    space: Annotated[Path, typer.Option(
        "--space", help="Search space YAML: config key paths -> distributions.")],
    trials: Annotated[int, typer.Option(
        "--trials", min=1, help="The study's total number of trials; a rerun runs only "
        "the missing ones.")] = 20,
    timeout: Annotated[Optional[float], typer.Option(
        "--timeout", min=0, help="Start no new trial after this many seconds.")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, help="Trials in parallel, one process each.")] = 1,
    storage: Annotated[Optional[str], typer.Option(
        "--storage", help="SQLAlchemy URL of the study's store (default: "
        "sqlite:///<study folder>/study.db); PostgreSQL for many machines.")] = None,
    sampler: Annotated[str, typer.Option(
        "--sampler", help="tpe, random or grid.")] = "tpe",
    seed: Annotated[int, typer.Option("--seed", help="The sampler's seed.")] = 0,
    cv: Annotated[Optional[int], typer.Option(
        "--cv", min=2, help="Score each trial by K-fold cross-validation.")] = None,
    study: Annotated[Optional[str], typer.Option(
        "--study", help="Study name (default: the config's file name).")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Study folder (default: runs/tune-<study>).")] = None,
    no_prune: Annotated[bool, typer.Option(
        "--no-prune", help="Train every trial to the end (no median pruning).")] = False,
    set_: Annotated[Optional[List[str]], typer.Option(
        "--set", metavar="KEY=VALUE", help=_overrides_help())] = None,
    debug: DebugOption = False,
):
    """Search hyperparameters: train the config many times over a search space.

    The study is stored (SQLite in the study folder by default), so rerunning
    the command continues it; a trial killed mid-way is retried. The study
    folder gets trials.csv, best.yaml (`micrograd train best.yaml` reproduces
    the best trial) and best/ (a run folder for eval and predict).
    """
    _debug(debug)
    with _errors():
        from rich.table import Table

        from micrograd.model_selection.tune import tune as run_tune

        console = _console()
        result = run_tune(config, space, overrides_=set_ or [], trials=trials, timeout=timeout,
                          workers=workers, storage=storage, sampler=sampler, seed=seed, cv=cv,
                          study_name=study, study_dir=out, prune=not no_prune,
                          log=lambda line: console.print(line, markup=False, highlight=False,
                                                            soft_wrap=True))
        counted = [r for r in result.trials if r["state"] in ("COMPLETE", "PRUNED")]
        table = Table(title=f"study {result.study_name}: top trials ({result.direction})")
        for name in ("trial", "value", *[k for k in (result.best or {}) if "." in k], "seconds"):
            table.add_column(name, justify="right")
        for row in result.leaderboard:
            table.add_row(str(row["number"]), f"{row['value']:.6g}",
                          *[_cell(row[k]) for k in row if "." in k], _cell(row["seconds"]))
        console.print(table)
        pruned = sum(r["state"] == "PRUNED" for r in counted)
        console.print(f"{len(counted)} trials ({pruned} pruned), {result.ran} run now; study "
                      f"folder {relative(str(result.study_dir))}: trials.csv, best.yaml, best/",
                      markup=False, highlight=False, soft_wrap=True)


def _cell(value) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


# ------------------------------------------------------------------ cv


@app.command()
def cv(
    config: Annotated[Path, typer.Argument(help="YAML config file.")],
    folds: Annotated[int, typer.Option(
        "--folds", "-k", min=2, help="K: the train+val samples are cut into K folds; each "
        "validates once.")] = 5,
    repeats: Annotated[int, typer.Option(
        "--repeats", min=1, help="Repeat with other folds (seeded by the data seed + "
        "repeat).")] = 1,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, help="Folds trained at once, one process each.")] = 1,
    set_: Annotated[Optional[List[str]], typer.Option(
        "--set", metavar="KEY=VALUE", help=_overrides_help())] = None,
    json_path: Annotated[Optional[Path], typer.Option(
        "--json", help="Also write the results as JSON to this file; - prints only the "
        "JSON, to standard output.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an earlier run in output.dir.")] = False,
    debug: DebugOption = False,
):
    """Cross-validate a config: one training run per fold, then each validation
    figure's mean and standard deviation over the folds.

    The test split stays the plain run's and is used by no fold; preprocessing
    is fitted on each fold's train part only. The run folder (output.dir, or a
    new runs/<config>-cv-<time>) gets cv.csv and one sub-run per fold
    (fold-<repeat>-<fold>). Ctrl-C stops every fold after it saves.
    """
    _debug(debug)
    with _errors():
        from micrograd.config.loader import load_config
        from micrograd.model_selection import CVInterrupted, cross_validate

        cfg = load_config(config, set_ or [])
        only_json = json_path is not None and str(json_path) == "-"
        console = _console()
        total = folds * repeats

        def finished(fold):
            if not only_json:
                console.print(f"fold {fold.fold + 1}/{folds} (repeat {fold.repeat}): "
                              f"{_fold_figure(fold, cfg.train.monitor)}  "
                              f"{relative(str(fold.run_dir))}", markup=False, highlight=False,
                              soft_wrap=True)

        if not only_json:
            console.print(f"cross-validating {config.name}: {total} runs ({folds} folds"
                          + (f" x {repeats} repeats" if repeats > 1 else "")
                          + f") on {workers} worker{'s' if workers > 1 else ''}",
                          markup=False, highlight=False)
        try:
            result = cross_validate(cfg, folds=folds, repeats=repeats, workers=workers,
                                    name=config.stem, force=force, on_fold=finished)
        except CVInterrupted as exc:
            if _state["debug"]:
                raise
            _exiting()
            _fail(str(exc), EXIT_INTERRUPTED)
        report = result.to_dict()
        if only_json:
            typer.echo(json.dumps(report, indent=2))
            return
        console.print(_cv_table(result, config), soft_wrap=True)
        console.print(f"{result.monitor}: {result.mean[result.monitor]:.4g} ± "
                      f"{result.std[result.monitor]:.4g} over {total} folds\n"
                      f"run folder: {relative(str(result.out_dir))} (cv.csv, one sub-run per "
                      f"fold)", markup=False, highlight=False, soft_wrap=True)
        if json_path is not None:
            json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
            console.print(f"results written to {json_path}", highlight=False)


def _fold_figure(fold, monitor: str) -> str:
    key = f"val_{monitor}"
    return f"{key} {fold.metrics.get(key, float('nan')):.4g} (best epoch {fold.epoch})"


def _cv_table(result, config: Path):
    """Fold rows, then the mean and the std of each validation figure."""
    from rich.table import Table

    names = list(result.mean)
    table = Table(title=f"{config.name}: {len(result.folds)}-run cross-validation")
    table.add_column("fold")
    table.add_column("best epoch", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for fold in result.folds:
        table.add_row(fold.name, str(fold.epoch),
                      *(f"{fold.metrics[n]:.4g}" if n in fold.metrics else "" for n in names))
    table.add_section()
    table.add_row("mean", "", *(f"{result.mean[n]:.4g}" for n in names))
    table.add_row("± std", "", *(f"{result.std[n]:.2g}" for n in names))
    return table


# ------------------------------------------------------------------ runs


@app.command("runs")
def runs_(
    args: Annotated[Optional[List[str]], typer.Argument(
        metavar="[FOLDER] | diff A B", help="The folder of run folders (default: runs), or "
        "'diff' and two run folders.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    debug: DebugOption = False,
):
    """List the run folders under FOLDER (default runs/), oldest first: status, epochs,
    the best epoch's monitored figure, test figures and config.

    `micrograd runs diff A B` shows the config keys that differ between two run
    folders and their best-epoch and test metrics side by side. A run.json that
    says running whose process is gone shows as "died"; one that cannot be read
    as "unreadable".
    """
    _debug(debug)
    args = list(args or [])
    with _errors():
        if args and args[0] == "diff" and len(args) != 1:
            if len(args) != 3:
                _fail("runs diff takes two run folders: micrograd runs diff A B", EXIT_INPUT)
            _runs_diff(Path(args[1]), Path(args[2]), as_json)
            return
        if len(args) > 1:
            _fail("runs takes one folder (or: micrograd runs diff A B)", EXIT_INPUT)
        _runs_list(Path(args[0]) if args else Path("runs"), as_json)


def _runs_list(folder: Path, as_json: bool):
    from rich.markup import escape
    from rich.table import Table

    from micrograd.runs import find_runs
    from micrograd.sparkline import monitored_series, sparkline

    if not folder.is_dir():
        _fail(f"{folder} is not a folder", EXIT_INPUT)
    records = find_runs(folder)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in records], indent=2))
        return
    console = _console()
    if not records:
        console.print(f"no run folders in {folder}", highlight=False, markup=False)
        return
    colours = {"finished": "green", "running": "cyan", "interrupted": "yellow",
               "diverged": "red", "failed": "red", "died": "red", "unreadable": "magenta"}
    table = Table(title=f"runs in {folder}")
    # fold, not "…": a narrow terminal wraps a cell rather than hiding a figure
    for name, justify in (("run", "left"), ("started", "left"), ("status", "left"),
                          ("epochs", "right"), ("best (epoch)", "right"), ("curve", "left"),
                          ("test", "right"), ("config", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for r in records:
        figure = r.monitored()
        best = (f"{figure[0]} {figure[1]:.4g}" + (f" ({r.best['epoch']})"
                if "epoch" in r.best else "")) if figure else ""
        test = " ".join(f"{k} {v:.4g}" for k, v in r.test_figures().items())
        colour = colours.get(r.status)
        status = f"[{colour}]{escape(r.status)}[/]" if colour else escape(r.status)
        table.add_row(escape(_under(r.path, folder)),
                      (r.started or "").replace("T", " ")[:16], status,
                      "" if r.epoch is None else str(r.epoch), best,
                      sparkline(monitored_series(r.path, r.monitor or "loss")[1], width=20),
                      test,
                      # run.json's name is the config file's stem (the folder has config.yaml)
                      escape(r.name) if r.name != r.path.name else "")
    console.print(table)


def _under(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)


def _runs_diff(a: Path, b: Path, as_json: bool):
    from rich.markup import escape
    from rich.table import Table

    from micrograd.runs import diff_runs, is_run_folder

    for path in (a, b):
        if not is_run_folder(path):
            _fail(f"{path} is not a run folder (no run.json, metrics.csv or checkpoint)",
                  EXIT_INPUT)
    diff = diff_runs(a, b)
    if as_json:
        rows = lambda items: [{"key": k, "a": x, "b": y} for k, x, y in items]  # noqa: E731
        typer.echo(json.dumps({"a": str(a), "b": str(b), "config": rows(diff.config),
                               "best": rows(diff.best), "test": rows(diff.test)}, indent=2))
        return
    console = _console()
    for title, items in (("config", diff.config), ("best epoch", diff.best),
                         ("test", diff.test)):
        if not items:
            if title == "config":
                console.print("config: no differences", highlight=False)
            continue
        table = Table(title=title)
        table.add_column("key")
        table.add_column(escape(str(a)), justify="right")
        table.add_column(escape(str(b)), justify="right")
        for key, x, y in items:
            style = "bold" if x != y else ""
            table.add_row(escape(key), escape(relative(_cell(x))), escape(relative(_cell(y))),
                          style=style)
        console.print(table)
    for record in (diff.a, diff.b):
        for problem in record.problems:
            console.print(f"warning: {record.path}: {problem}", markup=False, highlight=False)


# ------------------------------------------------------------------ summary


@app.command()
def summary(
    config: Annotated[Path, typer.Argument(help="YAML config file.")],
    set_: Annotated[Optional[List[str]], typer.Option(
        "--set", metavar="KEY=VALUE", help=_overrides_help())] = None,
    debug: DebugOption = False,
):
    """Print the model's layers: output shape and parameter count of each (like Keras)."""
    _debug(debug)
    with _errors():
        from rich.table import Table

        from micrograd.build import build_data, build_model, implied_by
        from micrograd.config.loader import load_config

        cfg = load_config(config, set_ or [])
        # With model.input_shape given, the summary needs no data (unless a layer
        # leaves out a size only the data implies, as an embedding's vocabulary).
        pipeline = None
        if not cfg.model.input_shape or any(
                getattr(layer, "num_embeddings", 0) is None for layer in cfg.model.layers):
            pipeline = build_data(cfg).pipeline
        input_shape = cfg.model.input_shape or pipeline.input_shape
        _, rows = build_model(cfg, input_shape, implied=implied_by(pipeline))
        table = Table(title=f"{config.name}: input {'x'.join(map(str, input_shape))}")
        table.add_column("#", justify="right")
        table.add_column("layer")
        table.add_column("output shape")
        table.add_column("parameters", justify="right")
        for row in rows:
            table.add_row(str(row.index), repr(row.layer),
                          "x".join(str(n) for n in row.output_shape), f"{row.params:,}")
        console = _console()
        console.print(table)
        console.print(f"total parameters: {sum(r.params for r in rows):,}", highlight=False)


# ------------------------------------------------------------------ data


@app.command("data")
def data_(
    config: Annotated[Path, typer.Argument(help="YAML config file.")],
    set_: Annotated[Optional[List[str]], typer.Option(
        "--set", metavar="KEY=VALUE", help=_overrides_help())] = None,
    json_path: Annotated[Optional[Path], typer.Option(
        "--json", help="Also write the profile as JSON to this file; - prints only the "
        "JSON, to standard output.")] = None,
    debug: DebugOption = False,
):
    """Profile the data as this config sees it, without training: rows and class
    balance per split, duplicates, missing values, outliers and the features."""
    _debug(debug)
    with _errors():
        from micrograd.config.loader import load_config
        from micrograd.data.profile import profile

        report = profile(load_config(config, set_ or []))
        if json_path is not None and str(json_path) == "-":
            typer.echo(json.dumps(report, indent=2))
            return
        console = _console()
        _print_profile(console, config, report)
        if json_path is not None:
            json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
            console.print(f"profile written to {json_path}", highlight=False)


def _print_profile(console, config: Path, report: dict):
    """The profile's sections as rich tables; a section the data kind did not give is
    left out."""
    from rich.table import Table

    shape = "x".join(map(str, report.get("input_shape") or [])) or "?"
    console.print(f"{config.name}: {report['data']} data, {report.get('task') or 'no'} task, "
                  f"{report['samples']:,} samples, input {shape}", markup=False,
                  highlight=False)
    balance = report.get("class_balance") or {}
    classes = list(dict.fromkeys(c for counts in balance.values() for c in counts))
    splits = list(report["rows"])
    table = Table(title="rows per split" + (" and class balance" if classes else ""))
    table.add_column("")
    for split in splits:
        table.add_column(split, justify="right")
    table.add_row("rows", *(f"{report['rows'][s]:,}" for s in splits))
    for name in classes:
        table.add_row(f"class {name}", *(_share(balance.get(s, {}).get(name, 0), report["rows"][s])
                                         for s in splits))
    console.print(table)
    if "duplicates" in report:
        dup = report["duplicates"]
        table = Table(title="duplicates (before splitting)")
        for key in dup:
            table.add_column(key, justify="right")
        table.add_row(*(str(v) for v in dup.values()))
        console.print(table)
    if "missing" in report:
        missing = {c: n for c, n in report["missing"].items() if n}
        if missing:
            table = Table(title="missing values")
            table.add_column("column")
            table.add_column("missing", justify="right")
            for column, n in missing.items():
                table.add_row(column, str(n))
            console.print(table)
        else:
            console.print("missing values: none", highlight=False)
    if "outliers" in report:
        outliers = report["outliers"]
        if outliers:
            table = Table(title="outliers (train split)")
            table.add_column("column")
            table.add_column("found", justify="right")
            table.add_column("action")
            table.add_column("bounds", justify="right")
            for column, o in outliers.items():
                low, high = o.get("low"), o.get("high")
                bounds = ("" if low is None and high is None else
                          f"{_num(low, '-inf')} .. {_num(high, 'inf')}")
                table.add_row(column, str(o.get("found", "")), str(o.get("action", "")), bounds)
            console.print(table)
        else:
            console.print("outliers: none checked", highlight=False)
    _print_features(console, report)


def _share(count: int, total: int) -> str:
    return f"{count:,} ({count / total:.0%})" if total else "0"


def _num(value, unbounded: str) -> str:
    return unbounded if value is None else f"{value:.4g}"


def _some(names: list) -> str:
    """The first names, comma-separated; --json lists them all."""
    return ", ".join(map(str, names[:_SHOWN])) + (", ..." if len(names) > _SHOWN else "")


_SHOWN = 20  # feature names shown on a terminal


def _print_features(console, report: dict):
    features = report.get("features")
    if isinstance(features, dict):  # text: a count and the first tokens
        low, high = features.get("ngram_range", [1, 1])
        console.print(f"features: vocabulary of {features['count']:,} tokens, n-grams {low}..{high}"
                      f"; most frequent: {', '.join(map(repr, features.get('sample', [])))}",
                      markup=False, highlight=False, soft_wrap=True)
    elif isinstance(features, list):  # names after selection
        console.print(f"features ({len(features)}): {_some(features)}", markup=False,
                      highlight=False, soft_wrap=True)
    selected_out = report.get("selected_out")
    if selected_out:
        if isinstance(selected_out, dict):  # {feature: why}
            from rich.table import Table

            table = Table(title=f"removed by selection ({len(selected_out)})")
            table.add_column("feature")
            table.add_column("why")
            for name, why in list(selected_out.items())[:_SHOWN]:
                table.add_row(name, str(why))
            if len(selected_out) > _SHOWN:
                table.add_row("...", "")
            console.print(table)
        else:
            console.print(f"removed by selection ({len(selected_out)}): "
                          f"{_some(list(selected_out))}", markup=False, highlight=False,
                          soft_wrap=True)


# ------------------------------------------------------------------ eval


@app.command("eval")
def eval_(
    checkpoint: Annotated[Optional[Path], typer.Argument(
        help="Checkpoint (.npz) or run folder; default: the latest run.")] = None,
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="Evaluate other data of the same form (a CSV, text file or IDX folder).")] = None,
    json_path: Annotated[Optional[Path], typer.Option(
        "--json", help="Also write the metrics as a flat JSON object to this file.")] = None,
    plot: Annotated[bool, typer.Option(
        "--plot", help="Also draw the confusion matrix (classification) or predicted vs "
        "actual and residuals (regression) as a PNG beside the checkpoint (needs the plot "
        "extra).")] = False,
    debug: DebugOption = False,
):
    """Evaluate a checkpoint on the test split (or --data) and print its metrics."""
    _debug(debug)
    with _errors():
        from rich.table import Table

        from micrograd.evaluate import evaluate_checkpoint
        from micrograd.run import find_checkpoint

        path = find_checkpoint(checkpoint)
        report, where = evaluate_checkpoint(path, data)
        console = _console()
        console.print(f"{path}\nevaluated on {where}", markup=False, highlight=False,
                      soft_wrap=True)
        table = Table()
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in report.items():
            if isinstance(value, float):
                table.add_row(key, f"{value:.6g}")
            elif isinstance(value, int):
                table.add_row(key, str(value))
        console.print(table)
        if "confusion_matrix" in report:
            names = report.get("class_names") or [str(i) for i in range(len(report["confusion_matrix"]))]
            cm = Table(title="confusion matrix (rows: true, columns: predicted)")
            cm.add_column("")
            for n in names:
                cm.add_column(n, justify="right")
            for n, row in zip(names, report["confusion_matrix"]):
                cm.add_row(n, *map(str, row))
            console.print(cm)
        if json_path is not None:
            json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
            console.print(f"metrics written to {json_path}", highlight=False)
        if plot:
            _print_figures(console, _figures(lambda plots: plots.checkpoint_figures(path, data)))


# ------------------------------------------------------------------ plot


@app.command()
def plot(
    runs: Annotated[List[Path], typer.Argument(
        help="Run folders; several are overlaid in one learning-curve figure.")],
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Write the PNGs into this folder instead of each run's.")] = None,
    debug: DebugOption = False,
):
    """Draw a run's figures as PNG files: learning curves (loss and the monitored
    metric per epoch) and, from best.npz on the test split, a confusion matrix
    (counts and row-normalised) or predicted vs actual and residuals.

    Needs the plot extra: pip install 'micrograd-trainer[plot]'.
    """
    _debug(debug)
    with _errors():
        _print_figures(_console(), _figures(lambda plots: plots.plot_runs(runs, output)))


def _figures(draw) -> list:
    """Call draw(micrograd.plots); a missing matplotlib is an input error (exit 2)."""
    from micrograd import plots

    try:
        return draw(plots)
    except plots.PlotsUnavailable as exc:
        _fail(str(exc), EXIT_INPUT)


def _print_figures(console, paths):
    for path in paths:
        console.print(f"wrote {relative(str(path))}", markup=False, highlight=False,
                      soft_wrap=True)


# ------------------------------------------------------------------ predict


@app.command()
def predict(
    input_: Annotated[Optional[str], typer.Option(
        "--input", "-i", help="One input: a number, '1,0', 'col=value,...', a sentence, or an image path.")] = None,
    file: Annotated[Optional[Path], typer.Option(
        "--file", "-f", help="Many inputs: a CSV (tabular) or one input per line; - reads standard input.")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(
        "--checkpoint", "-c", help="Checkpoint (.npz) or run folder; default: the latest run.")] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Show the K most likely classes.")] = 1,
    json_: Annotated[bool, typer.Option(
        "--json", help="One JSON object per input (a line each): value, or label, "
                       "probability and top.")] = False,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Write the predictions as a CSV: the input's id column "
                               "(e.g. Id) or the row number, then the prediction.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an existing --output file.")] = False,
    debug: DebugOption = False,
):
    """Predict with a trained model, applying the same preprocessing as training."""
    _debug(debug)
    if (input_ is None) == (file is None):
        _fail("give exactly one of --input VALUE or --file PATH", EXIT_INPUT)
    if output is not None and output.exists() and not force:
        _fail(f"{relative(str(output))} already exists; choose another --output, or --force "
              f"to replace it", EXIT_INPUT)
    with _errors():
        from micrograd.predict import Predictor, prediction_table, write_predictions
        from micrograd.run import find_checkpoint

        predictor = Predictor(find_checkpoint(checkpoint))
        if input_ is not None:
            results = [predictor.predict([predictor.parse(input_)], top=top)[0]]
            id_name, ids = "row", [1]
        else:
            results = predictor.predict(predictor.read_file(file), top=top)
            id_name, ids = predictor.input_ids(file, len(results))
        if output is not None:
            target = getattr(predictor.pipeline, "target", None)
            path = write_predictions(output, prediction_table(results, id_name, ids, target),
                                     force=force)
            if not json_:
                typer.echo(f"wrote {relative(str(path))} ({len(results)} predictions)")
        for key, res in zip(ids, results):
            if json_:
                typer.echo(json.dumps(_prediction_json(res, id_name, key)))
            elif output is None:
                typer.echo(_format_prediction(res, top))


def _prediction_json(res: dict, id_name: str, key) -> dict:
    out = {id_name: key}
    if "value" in res:
        return {**out, "value": res["value"]}
    return {**out, "label": res["label"], "probability": res["probability"],
            "top": [{"label": name, "probability": p} for name, p in res["top"]]}


def _format_prediction(res: dict, top: int) -> str:
    if "value" in res:
        return f"{res['value']:.6g}"
    if top == 1:
        return f"{res['label']} ({res['probability']:.3f})"
    return "  ".join(f"{name} ({p:.3f})" for name, p in res["top"])


# ------------------------------------------------------------------ export


@app.command()
def export(
    checkpoint: Annotated[Optional[Path], typer.Argument(
        help="Checkpoint (.npz) or run folder; default: the latest run.")] = None,
    format_: Annotated[str, typer.Option(
        "--format", help="safetensors (weights for PyTorch) or onnx (the graph, "
                         "preprocessing folded in where linear).")] = "safetensors",
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="File to write; default: model.<format> beside the checkpoint.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an existing output file.")] = False,
    debug: DebugOption = False,
):
    """Export a trained model: safetensors weights with PyTorch's names, or an ONNX graph."""
    _debug(debug)
    with _errors():
        from micrograd.export import export_checkpoint
        from micrograd.run import find_checkpoint

        path, notes = export_checkpoint(find_checkpoint(checkpoint), format_, output,
                                        force=force)
        typer.echo(f"wrote {relative(str(path))}")
        for note in notes:
            typer.echo(note)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
