"""A trained model's outputs and scores: batched inference without a graph, class
probabilities whatever the last layer and loss, and the metrics of ``eval`` and of
validation. Training, ``eval`` and ``predict`` all read outputs through here.
"""
from __future__ import annotations

import numpy as np

import micrograd.tensor as mt
from micrograd import metrics as M
from micrograd.config.schema import Config
from micrograd.data.pipeline import Pipeline
from micrograd.data.sparse import densify

def predict_outputs(model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Model outputs for an array of inputs, in batches, without a graph; sparse inputs
    (a ``CSRMatrix``) are densified one batch at a time."""
    model.eval()
    outs = []
    with mt.no_grad():
        for i in range(0, len(x), batch_size):
            outs.append(model(mt.from_numpy(densify(x[i:i + batch_size]))).data)
    return np.concatenate(outs) if outs else np.empty((0,))


def class_probabilities(outputs: np.ndarray, config: Config) -> np.ndarray:
    """(N, C) probabilities from the model's outputs, whatever the last layer and loss."""
    last = config.model.layers[-1].type
    if outputs.shape[1] == 1:
        # One column is P(class 1) after a sigmoid, or under the losses that
        # require probabilities (bce, and cross_entropy's one-column case, which
        # refuses values outside [0, 1] in training); otherwise it is a logit.
        p1 = outputs[:, 0]
        if last != "sigmoid" and config.loss.type not in ("bce", "cross_entropy"):
            p1 = 1 / (1 + np.exp(-p1))
        return np.stack([1 - p1, p1], axis=1)
    if last == "softmax":
        return outputs
    if last == "log_softmax":
        return np.exp(outputs)
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def evaluate(run_or_model, x, y, config: Config, pipeline: Pipeline, loss_fn=None) -> dict:
    """Loss and task metrics of the model on (x, y); regression in original units."""
    model = getattr(run_or_model, "model", run_or_model)
    if len(x) == 0:
        return {}
    outputs = predict_outputs(model, x)
    result = {}
    if loss_fn is not None:
        with mt.no_grad():
            result["loss"] = float(loss_fn(mt.from_numpy(outputs), mt.from_numpy(y)).item())
    if pipeline.task == "classification":
        pred = class_probabilities(outputs, config).argmax(axis=1)
        n = len(pipeline.class_names or []) or None
        result["accuracy"] = M.accuracy(y, pred)
        result["f1_macro"] = M.f1(y, pred, average="macro", num_classes=n)
    else:
        true = pipeline.inverse_target(np.asarray(y, dtype=np.float64).reshape(-1))
        pred = pipeline.inverse_target(outputs.reshape(-1).astype(np.float64))
        result.update(M.regression_report(true, pred))
    return result


def full_report(model, x, y, config: Config, pipeline: Pipeline) -> dict:
    """Every metric for ``eval``: a flat, JSON-able dict."""
    outputs = predict_outputs(model, x)
    if pipeline.task == "classification":
        pred = class_probabilities(outputs, config).argmax(axis=1)
        return M.classification_report(y, pred, class_names=pipeline.class_names)
    true = pipeline.inverse_target(np.asarray(y, dtype=np.float64).reshape(-1))
    pred = pipeline.inverse_target(outputs.reshape(-1).astype(np.float64))
    return M.regression_report(true, pred)
