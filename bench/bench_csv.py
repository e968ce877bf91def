"""CSV reading: the stdlib reader against the fast one (pyarrow, the ``fast`` extra),
and a whole ``load_tabular`` (read + fit) on a large table.

The table is the Ames house-prices training file with its body repeated
``--copies`` times (60: 87,600 rows x 81 columns, 27 MB). Every figure is the
best, median and worst of ``--rounds`` runs in this process (other jobs share the
machine), one JSON line each:

- ``stdlib`` / ``fast``: ``read_csv_columns``'s two readers on the decoded text
  (the answers are checked equal);
- ``pyarrow_parse`` / ``pandas_parse``: the libraries' own parse of the file into
  string columns, without the conversion to NumPy str arrays (pandas only if
  installed; it is not used by micrograd);
- ``pyarrow_import``: ``import pyarrow.csv`` in a fresh interpreter, the cost the
  first fast read pays (why files under ``FAST_CSV_MIN_CHARS`` use the stdlib reader);
- ``small``: both readers on the unrepeated file (1,460 rows);
- ``load_tabular``: read + fit as configs/house_prices.yaml's data section does it,
  with the reader chosen as in training, then with the stdlib reader, and where the
  fitting time goes (cProfile, the functions load_tabular calls).

    python bench/bench_csv.py
    python bench/bench_csv.py --copies 10 --rounds 5
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from micrograd.data import tabular
from micrograd.data.files import read_text

DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared/data/house-prices/train.csv"


def timed(fn, rounds):
    times, result = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return {"best_s": round(min(times), 3), "median_s": round(statistics.median(times), 3),
            "worst_s": round(max(times), 3)}, result


def same(a, b):
    return (a[0] == b[0] and np.array_equal(a[2], b[2])
            and all(a[1][c].dtype == b[1][c].dtype and np.array_equal(a[1][c], b[1][c])
                    for c in a[0]))


def readers(path, rounds, label):
    text = read_text(path, "tabular data file")
    slow_t, slow = timed(lambda: tabular._read_csv_stdlib(str(path), text), rounds)
    print(json.dumps({"case": label, "reader": "stdlib", "chars": len(text),
                      "rows": int(len(slow[2])), **slow_t}), flush=True)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        print(json.dumps({"case": label, "reader": "fast", "skipped": "pyarrow not installed "
                          "(pip install 'micrograd-trainer[fast]')"}))
        return
    fast_t, fast = timed(lambda: tabular._read_csv_fast(text), rounds)
    print(json.dumps({"case": label, "reader": "fast", "answered": fast is not None,
                      "equal": fast is not None and same(fast, slow), **fast_t,
                      "speedup_median": round(slow_t["median_s"] / fast_t["median_s"], 1)}),
          flush=True)


def library_parses(path, rounds):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    header = tabular.read_csv_columns(path)[0]
    types = dict.fromkeys(header, pa.string())
    t, _ = timed(lambda: pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types=types, strings_can_be_null=False)), rounds)
    print(json.dumps({"case": "parse only", "reader": "pyarrow_parse", **t}), flush=True)
    try:
        import pandas as pd
    except ImportError:
        return
    t, _ = timed(lambda: pd.read_csv(path, dtype=str, keep_default_na=False,
                                     na_filter=False), rounds)
    print(json.dumps({"case": "parse only", "reader": "pandas_parse", "pandas": pd.__version__,
                      **t}), flush=True)


def import_cost(rounds):
    code = ("import time; t = time.perf_counter(); import pyarrow.csv; "
            "print(time.perf_counter() - t)")
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True).stdout) for _ in range(rounds)]
    print(json.dumps({"case": "pyarrow_import", "best_s": round(min(times), 3),
                      "median_s": round(statistics.median(times), 3),
                      "worst_s": round(max(times), 3)}), flush=True)


def load(path, rounds, target, threshold, label):
    saved = tabular.FAST_CSV_MIN_CHARS
    tabular.FAST_CSV_MIN_CHARS = threshold
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the repeated body: "rows repeat an earlier row"
            t, data = timed(lambda: tabular.load_tabular(path, target, drop=["Id"],
                                                         log_target=True), rounds)
            profile = cProfile.Profile()
            profile.runcall(tabular.load_tabular, path, target, drop=["Id"], log_target=True)
    finally:
        tabular.FAST_CSV_MIN_CHARS = saved
    stats = pstats.Stats(profile).stats
    top = [(key, value) for key, value in stats.items() if key[2] == "load_tabular"]
    parts = {}
    if top:
        for key, value in stats.items():
            if top[0][0] in value[4] and value[3] > 0.01:
                parts[key[2]] = round(value[3], 3)
    parts = dict(sorted(parts.items(), key=lambda kv: -kv[1])[:8])
    print(json.dumps({"case": "load_tabular", "reader": label, **t,
                      "features": int(data.x_train.shape[1]),
                      "profiled_calls_s": parts}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--copies", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--target", default="SalePrice")
    args = parser.parse_args()
    try:
        import pyarrow
        arrow = pyarrow.__version__
    except ImportError:
        arrow = None
    print(json.dumps({"env": f"Python {sys.version.split()[0]}", "numpy": np.__version__,
                      "pyarrow": arrow, "cores": os.cpu_count(),
                      "load_avg_1min": round(os.getloadavg()[0], 2),
                      "fast_csv_min_chars": tabular.FAST_CSV_MIN_CHARS}), flush=True)
    source = args.csv.read_text(encoding="utf-8-sig")
    header, body = source.split("\n", 1)
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / f"x{args.copies}.csv"
        big.write_text(header + "\n" + body * args.copies, encoding="utf-8")
        readers(big, args.rounds, f"x{args.copies}")
        readers(args.csv, args.rounds, "small")
        if arrow:
            library_parses(big, args.rounds)
            import_cost(args.rounds)
        load(big, args.rounds, args.target, tabular.FAST_CSV_MIN_CHARS, "as in training")
        load(big, args.rounds, args.target, float("inf"), "stdlib")


if __name__ == "__main__":
    main()
