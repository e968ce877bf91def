"""Model selection: estimating how well a config generalises.

- :func:`cross_validate` (``cv.py``): K-fold (repeated) cross-validation, each
  fold a normal training run with its preprocessing fitted on the fold's train
  part only.
"""
from .cv import CVInterrupted, CVResult, FoldResult, cross_validate, fold_config, run_cv  # noqa: F401
