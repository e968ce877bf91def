"""Sparse text vectors: peak memory and time of one epoch of the sentiment model on
generated sentences, against the dense matrix the same data would need.

Generates ``--docs`` labelled sentences (10-30 words each, drawn with Zipf
frequencies from a vocabulary of ``--words`` made-up words; a few hundred of the
words lean positive or negative so that there is something to learn), then, in a
fresh child process each, reads them with ``load_text`` (tfidf) and trains one
epoch of configs/sentiment.yaml's model (Linear(vocab, 2), cross-entropy, Adam lr
0.01, batches of 32) and evaluates the validation and test splits. Peak RSS is the
child's ``VmHWM`` (/proc/self/status; ``ru_maxrss`` elsewhere, which can start at
the parent's peak). One JSON line per run:

    python bench/bench_sparse_text.py                      # 100,000 sentences, sparse
    python bench/bench_sparse_text.py --docs 10000 --dense # also the dense path

``--dense`` also runs the same data with the splits densified (what load_text
returned before): feasible only for small ``--docs``; the line for the full size
gives the dense matrix's size in theory (N x vocab x 4 bytes).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def generate(path, docs, words, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    # made-up words of 3-9 letters, unique
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab, seen = [], set()
    while len(vocab) < words:
        w = "".join(rng.choice(letters, size=rng.integers(3, 10)))
        if w not in seen:
            seen.add(w)
            vocab.append(w)
    vocab = np.array(vocab)
    p = 1.0 / np.arange(1, words + 1) ** 1.07  # Zipf, as English word counts
    p /= p.sum()
    # a few hundred mid-frequency words carry the label
    positive, negative = vocab[200:500], vocab[500:800]
    lengths = rng.integers(10, 31, size=docs)
    labels = rng.integers(0, 2, size=docs)
    picks = rng.choice(words, size=int(lengths.sum()), p=p)
    lines, at = [], 0
    for n, label in zip(lengths, labels):
        sentence = vocab[picks[at:at + n]].tolist()
        at += n
        cue = positive if label else negative
        for k in rng.integers(0, n, size=2):
            sentence[k] = str(cue[rng.integers(len(cue))])
        lines.append(f"{' '.join(sentence)}\t{label}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def peak_rss_mb():
    """This process's peak resident memory in MiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def child(path, dense):
    """Read, train one epoch, evaluate; print one JSON line (runs in its own process)."""
    import numpy as np

    import micrograd.nn as mn
    import micrograd.tensor as mt
    from micrograd.data.text import load_text
    from micrograd.inference import predict_outputs
    from micrograd.losses import CrossEntropyLoss
    from micrograd.optim import Adam

    base = peak_rss_mb()
    t0 = time.perf_counter()
    data = load_text(path, vectorizer="tfidf", seed=0)
    t_load = time.perf_counter() - t0
    x_train, x_val, x_test = data.x_train, data.x_val, data.x_test
    if dense:
        x_train, x_val, x_test = (np.asarray(x) for x in (x_train, x_val, x_test))
    after_load = peak_rss_mb()
    vocab = len(data.pipeline.vocabulary)
    mt.manual_seed(0)
    model = mn.Sequential(mn.Linear(vocab, 2))
    optimizer = Adam(model.parameters(), lr=0.01, weight_decay=1e-4)
    loss_fn = CrossEntropyLoss()
    loader = mt.DataLoader(mt.TensorDataset(x_train, data.y_train), batch_size=32,
                           shuffle=True, seed=0)
    t0 = time.perf_counter()
    model.train()
    for x, y in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    t_epoch = time.perf_counter() - t0
    t0 = time.perf_counter()
    acc = {}
    for name, x, y in (("val", x_val, data.y_val), ("test", x_test, data.y_test)):
        acc[name] = round(float((predict_outputs(model, x).argmax(axis=1) == y).mean()), 4)
    t_eval = time.perf_counter() - t0
    peak = peak_rss_mb()
    stored = sum(x.nbytes for x in (x_train, x_val, x_test))
    print(json.dumps({
        "path": "dense" if dense else "sparse", "docs": data.info["samples"], "vocab": vocab,
        "nnz": int(sum(getattr(x, "nnz", 0) for x in (x_train, x_val, x_test))),
        "x_mb": round(stored / 2**20, 1),
        "dense_x_mb_theory": round(data.info["samples"] * vocab * 4 / 2**20, 1),
        "load_s": round(t_load, 2), "epoch_s": round(t_epoch, 2), "eval_s": round(t_eval, 2),
        "batches": len(loader), "val_accuracy": acc["val"], "test_accuracy": acc["test"],
        "rss_at_start_mb": base, "rss_after_load_mb": after_load, "peak_rss_mb": peak,
    }), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--words", type=int, default=25_000)
    parser.add_argument("--dense", action="store_true", help="also run the dense path")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-dense", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.child_dense)
        return
    import numpy as np

    print(json.dumps({"env": f"Python {sys.version.split()[0]}", "numpy": np.__version__,
                      "cores": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2)}))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sentences.txt")
        t0 = time.perf_counter()
        generate(path, args.docs, args.words)
        print(json.dumps({"generated": args.docs, "words": args.words,
                          "file_mb": round(os.path.getsize(path) / 2**20, 1),
                          "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
        for dense in ([False, True] if args.dense else [False]):
            cmd = [sys.executable, __file__, "--child", path] + (["--child-dense"] if dense else [])
            subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
