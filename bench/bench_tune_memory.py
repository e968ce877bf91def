"""Memory over a long hyperparameter search: RSS after 10 and after 200 short trials.

Usage::

    python bench/bench_tune_memory.py [--trials 200] [--first 10] [--sampler random]

One process runs a study of a tiny synthetic config (moons, 120 samples, one
hidden layer, 2 epochs) in a temporary folder with its SQLite store: first
``--first`` trials, then the study continued to ``--trials`` in the same
process. Each phase prints one JSON line with the process's resident set size
now (VmRSS) and its peak (VmHWM); the last line gives the growth between the
two. A search that keeps each trial's data, model or optimizer state alive
grows by about one trial's worth per trial; flat is within 10%.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """\
data: {type: synthetic, kind: moons, n: 120, noise: 0.2,
       splits: {train: 0.6, val: 0.2, test: 0.2}}
model:
  layers:
    - {type: linear, out_features: 16}
    - {type: relu}
    - {type: linear, out_features: 2}
loss: cross_entropy
optimizer: {type: adam, lr: 0.01}
train: {epochs: 2, batch_size: 16, monitor: accuracy}
"""
SPACE = """\
optimizer.lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
model.layers.0.out_features: {type: int, low: 4, high: 64, step: 4}
"""


def memory_kib() -> dict:
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":")
                fields[name] = int(value.split()[0])
    return {"rss_mib": round(fields["VmRSS"] / 1024, 1), "peak_mib": round(fields["VmHWM"] / 1024, 1)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--first", type=int, default=10)
    parser.add_argument("--sampler", default="random", choices=["tpe", "random"])
    args = parser.parse_args(argv)

    from micrograd.model_selection.tune import tune

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.chdir(tmp)  # training records runs/latest in the working folder
        (tmp / "c.yaml").write_text(CONFIG)
        (tmp / "s.yaml").write_text(SPACE)
        figures = []
        start = time.perf_counter()
        for total in (args.first, args.trials):
            tune(tmp / "c.yaml", tmp / "s.yaml", trials=total, sampler=args.sampler,
                 study_dir=tmp / "study", prune=False)
            row = {"trials": total, **memory_kib(),
                   "seconds": round(time.perf_counter() - start, 1)}
            figures.append(row)
            print(json.dumps(row), flush=True)
        growth = figures[-1]["rss_mib"] / figures[0]["rss_mib"] - 1
        print(json.dumps({"rss_growth": round(growth, 4), "flat_within_10pct": abs(growth) <= 0.10}))


if __name__ == "__main__":
    sys.exit(main())
