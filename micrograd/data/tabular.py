"""CSV tables as model inputs: column types, imputation, one-hot encoding, scaling.

``load_tabular`` reads a CSV file with a header row, splits the rows, learns
every statistic from the train split only, and returns ``Splits`` carrying a
fitted ``TabularPipeline``. The pipeline turns raw rows - dicts keyed by column
name - into the same float32 features, so ``predict`` on a new CSV row applies
exactly the training transform.

Every CSV is read with the same rules (UTF-8 with or without a BOM, ragged rows
and duplicate names refused, cells stripped): training through
``read_csv_coded`` (each column as its distinct cell texts and one code per
row, so that parsing, missing-value checks and category lookups run once per
distinct text), ``eval --data`` and ``predict --file`` through
``read_csv_columns``; large files are parsed by pyarrow when the ``fast`` extra
is installed, and anything it cannot vouch for by the stdlib reader, whose
messages every error uses. ``TabularPipeline.read_table`` matches an input
file's columns to the model's by exact name. Numbers must be finite and
within float32's range: ``inf`` or ``1e308`` is a ``DataError`` naming the file,
line and column, while the ``MISSING_VALUES`` spellings (and NaN) are missing
cells, imputed.

Features are laid out in column order: a numeric column gives one feature, a
categorical column one feature per category seen in training
(``feature_names`` spells them ``column=category``).
"""
from __future__ import annotations

import csv
import difflib
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import cleaning
from .files import read_text, source_name
from .kinds import DataKind, register_kind
from .pipeline import DataError, Pipeline, PipelineError, Splits, as_rows
from .splits import split_indices

MISSING_VALUES = ("", "NA", "NaN", "nan", "N/A", "null")
TASKS = ("auto", "regression", "classification")
NUMERIC_IMPUTE = ("mean", "median", "most_frequent", "constant")
CATEGORICAL_IMPUTE = ("most_frequent", "constant")
SCALINGS = ("standard", "minmax", "robust", "none")
DUPLICATES = ("keep", "drop")
CONFLICTS = ("keep", "report", "drop")
OUTLIER_ACTIONS = ("clip", "drop")

# task="auto" reads an integer-valued numeric target with at most this many
# distinct values, and at least two rows per value on average, as class labels
# (0/1, 1..5 ratings); anything else is regression.
MAX_AUTO_CLASSES = 20
_CATEGORICAL_FILL = "missing"  # impute_categorical="constant" without fill_value
# The largest magnitude a feature may have: models compute in float32, so a
# finite float64 beyond it (1e308) becomes inf in the first layer.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class UnseenCategoryWarning(UserWarning):
    """A categorical value that training never saw; it is encoded as all zeros."""


class ExtraColumnsWarning(UserWarning):
    """An input file has columns that are neither features nor the target; they are ignored."""


class TabularPipeline(Pipeline):
    """Raw table rows in, float32 features (N, n_features) out, as fitted on train.

    Each numeric column has its missing cells replaced by ``numeric_fill`` and
    is then mapped to ``(value - center) / scale`` (standard: mean and std,
    minmax: min and range, none: 0 and 1). Each categorical column has its
    missing cells replaced by ``categorical_fill`` and is one-hot encoded over
    ``categories``; a value outside them gives an all-zero block and one
    ``UnseenCategoryWarning`` per ``transform`` call.

    For regression the target is ``log1p``-ed when ``log_target`` is set, then
    standardised with the train mean and std; ``inverse_target`` undoes both.
    For classification the target is the index into ``class_names``.

    ``transform`` accepts:

    - a list of dicts ``{column: raw value}`` (strings as read from a CSV, or
      numbers); missing keys, ``None``, NaN and the ``missing_values`` strings
      are imputed; keys that are not feature columns (the target, an Id) are
      ignored (``read_table`` reads a CSV file into such dicts, refusing a file
      that lacks a column);
    - a single dict (one row);
    - when every feature column is numeric, raw numbers in column order: a
      2-D array ``(N, len(columns))``, one row as a 1-D sequence, or a scalar
      when there is a single column.

    An infinity or a number beyond float32's range in a numeric column is a
    ``PipelineError``, never imputed.

    Example::

        >>> p = TabularPipeline(["area", "zone"], ["numeric", "categorical"],
        ...                     numeric_fill=[100.0], center=[100.0], scale=[50.0],
        ...                     categorical_fill=["RL"], categories=[["RL", "RM"]])
        >>> p.feature_names
        ['area', 'zone=RL', 'zone=RM']
        >>> p.transform({"area": "150", "zone": "RM"})
        array([[1., 0., 1.]], dtype=float32)
    """

    kind = "tabular"

    def __init__(self, columns, kinds, *, numeric_fill, center, scale, categorical_fill,
                 categories, task="regression", class_names=None, target=None,
                 log_target=False, target_mean=0.0, target_std=1.0,
                 missing_values=MISSING_VALUES, options=None, clip_low=None, clip_high=None,
                 selected=None):
        self.columns = [str(c) for c in columns]
        self.kinds = [str(k) for k in kinds]
        if len(self.kinds) != len(self.columns) or set(self.kinds) - {"numeric", "categorical"}:
            raise ValueError(f"kinds must be 'numeric' or 'categorical', one per column, "
                             f"got {self.kinds} for columns {self.columns}")
        self.numeric_fill = np.asarray(numeric_fill, dtype=np.float64).reshape(-1)
        self.center = np.asarray(center, dtype=np.float64).reshape(-1)
        self.scale = np.asarray(scale, dtype=np.float64).reshape(-1)
        self.categorical_fill = [str(v) for v in categorical_fill]
        self.categories = [[str(v) for v in cats] for cats in categories]
        n_numeric = self.kinds.count("numeric")
        n_categorical = len(self.kinds) - n_numeric
        if not (len(self.numeric_fill) == len(self.center) == len(self.scale) == n_numeric
                and len(self.categorical_fill) == len(self.categories) == n_categorical):
            raise ValueError("numeric_fill/center/scale need one value per numeric column and "
                             "categorical_fill/categories one entry per categorical column")
        for name, cats in zip(self._names("categorical"), self.categories):
            if cats != sorted(set(cats)):
                raise ValueError(f"categories of column {name!r} must be sorted and unique")
        self.task = task
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        self.target = target
        self.log_target = bool(log_target)
        self.target_mean = float(target_mean)
        self.target_std = float(target_std)
        self.missing_values = tuple(str(m) for m in missing_values)
        self.options = dict(options or {})  # how it was fitted, for summaries only
        widths = [1 if k == "numeric" else len(c) for k, c in zip(self.kinds, self._blocks())]
        self._offsets = np.concatenate([[0], np.cumsum(widths)]).astype(int)
        # train bounds of each numeric column (outliers): every input is clipped to them
        self.clip_low = np.full(n_numeric, -np.inf) if clip_low is None else \
            np.asarray(clip_low, dtype=np.float64).reshape(-1)
        self.clip_high = np.full(n_numeric, np.inf) if clip_high is None else \
            np.asarray(clip_high, dtype=np.float64).reshape(-1)
        if not (len(self.clip_low) == len(self.clip_high) == n_numeric) or \
                np.any(self.clip_low > self.clip_high):
            raise ValueError("clip_low/clip_high need one value per numeric column, low <= high")
        # feature selection: the encoded features kept, by name, in encoded order
        encoded = self.all_feature_names
        if selected is None:
            self._selected = None
        else:
            position = {name: i for i, name in enumerate(encoded)}
            unknown = [name for name in selected if name not in position]
            if unknown:
                raise ValueError(f"selected features {unknown} are not features of this table")
            self._selected = np.sort(np.array([position[n] for n in selected], dtype=np.int64))
        self.input_shape = (len(self.feature_names),)

    def _names(self, kind):
        return [c for c, k in zip(self.columns, self.kinds) if k == kind]

    def _blocks(self):
        """Per column: None for a numeric column, its category list for a categorical one."""
        cats = iter(self.categories)
        return [None if k == "numeric" else next(cats) for k in self.kinds]

    @property
    def all_feature_names(self) -> list[str]:
        """Every encoded feature, before selection: the column, or ``column=category``."""
        names = []
        for column, cats in zip(self.columns, self._blocks()):
            names.extend([column] if cats is None else [f"{column}={c}" for c in cats])
        return names

    @property
    def feature_names(self) -> list[str]:
        """One name per output feature: the column, or ``column=category`` for one-hot
        (only the features that selection kept, when it ran)."""
        names = self.all_feature_names
        return names if self._selected is None else [names[i] for i in self._selected]

    def __repr__(self):
        n_numeric = self.kinds.count("numeric")
        return (f"TabularPipeline(task={self.task!r}, columns={len(self.columns)} "
                f"({n_numeric} numeric, {len(self.columns) - n_numeric} categorical), "
                f"features={self.input_shape[0]})")

    # ------------------------------------------------------------- transform

    def transform(self, raw) -> np.ndarray:
        if isinstance(raw, dict):
            raw = [raw]
        if isinstance(raw, (list, tuple)) and raw and all(isinstance(r, dict) for r in raw):
            return self._encode(self._columns_from_dicts(raw))[0]
        if isinstance(raw, (list, tuple)) and len(raw) == 0:
            return np.zeros((0, self.input_shape[0]), np.float32)
        return self._encode(self._columns_from_array(raw))[0]

    def _columns_from_dicts(self, rows):
        known = set(self.columns)
        for i, row in enumerate(rows):
            if row and not known.intersection(row):
                raise PipelineError(
                    f"row {i} has none of the feature columns (its keys: "
                    f"{', '.join(map(str, list(row)[:10]))}); expected keys among: "
                    f"{', '.join(self.columns)}"
                )
        return {c: _text_column([row.get(c) for row in rows], self.missing_values)
                for c in self.columns}

    def _columns_from_array(self, raw):
        if "categorical" in self.kinds:
            raise PipelineError(
                f"this table has categorical columns ({', '.join(self._names('categorical'))}): "
                f"pass rows as dicts {{column: value}} (or a list of them), not an array"
            )
        n = len(self.columns)
        x = as_rows(np.asarray(raw) if not isinstance(raw, (str, bytes)) else np.asarray([raw]), n)
        if x.ndim != 2 or x.shape[1] != n:
            raise PipelineError(
                f"expected {n} raw feature(s) per row in column order ({', '.join(self.columns)}), "
                f"got input of shape {np.shape(raw)}"
            )
        if np.issubdtype(x.dtype, np.number) or x.dtype == bool:
            return {c: x[:, j].astype(np.float64) for j, c in enumerate(self.columns)}
        return {c: _text_column(list(x[:, j]), self.missing_values)
                for j, c in enumerate(self.columns)}

    def _encode(self, table, warn=True):
        """Columns -> (float32 features, unseen list). A numeric column is a float array or
        a (text, missing) pair; a categorical one a (text, missing) pair, or in training a
        (``_CodedColumn``, missing per distinct value) pair."""
        first = table[self.columns[0]]
        n = len(first[0] if isinstance(first, tuple) else first)
        # float32 from the start: each float64 value is rounded as astype would round it
        out = np.zeros((n, int(self._offsets[-1])), np.float32)
        rows = np.arange(n)
        unseen = []
        numeric = iter(range(len(self.numeric_fill)))
        categorical = iter(range(len(self.categories)))
        for column, kind, start in zip(self.columns, self.kinds, self._offsets):
            data = table[column]
            if kind == "numeric":
                j = next(numeric)
                values = data if isinstance(data, np.ndarray) else _parse_numbers(*data, column)
                _check_finite(values, column)
                values = np.clip(values, self.clip_low[j], self.clip_high[j])  # NaN stays
                values = np.where(np.isnan(values), self.numeric_fill[j], values)
                out[:, start] = (values - self.center[j]) / self.scale[j]
            else:
                j = next(categorical)
                text, missing = data
                cats = np.asarray(self.categories[j], dtype=str)
                if len(cats) == 0:
                    continue
                if isinstance(text, _CodedColumn):  # training: look up each distinct text once
                    located = _locate_categories(text.values, missing, cats,
                                                 self.categorical_fill[j])
                    index, found, new, text = (text.cells(a) for a in located)
                else:
                    index, found, new, text = _locate_categories(text, missing, cats,
                                                                 self.categorical_fill[j])
                out[rows[found], start + index[found]] = 1.0
                if new.any():
                    unseen.append((column, np.unique(text[new]).tolist()))
        if warn and unseen:
            listed = "; ".join(
                f"{column}: {', '.join(repr(v) for v in values[:5])}"
                + (f" and {len(values) - 5} more" if len(values) > 5 else "")
                for column, values in unseen
            )
            warnings.warn(f"categories not seen in training, encoded as all zeros in their "
                          f"one-hot block: {listed}", UnseenCategoryWarning, stacklevel=3)
        if self._selected is not None:
            out = out[:, self._selected]
        return out, unseen

    # ---------------------------------------------------------------- target

    def transform_target(self, values) -> np.ndarray:
        """Raw target values -> model units: class indices, or scaled regression targets."""
        if self.task == "classification":
            lookup = {name: i for i, name in enumerate(self.class_names or [])}
            text, missing = _text_column(list(np.ravel(np.asarray(values, dtype=object))),
                                         self.missing_values)
            bad = [v for v, m in zip(text.tolist(), missing) if m or v not in lookup]
            if bad:
                raise PipelineError(f"target {self.target!r}: unknown class {bad[0]!r}; "
                                    f"expected one of {self.class_names}")
            return np.array([lookup[v] for v in text.tolist()], dtype=np.int64)
        y = np.asarray(values, dtype=np.float64)
        if self.log_target:
            _check_log(y, self.target)
            y = np.log1p(y)
        return ((y - self.target_mean) / self.target_std).astype(np.float32)

    def inverse_target(self, y) -> np.ndarray:
        """Model outputs (scaled units) -> target in its original units (regression only)."""
        if self.task != "regression":
            return y
        y = np.asarray(getattr(y, "data", y), dtype=np.float64) * self.target_std + self.target_mean
        return np.expm1(y) if self.log_target else y

    # ------------------------------------------------------------- reading

    def read_table(self, source, *, with_target=False):
        """A CSV file of raw inputs -> ``(rows, targets)`` for ``transform`` (and
        ``transform_target``): what ``predict --file`` and ``eval --data`` read.

        The file goes through training's reader (``read_csv_columns``: UTF-8 with
        or without a BOM, ragged rows, duplicate names, stripping); ``source``
        may be ``-`` for standard input. Columns are matched by exact name after
        trimming spaces, in any order. A feature column (or, ``with_target``, the
        target) that the file lacks is a ``DataError`` listing them, with a
        did-you-mean for a name that differs in case or spelling - never an
        imputed column. Other columns are ignored with one ``ExtraColumnsWarning``.
        Missing cells stay missing (``transform`` imputes them as in training);
        text in a numeric column, ``inf`` or a number beyond float32's range is
        a ``DataError`` naming the file, line and column. With the target, rows
        whose target is missing are dropped with a warning, as in training.

        Returns a list of dicts ``{feature column: cell text}`` and the targets'
        texts (``None`` without ``with_target``).
        """
        name = source_name(source)
        header, table, lines = read_csv_columns(source)
        needed = list(self.columns) + ([self.target] if with_target else [])
        missing = [c for c in needed if c not in table]
        known = set(self.columns) | {self.target}
        if missing:
            unmatched = [h for h in header if h not in known]
            hints = []
            for column in missing:
                hint = _suggest(column, unmatched)
                if hint is not None:
                    hints.append(f"{hint!r}: did you mean {column!r}?")
                    unmatched.remove(hint)
            listed = ", ".join(f"the target {c!r}" if c == self.target and with_target
                               else repr(c) for c in missing)
            raise DataError(
                f"{name}: missing column(s) the model needs: {listed}."
                + (" " + " ".join(hints) if hints else "")
                + " Names must match the training data's columns exactly (spaces around a "
                f"name are ignored); the file's columns: {', '.join(map(repr, header))}"
            )
        extra = [h for h in header if h not in known]
        if extra:
            warnings.warn(f"{name}: ignoring column(s) the model does not use: "
                          f"{', '.join(map(repr, extra))}", ExtraColumnsWarning, stacklevel=2)
        targets = None
        if with_target:
            y_text = table[self.target]
            keep = ~_target_missing(y_text, self.missing_values, name, self.target, lines)
            table = {c: v[keep] for c, v in table.items()}
            lines, y_text = lines[keep], y_text[keep]
            if self.task == "classification":
                names = set(self.class_names or [])
                unknown = [i for i, v in enumerate(y_text.tolist()) if v not in names]
                if unknown:
                    i = unknown[0]
                    raise DataError(f"{name}, line {lines[i]}: column {self.target!r} (the "
                                    f"target) holds {str(y_text[i])!r}, not one of the classes "
                                    f"the model knows: {', '.join(self.class_names or [])}")
            else:
                y = _parse_numbers(y_text, np.zeros(len(y_text), bool), self.target, lines, name)
                if self.log_target and (y <= -1).any():
                    i = int(np.flatnonzero(y <= -1)[0])
                    raise DataError(f"{name}, line {lines[i]}: column {self.target!r} (the "
                                    f"target) holds {str(y_text[i])!r}; the model predicts "
                                    f"log1p(target), so values must be above -1")
            targets = y_text.tolist()
        for column, kind in zip(self.columns, self.kinds):
            if kind == "numeric":
                text = table[column]
                _parse_numbers(text, np.isin(text, list(self.missing_values)), column, lines, name)
        cells = zip(*(table[c].tolist() for c in self.columns))
        return [dict(zip(self.columns, row)) for row in cells], targets

    # ----------------------------------------------------------------- state

    def get_state(self):
        meta: dict[str, Any] = {
            "columns": list(self.columns),
            "kinds": list(self.kinds),
            "categorical_fill": list(self.categorical_fill),
            "categories": [list(c) for c in self.categories],
            "task": self.task,
            "class_names": self.class_names,
            "target": self.target,
            "log_target": self.log_target,
            "missing_values": list(self.missing_values),
            "feature_names": self.feature_names,
            "options": self.options,
        }
        arrays = {
            "numeric_fill": self.numeric_fill.copy(),
            "center": self.center.copy(),
            "scale": self.scale.copy(),
            "target_stats": np.array([self.target_mean, self.target_std], dtype=np.float64),
            "clip_low": self.clip_low.copy(),
            "clip_high": self.clip_high.copy(),
        }
        if self._selected is not None:
            meta["selected_features"] = self.feature_names
        return meta, arrays

    @classmethod
    def from_state(cls, meta, arrays):
        target_mean, target_std = np.asarray(arrays["target_stats"], dtype=np.float64)
        return cls(meta["columns"], meta["kinds"],
                   numeric_fill=arrays["numeric_fill"], center=arrays["center"],
                   scale=arrays["scale"], categorical_fill=meta["categorical_fill"],
                   categories=meta["categories"], task=meta["task"],
                   class_names=meta.get("class_names"), target=meta.get("target"),
                   log_target=meta.get("log_target", False), target_mean=target_mean,
                   target_std=target_std,
                   missing_values=meta.get("missing_values", MISSING_VALUES),
                   options=meta.get("options"), clip_low=arrays.get("clip_low"),
                   clip_high=arrays.get("clip_high"), selected=meta.get("selected_features"))


# -------------------------------------------------------------------- kind


@register_kind
class TabularKind(DataKind):
    """CSV tables: the config's ``type: csv``.

    ``predict --input`` takes ``col=value,...`` naming every feature column
    (``col=`` asks for imputation) or a CSV row in column order; ``predict
    --file`` and ``eval --data`` read a CSV through training's reader
    (``TabularPipeline.read_table``), matching columns by name.
    """

    name = "tabular"
    pipeline_class = TabularPipeline

    @classmethod
    def from_config(cls, section) -> Splits:
        return load_tabular(
            section.path, section.target, features=section.features,
            categorical=section.categorical, numeric=section.numeric, drop=section.drop,
            task=section.task, impute_numeric=section.impute_numeric,
            impute_categorical=section.impute_categorical, fill_value=section.fill_value,
            scaling=section.scaling, log_target=section.log_target,
            splits=section.splits.fractions(), seed=section.seed,
            duplicates=section.duplicates, conflicts=section.conflicts,
            outliers=None if section.outliers is None else section.outliers.model_dump(),
            select=None if section.select is None else section.select.model_dump(),
        )

    def expects(self) -> str:
        columns = self.pipeline.columns
        return ("key=value pairs separated by commas (columns: " + ", ".join(columns[:8])
                + (", ..." if len(columns) > 8 else "") + "), or a CSV row in that order")

    def parse(self, text: str) -> dict:
        if "=" in text:
            return self._parse_pairs(text)
        columns = self.pipeline.columns
        values = _csv_fields(text)
        if len(values) != len(columns):
            raise PipelineError(f"got {len(values)} value(s), the model expects "
                                f"{len(columns)}: {self.expects()}")
        return dict(zip(columns, values))

    def _parse_pairs(self, text: str) -> dict:
        """``col=value,...``: every feature column named once; ``col=`` (empty) is
        imputed as a missing cell, a column left out is an error."""
        p = self.pipeline
        row = {}
        for part in _csv_fields(text):
            if "=" not in part:
                raise PipelineError(f"expected key=value, got {part!r}; the model expects "
                                    f"{self.expects()}")
            key, value = (s.strip() for s in part.split("=", 1))
            if key in row:
                raise PipelineError(f"column {key!r} is given twice; the model expects "
                                    f"{self.expects()}")
            row[key] = value
        known = set(p.columns) | {p.target}
        unknown = [k for k in row if k not in known]
        missing = [c for c in p.columns if c not in row]
        if not unknown and not missing:
            return row
        problems = []
        if unknown:
            spelled = []
            for key in unknown:
                hint = _suggest(key, missing)
                spelled.append(key + (f" (did you mean {hint!r}?)" if hint else ""))
            problems.append(f"unknown column(s) {', '.join(spelled)}")
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)} (write 'column=' with "
                            f"no value to have a value imputed as in training)")
        raise PipelineError("; ".join(problems) + f"; the model expects {self.expects()}")

    def read_inputs(self, source) -> list[dict]:
        return self.pipeline.read_table(source)[0]

    def read_labelled(self, path):
        # training's reader and checks: a BOM, a renamed or missing column, a ragged
        # row or an infinite value is an error naming the file, not nan metrics
        rows, targets = self.pipeline.read_table(path, with_target=True)
        return self.pipeline.transform(rows), self.pipeline.transform_target(targets)


def _csv_fields(text: str) -> list[str]:
    """The values of one comma-separated line."""
    try:
        return next(csv.reader(io.StringIO(text)), [])
    except csv.Error as exc:
        raise PipelineError(f"expected one line of comma-separated values, got {text!r} "
                            f"({exc})") from None


# --------------------------------------------------------------- raw cells


def _cell_text(value):
    """One raw cell as stripped text, or None when it is missing (None, NaN)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if value != value:
            return None
        # 60.0 must match the category "60"; repr() round-trips every other float exactly
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    return str(value).strip()


def _text_column(cells, missing_values):
    """Raw cells -> (str array, missing mask)."""
    text = [_cell_text(v) for v in cells]
    absent = np.array([t is None for t in text], dtype=bool)
    text = np.array(["" if t is None else t for t in text], dtype=str)
    return text, absent | np.isin(text, list(missing_values))


def _locate_categories(text, missing, cats, fill):
    """(position in ``cats``, found, new, filled text) per cell: missing cells take
    ``fill``; a present text outside ``cats`` is new (unseen in training)."""
    text = np.where(missing, fill, text)
    index = np.searchsorted(cats, text)
    found = cats[np.minimum(index, len(cats) - 1)] == text
    return index, found, ~found & ~missing, text


def _first_non_number(text, missing):
    """Index of the first present cell that does not parse as a number, or None."""
    present = ~missing
    try:
        text[present].astype(np.float64)
        return None
    except ValueError:
        for i in np.flatnonzero(present):  # only on the error path: find the culprit
            try:
                float(text[i])
            except ValueError:
                return int(i)
    return None  # pragma: no cover - numpy and float() agree


def _parse_numbers(text, missing, column, lines=None, where=""):
    """Text cells -> float64 with NaN where missing.

    A cell that spells NaN in any case is missing too. A non-number, an infinity
    or a number beyond float32's range (``1e308``) raises: a ``DataError``
    naming the file, line and column when ``where`` names a file, else a
    ``PipelineError`` naming the column.
    """
    values = np.full(len(text), np.nan)
    present = ~missing
    try:  # parsed once; _first_non_number only looks for the culprit of an error
        values[present] = text[present].astype(np.float64)
        bad = None
    except ValueError:
        bad = _first_non_number(text, missing)
    error = DataError if where else PipelineError
    if bad is not None:
        at = f"{where}, line {lines[bad]}: " if where else ""
        raise error(f"{at}column {column!r} holds {str(text[bad])!r}, but a number "
                    f"was expected (the column is numeric)")
    overflow = _not_finite(values)
    if overflow.any():
        i = int(np.flatnonzero(overflow)[0])
        at = f"{where}, line {lines[i]}: " if where else ""
        raise error(f"{at}column {column!r} holds {str(text[i])!r}, which is not a finite "
                    f"number within float32 range (|value| <= {FLOAT32_MAX:.4g}); fix the value "
                    f"or leave the cell empty to have it imputed")
    return values


def _not_finite(values):
    """Mask of infinite values and of finite ones beyond float32's range (NaN is missing, not this)."""
    with np.errstate(invalid="ignore"):
        return np.isinf(values) | (np.abs(np.nan_to_num(values)) > FLOAT32_MAX)


def _check_finite(values, column):
    """Numbers given to ``transform`` (arrays or parsed text): inf or overflow is an error."""
    overflow = _not_finite(np.asarray(values, dtype=np.float64))
    if overflow.any():
        i = int(np.flatnonzero(overflow)[0])
        raise PipelineError(f"column {column!r}: row {i} holds {float(values[i])!r}, which is not a "
                            f"finite number within float32 range (|value| <= "
                            f"{FLOAT32_MAX:.4g}); give a number, or an empty value to have it "
                            f"imputed")


def _check_log(y, target):
    if np.any(y <= -1):
        raise PipelineError(f"log_target needs target values above -1 (log1p), but {target!r} "
                            f"has a minimum of {np.min(y):g}")


# -------------------------------------------------------------- reading CSV


def _suggest(name, options):
    lowered = {o.lower(): o for o in options}
    if name.lower() in lowered:
        return lowered[name.lower()]
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown_column(what, name, path, header):
    hint = _suggest(name, header)
    return PipelineError(
        f"{what} {name!r} not found in {path}."
        + (f" Did you mean {hint!r}?" if hint else "")
        + f" Available columns: {', '.join(header)}"
    )


def read_csv_columns(path):
    """Read a CSV with a header row into ``(header, {column: stripped str array}, line numbers)``.

    ``path`` may be ``-`` for standard input. The text is UTF-8 (a BOM is
    dropped); header names and cells are stripped of surrounding spaces. Blank
    lines are skipped; a missing or non-UTF-8 file, a row with the wrong number
    of fields, duplicate header names, an empty file or a file without data rows
    raise ``DataError`` naming the file (and line). Training, ``eval --data`` and
    ``predict --file`` all read through here.

    A file of ``FAST_CSV_MIN_CHARS`` or more is parsed by pyarrow's C reader when
    pyarrow is installed (the ``fast`` extra; about 6x faster on large files);
    whatever it cannot vouch for (see ``_read_csv_fast``) and every smaller file
    is read by the stdlib ``csv`` module, which also words every error.
    """
    name = source_name(path)
    text = read_text(path, "tabular data file")
    if len(text) >= FAST_CSV_MIN_CHARS:
        fast = _read_csv_fast(text)
        if fast is not None:
            return fast
    return _read_csv_stdlib(name, text)


#: Below this many characters the stdlib reader is used: importing pyarrow
#: (0.1-0.3 s) costs more than it saves (see bench/README.md).
FAST_CSV_MIN_CHARS = 2 * 2**20


def _read_csv_stdlib(name, text):
    """``read_csv_columns`` on the file's text, with the stdlib ``csv`` module."""
    rows, lines = [], []
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise DataError(f"{name} is empty: expected a header row naming the columns, "
                            f"then one row per sample")
        header = [h.strip() for h in header]
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{name}, line {reader.line_num}: expected {len(header)} fields (one per "
                    f"header column), found {len(row)}; check the delimiter (must be ',') "
                    f"and the quoting of values that contain commas"
                )
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise DataError(f"{name}, line {reader.line_num}: malformed CSV ({exc})") from None
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise DataError(f"{name}: duplicate column names in the header (after trimming spaces): "
                        f"{', '.join(repr(h) for h in duplicated)}")
    if not rows:
        raise DataError(f"{name} has a header row but no data rows")
    columns = {column: np.char.strip(np.array(cells, dtype=str))
               for column, cells in zip(header, zip(*rows))}
    return header, columns, np.asarray(lines)


def _read_csv_fast(text):
    """``read_csv_columns``'s answer from pyarrow's C parser, or None whenever it might
    differ from the stdlib reader's (see ``_arrow_table``)."""
    parsed = _arrow_table(text)
    if parsed is None:
        return None
    header, table, lines = parsed
    columns = {column: np.char.strip(_arrow_text(table.column(i)))
               for i, column in enumerate(header)}
    return header, columns, lines


def _arrow_table(text):
    """``(header, pyarrow table of unstripped string columns, line numbers)``, or None
    whenever the answer might differ from the stdlib reader's: pyarrow not installed,
    a lone CR line end, a header that is empty, spans lines or repeats a name, a parse
    error (a ragged row, an unclosed quote), a quoted value over several lines, or
    no data rows. The
    stdlib reader then reads the text again and words the error with its file and line."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    end = text.find("\n")
    if end < 0 or ("\r" in text and text.count("\r") != text.count("\r\n")):
        return None
    # The header as the stdlib reader sees it; one spanning lines (a quote opened
    # after a comma, even behind a literal quote as in `1","`) is left to it.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error:
        return None
    if header is None or reader.line_num != 1:
        return None
    header = [h.strip() for h in header]
    if not any(header) or len(set(header)) != len(header):
        return None
    if text.startswith("\ufeff", end + 1):
        return None  # pyarrow would drop this BOM; it is the first row's text here
    body = text[end + 1:].encode("utf-8")
    # Line numbers: every non-blank physical line is one row when no value spans lines.
    raw = np.frombuffer(body, dtype=np.uint8)
    starts = np.concatenate(([0], np.flatnonzero(raw == 10) + 1))
    stops = np.append(starts[1:] - 1, len(raw))
    length = stops - starts
    cr_only = (length == 1) & (raw[np.minimum(starts, len(raw) - 1)] == 13) if len(raw) else length > 0
    lines = np.flatnonzero((length > 0) & ~cr_only) + 2
    if len(lines) == 0:
        return None
    names = [f"c{i}" for i in range(len(header))]
    try:
        table = pacsv.read_csv(
            pa.py_buffer(body),
            read_options=pacsv.ReadOptions(column_names=names),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False,
                quoted_strings_can_be_null=False),
        )
    except (pa.ArrowException, ValueError):
        return None
    if table.num_rows != len(lines):
        return None
    if b'"' in body and _any_line_break(table):
        # A quoted value over lines that are otherwise blank: the row count agrees
        # with the non-blank lines, but the stdlib reader's line numbers would not.
        return None
    return header, table, lines


def _any_line_break(table) -> bool:
    import pyarrow.compute as pc

    return any(pc.any(pc.match_substring_regex(column, "[\r\n]")).as_py()
               for column in table.columns)


def _arrow_text(column) -> np.ndarray:
    """A pyarrow string column as a NumPy str array, as ``np.array(cells, dtype=str)``
    gives it. ASCII columns are copied byte by byte from pyarrow's buffers (no Python
    string per cell: 0.2 s for Ames x60 against 2.8 s through ``to_numpy().astype(str)``)."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    n = len(array)
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[array.offset:array.offset + n + 1]
    data = (np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0]:offsets[-1]]
            if data_buffer is not None else np.empty(0, np.uint8))
    if data.size and data.max() >= 128:
        return array.to_numpy(zero_copy_only=False).astype(str)
    lengths = np.diff(offsets)
    width = max(int(lengths.max()) if n else 0, 1)
    # A str array is UCS-4: one uint32 code point per character, zero-padded,
    # and an ASCII byte is its own code point.
    cells = np.zeros((n, width), dtype=np.uint32)
    rows = np.repeat(np.arange(n), lengths)
    cells[rows, np.arange(data.size) - (offsets[:-1] - offsets[0])[rows]] = data
    return cells.view(f"<U{width}").reshape(n)


class _CodedColumn:
    """One column of a training CSV as its distinct stripped cell texts, sorted
    (``values``), and per row the index of its text among them (``codes``).

    Training's columns have few distinct texts (categories, repeated numbers), so
    every test of a cell - missing, a number, a category - runs once per distinct
    text and reaches the rows by ``per_value[codes]``; rows compare equal exactly
    when their codes do.
    """

    __slots__ = ("values", "codes")

    def __init__(self, values, codes):
        self.values = values
        self.codes = codes

    @classmethod
    def from_text(cls, text):
        values, codes = np.unique(text, return_inverse=True)
        return cls(values, codes.reshape(-1))

    def __len__(self):
        return len(self.codes)

    def text(self):
        """The stripped cells, one per row, as ``read_csv_columns`` gives them."""
        return self.values[self.codes]

    def cells(self, per_value):
        """A per-value array spread over the rows."""
        return per_value[self.codes]

    def counts(self):
        """How many rows hold each value."""
        return np.bincount(self.codes, minlength=len(self.values))

    def used(self):
        """Mask of the values that some row still holds (rows may have been dropped)."""
        return self.counts() > 0

    def take(self, rows):
        return _CodedColumn(self.values, self.codes[rows])


def read_csv_coded(path):
    """``read_csv_columns`` for training: ``(header, {column: _CodedColumn}, line numbers)``.

    Large files are read by pyarrow and each column dictionary-encoded there, so no
    per-cell string array is built; everything else (and whatever ``_arrow_table``
    cannot vouch for) goes through the stdlib reader. Both give the same columns.
    """
    text = read_text(path, "tabular data file")
    if len(text) >= FAST_CSV_MIN_CHARS:
        parsed = _arrow_table(text)
        if parsed is not None:
            header, table, lines = parsed
            return header, {c: _coded_arrow_column(table.column(i))
                            for i, c in enumerate(header)}, lines
    header, columns, lines = _read_csv_stdlib(source_name(path), text)
    return header, {c: _CodedColumn.from_text(cells) for c, cells in columns.items()}, lines


def _coded_arrow_column(column) -> _CodedColumn:
    """A pyarrow string column as a ``_CodedColumn``: pyarrow's dictionary of raw texts is
    stripped (two raw texts may strip to one) and sorted as ``from_text`` would."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(column.combine_chunks())
    raw = np.char.strip(np.array(encoded.dictionary.to_pylist(), dtype=str))
    values, remap = np.unique(raw, return_inverse=True)
    return _CodedColumn(values, remap.reshape(-1)[encoded.indices.to_numpy()])


# ---------------------------------------------------------------- fitting


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"Invalid {name}: {value!r} (expected one of {', '.join(choices)})")


def _most_frequent(values):
    """Most common value; ties go to the smallest, so the result is deterministic."""
    uniques, counts = np.unique(values, return_counts=True)
    return uniques[np.argmax(counts)]


def _numeric_stats(values, impute, fill_value, scaling):
    """(fill, center, scale) of one numeric train column (NaN = missing). The caller
    checks that they are finite (values near float32's limit can overflow them)."""
    with np.errstate(over="ignore", invalid="ignore"):
        present = values[np.isfinite(values)]
        if impute == "constant":
            fill = 0.0 if fill_value is None else fill_value
        elif present.size == 0:
            fill = 0.0  # no train value to learn from: the column carries no information anyway
        elif impute == "mean":
            fill = float(present.mean())
        elif impute == "median":
            fill = float(np.median(present))
        else:
            fill = float(_most_frequent(present))
        filled = np.where(np.isfinite(values), values, fill)
        if scaling == "standard" and filled.size:
            center, scale = float(filled.mean()), float(filled.std())
        elif scaling == "minmax" and filled.size:
            center, scale = float(filled.min()), float(filled.max() - filled.min())
        elif scaling == "robust" and filled.size:
            center, scale = cleaning.robust_center_scale(filled)
        else:
            center, scale = 0.0, 1.0
    if scale == 0:
        scale = 1.0  # a constant column is centred, not divided
    return fill, center, scale


def _class_order(names):
    """Sorted class names: numerically when every name is a number ('2' before '10')."""
    try:
        return sorted(names, key=lambda s: (float(s), s))
    except ValueError:
        return sorted(names)


def _detect_task(text):
    try:
        numbers = text.astype(np.float64)
    except ValueError:
        return "classification"
    integral = np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers))
    distinct = len(np.unique(numbers))
    few = distinct <= MAX_AUTO_CLASSES and 2 * distinct <= len(numbers)
    return "classification" if integral and few else "regression"


def _target_missing(y_text, missing_values, name, target, lines):
    """Mask of rows whose target is missing (a missing marker or NaN in any spelling);
    they cannot be learned or scored from, so they are dropped with one warning."""
    nan_spelled = np.isin(np.char.lower(y_text), ["nan", "+nan", "-nan"])
    y_missing = np.isin(y_text, missing_values) | nan_spelled
    if y_missing.all():
        raise DataError(f"{name}: every value of the target column {target!r} is missing")
    if y_missing.any():
        warnings.warn(f"{name}: dropped {int(y_missing.sum())} row(s) whose target {target!r} is "
                      f"missing (first at line {lines[y_missing][0]})", stacklevel=3)
    return y_missing


def load_tabular(path, target, *, features=None, categorical=None, numeric=None, drop=None,
                 task="auto", impute_numeric="mean", impute_categorical="most_frequent",
                 fill_value=None, scaling="standard", log_target=False, splits=(0.8, 0.1, 0.1),
                 seed=0, missing_values=MISSING_VALUES, duplicates="keep", conflicts="keep",
                 outliers=None, select=None) -> Splits:
    """Read a CSV table, split it, and fit the preprocessing on the train split.

    Args:
        path: CSV file with a header row (comma-separated, UTF-8).
        target: the column to predict.
        features: the feature columns, in order (default: every column but the
            target and ``drop``).
        categorical / numeric: columns whose kind is declared; the others are
            numeric when every non-missing cell parses as a number.
        drop: columns to leave out (an ``Id``).
        task: 'regression', 'classification', or 'auto': classification when
            the target is not numeric, or integer-valued with at most
            ``MAX_AUTO_CLASSES`` distinct values and two rows per value on average.
        impute_numeric: 'mean', 'median', 'most_frequent' or 'constant'.
        impute_categorical: 'most_frequent' or 'constant'.
        fill_value: the 'constant' value (default 0 for numeric columns,
            'missing' for categorical ones).
        scaling: numeric features 'standard' (mean 0, std 1), 'minmax' (to
            [0, 1]), 'robust' (median 0, interquartile range 1; a column whose
            IQR is 0 is divided by its std) or 'none'; always with train
            statistics (after outlier handling).
        log_target: regression only, model ``log1p(target)``.
        splits: train/validation/test fractions (stratified for classification).
        seed: the split's seed.
        missing_values: cell texts read as missing; NaN in any spelling is
            missing too. Rows whose target is missing are dropped, with a warning.
            An infinity or a number beyond float32's range (``1e308``) in a
            numeric column or the target is a ``DataError`` naming the file, line
            and column, as is a column whose statistics overflow.
        duplicates: 'keep' or 'drop' the repeats of a row whose features and
            target are all equal (missing spellings count as equal), before
            splitting, so no copy lands on both sides of a split. Found ones are
            counted and warned about either way.
        conflicts: rows whose features are equal but whose targets differ:
            'keep' them (the default: in regression that is ordinary noise),
            'report' them (a warning), or 'drop' every one of them (the data
            cannot say which label is right). Counted in ``info`` either way.
        outliers: ``None``, or a dict ``{method: 'iqr' | 'zscore' | 'mad',
            action: 'clip' | 'drop', factor: float (None: the method's default,
            1.5, 3 or 3.5), columns: [...] (None: every numeric feature column;
            the target's name may be listed), target: bool}``. Bounds per
            column are fitted on the train split (``cleaning.outlier_bounds``);
            'drop' removes the train rows outside any column's bounds, 'clip'
            clips the train values. Val, test and every later input
            (``transform``) are never dropped: their feature values are clipped
            to the stored train bounds; val/test targets are left as they are.
            The target's bounds are in model units (after ``log1p``).
        select: ``None``, or a dict ``{variance_threshold: float, k: int,
            score: 'auto' | 'correlation' | 'mutual_info' | 'anova_f' |
            'chi2'}`` (``cleaning.select_features``) run on the encoded, scaled
            train features and the train targets: every feature (a one-hot
            indicator counts as one) with variance at most the threshold goes,
            then the ``k`` best by the score stay. The kept names are stored in
            the pipeline.

    Returns:
        ``Splits`` with float32 ``x_*`` of shape (N, n_features), ``y_*`` int64
        class indices or float32 standardised (and maybe log) targets, the
        fitted ``TabularPipeline``, and ``info``: 'path', 'target', 'task',
        'samples' (rows after duplicate handling), 'dropped_rows' (missing
        target), 'n_features', 'numeric', 'categorical', 'unseen_categories',
        and 'rows' ({train, val, test} counts), 'duplicates' ({found, dropped,
        conflicts}), 'outliers' ({column: {found, action, low, high}}, found in
        the train split), 'missing' ({column: missing cells in the file}),
        'class_balance' ({split: {class: n}}, classification only), 'features'
        (the model's feature names, after selection) and 'selected_out'
        ({name: why it was removed}).

    Example::

        data = load_tabular("train.csv", "SalePrice", drop=["Id"], log_target=True)
        prices = data.pipeline.inverse_target(model(data.x_test))  # in dollars
    """
    numeric_fill_value = _check_options(task, impute_numeric, impute_categorical, scaling,
                                        fill_value)
    _check_choice("duplicates", duplicates, DUPLICATES)
    _check_choice("conflicts", conflicts, CONFLICTS)
    outliers = _outlier_options(outliers)
    select = _select_options(select)
    missing_values = tuple(str(m) for m in missing_values)
    path = Path(path)
    rows = _read_training_rows(path, target, features=features, categorical=categorical,
                               numeric=numeric, drop=drop, missing_values=missing_values)
    rows, duplicate_counts = _drop_duplicates(rows, duplicates, conflicts)
    task, y, class_names = _target_values(rows, task, log_target)
    train, val, test = _split_rows(rows, y, splits, seed,
                                   stratify=y if task == "classification" else None)
    columns = _parse_columns(rows, categorical=categorical, numeric=numeric)
    train, y, bounds, outlier_counts = _handle_outliers(rows, columns, y, train, task,
                                                        log_target, outliers)
    columns = _fit_columns(rows, columns, train, impute_numeric=impute_numeric,
                           impute_categorical=impute_categorical,
                           numeric_fill_value=numeric_fill_value, fill_value=fill_value,
                           scaling=scaling, bounds=bounds)
    y, target_mean, target_std = _fit_target_scale(rows, y, train, task)

    numeric_columns = [c for c, k in zip(rows.features, columns.kinds) if k == "numeric"]
    settings = dict(
        numeric_fill=columns.numeric_fill, center=columns.center,
        scale=columns.scale, categorical_fill=columns.categorical_fill,
        categories=columns.categories, task=task, class_names=class_names, target=target,
        log_target=log_target, target_mean=target_mean, target_std=target_std,
        missing_values=missing_values,
        clip_low=[bounds.get(c, (-np.inf, np.inf))[0] for c in numeric_columns],
        clip_high=[bounds.get(c, (-np.inf, np.inf))[1] for c in numeric_columns],
        options={"impute_numeric": impute_numeric, "impute_categorical": impute_categorical,
                 "scaling": scaling, "duplicates": duplicates, "conflicts": conflicts,
                 "outliers": outliers, "select": select},
    )
    pipeline = TabularPipeline(rows.features, columns.kinds, **settings)
    # Val/test categories unseen in train are expected and counted, not warned about.
    x, unseen = pipeline._encode(columns.encoded, warn=False)
    selected_out: dict[str, str] = {}
    if select is not None:
        keep, selected_out = cleaning.select_features(
            x[train], y[train], pipeline.all_feature_names, task=task,
            variance_threshold=select["variance_threshold"], k=select["k"],
            score=select["score"])
        if len(keep) == 0:
            raise PipelineError(f"{path}: feature selection removed every feature "
                                f"(variance_threshold={select['variance_threshold']}); lower it")
        names = pipeline.all_feature_names
        pipeline = TabularPipeline(rows.features, columns.kinds,
                                   selected=[names[i] for i in keep], **settings)
        x = x[:, keep]
    info = {
        "path": str(path),
        "target": target,
        "task": task,
        "samples": int(len(y)),
        "dropped_rows": rows.dropped,
        "n_features": pipeline.input_shape[0],
        "numeric": pipeline._names("numeric"),
        "categorical": pipeline._names("categorical"),
        "unseen_categories": {column: values for column, values in unseen},
        "rows": {"train": int(len(train)), "val": int(len(val)), "test": int(len(test))},
        "duplicates": duplicate_counts,
        "outliers": outlier_counts,
        "missing": rows.missing,
        "features": pipeline.feature_names,
        "selected_out": selected_out,
    }
    if task == "classification":
        info["class_balance"] = {
            split: {name: int(n) for name, n in zip(
                class_names, np.bincount(y[part], minlength=len(class_names)))}
            for split, part in (("train", train), ("val", val), ("test", test))}
    return Splits(x[train], y[train], x[val], y[val], x[test], y[test], pipeline, info=info)


# load_tabular's steps: check the options, read the rows, split them, fit the
# columns and the target on the train rows.


def _check_options(task, impute_numeric, impute_categorical, scaling, fill_value):
    """Refuse an unknown option; returns the numeric 'constant' fill (or None)."""
    _check_choice("task", task, TASKS)
    _check_choice("impute_numeric", impute_numeric, NUMERIC_IMPUTE)
    _check_choice("impute_categorical", impute_categorical, CATEGORICAL_IMPUTE)
    _check_choice("scaling", scaling, SCALINGS)
    if impute_numeric == "constant" and fill_value is not None:
        try:
            return float(fill_value)
        except (TypeError, ValueError):
            raise ValueError(f"impute_numeric='constant' needs a numeric fill_value, "
                             f"got {fill_value!r}") from None
    return None


@dataclass
class _TrainingRows:
    """A training CSV as read: the columns' cells (rows without a target dropped),
    their file line numbers, the feature columns in order and the target's cells."""

    path: Path
    target: str
    table: dict[str, _CodedColumn]
    lines: np.ndarray
    features: list[str]
    y_text: np.ndarray
    missing_values: tuple[str, ...]
    dropped: int
    missing: dict[str, int] = field(default_factory=dict)  # missing cells per column, whole file


def _read_training_rows(path, target, *, features, categorical, numeric, drop,
                        missing_values) -> _TrainingRows:
    """Read the CSV, check the named columns exist and settle the feature list;
    rows whose target is missing cannot be learned from and are dropped (with a
    warning)."""
    header, table, lines = read_csv_coded(path)
    if target not in table:
        raise _unknown_column("target column", target, path, header)
    for name in [*(drop or []), *(features or []), *(categorical or []), *(numeric or [])]:
        if name not in table:
            raise _unknown_column("column", name, path, header)
    if features is None:
        features = [c for c in header if c != target and c not in set(drop or [])]
    else:
        features = [c for c in features if c not in set(drop or [])]
    if target in features:
        raise PipelineError(f"the target column {target!r} cannot also be a feature")
    if not features:
        raise PipelineError(f"{path}: no feature columns left besides the target {target!r}")
    both = set(categorical or []) & set(numeric or [])
    if both:
        raise PipelineError(f"columns declared both categorical and numeric: {sorted(both)}")

    y_text = table[target].text()
    y_missing = _target_missing(y_text, missing_values, path, target, lines)
    missing_cells = {c: _count_missing(table[c], missing_values) for c in [*features, target]}
    keep = ~y_missing
    if y_missing.any():
        table = {c: v.take(keep) for c, v in table.items()}
        lines, y_text = lines[keep], y_text[keep]
    return _TrainingRows(path, target, table, lines, features, y_text, missing_values,
                         int(y_missing.sum()), missing_cells)


def _count_missing(column: _CodedColumn, missing_values):
    return int(column.counts()[_missing_mask(column.values, missing_values)].sum())


def _missing_mask(text, missing_values):
    """Cells that are missing: a ``missing_values`` spelling, or NaN in any case."""
    mask = np.isin(text, missing_values)
    # Only cells of 3 or 4 characters ending in n or N can spell NaN: lowercasing
    # just those keeps np.char.lower (a Python call per cell) off whole columns,
    # 2-3 s of fitting Ames x60 (bench/bench_csv.py); str_len and endswith are ufuncs.
    length = np.char.str_len(text)
    maybe = (((length == 3) | (length == 4))
             & (np.char.endswith(text, "n") | np.char.endswith(text, "N")))
    short = np.flatnonzero(maybe)
    mask[short] |= np.isin(np.char.lower(text[short]), ["nan", "+nan", "-nan"])
    return mask


def _outlier_options(options):
    """``outliers`` as a complete dict (method, action, factor, columns, target), or None."""
    if options is None:
        return None
    options = dict(options)
    unknown = set(options) - {"method", "action", "factor", "columns", "target"}
    if unknown:
        raise ValueError(f"Invalid outliers option(s): {sorted(unknown)} (expected method, "
                         f"action, factor, columns, target)")
    full = {"method": "iqr", "action": "clip", "factor": None, "columns": None,
            "target": False, **options}
    _check_choice("outliers.method", full["method"], cleaning.OUTLIER_METHODS)
    _check_choice("outliers.action", full["action"], OUTLIER_ACTIONS)
    if full["factor"] is not None and not float(full["factor"]) > 0:
        raise ValueError(f"Invalid outliers.factor: {full['factor']!r} (must be above 0)")
    if full["columns"] is not None:
        full["columns"] = [str(c) for c in full["columns"]]
    full["target"] = bool(full["target"])
    return full


def _select_options(options):
    """``select`` as a complete dict (variance_threshold, k, score), or None."""
    if options is None:
        return None
    options = dict(options)
    unknown = set(options) - {"variance_threshold", "k", "score"}
    if unknown:
        raise ValueError(f"Invalid select option(s): {sorted(unknown)} (expected "
                         f"variance_threshold, k, score)")
    full = {"variance_threshold": None, "k": None, "score": "auto", **options}
    _check_choice("select.score", full["score"], cleaning.SCORES)
    if full["k"] is not None and not int(full["k"]) >= 1:
        raise ValueError(f"Invalid select.k: {full['k']!r} (must be at least 1)")
    if full["variance_threshold"] is not None and not float(full["variance_threshold"]) >= 0:
        raise ValueError(f"Invalid select.variance_threshold: {full['variance_threshold']!r} "
                         f"(must be at least 0)")
    return full


def _drop_duplicates(rows: _TrainingRows, duplicates, conflicts):
    """Rows without the repeats (``duplicates='drop'``) and conflicts
    (``conflicts='drop'``), before splitting; and the counts {found, dropped,
    conflicts}. Missing cells compare equal whatever their spelling."""
    features = [_duplicate_codes(rows.table[c], rows.missing_values) for c in rows.features]
    duplicate, conflict = cleaning.find_duplicates(features, rows.table[rows.target].codes)
    remove = np.zeros(len(rows.y_text), bool)
    if duplicates == "drop":
        remove |= duplicate
    if conflicts == "drop":
        remove |= conflict
    repeats_removed = duplicate if duplicates == "drop" else np.zeros_like(duplicate)
    counts = {"found": int(duplicate.sum()), "dropped": int(remove.sum()),
              "conflicts": int((conflict & ~repeats_removed).sum())}
    name = rows.path
    if counts["found"]:
        first = int(np.flatnonzero(duplicate)[0])
        what = ("dropped before splitting" if duplicates == "drop" else
                "kept: copies may land in both train and test (duplicates: drop removes them)")
        warnings.warn(f"{name}: {counts['found']} row(s) repeat an earlier row exactly (features "
                      f"and target; first at line {rows.lines[first]}); {what}", stacklevel=3)
    if counts["conflicts"] and conflicts != "keep":
        first = int(np.flatnonzero(conflict)[0])
        what = "dropped" if conflicts == "drop" else "kept (conflicts: drop removes them)"
        warnings.warn(f"{name}: {counts['conflicts']} row(s) share their features with a row "
                      f"whose target {rows.target!r} differs (first at line "
                      f"{rows.lines[first]}); {what}", stacklevel=3)
    if remove.any():
        keep = ~remove
        if not keep.any():
            raise PipelineError(f"{name}: no rows left after dropping duplicates and conflicts")
        table = {c: v.take(keep) for c, v in rows.table.items()}
        rows = _TrainingRows(rows.path, rows.target, table, rows.lines[keep], rows.features, rows.y_text[keep],
                             rows.missing_values, rows.dropped, rows.missing)
    return rows, counts


def _duplicate_codes(column: _CodedColumn, missing_values):
    """The column's codes with every missing spelling as one code (-1): rows are
    duplicates when their raw cells are equal or both missing."""
    per_value = np.arange(len(column.values), dtype=np.int32)
    per_value[_missing_mask(column.values, missing_values)] = -1
    return column.cells(per_value)


def _handle_outliers(rows: _TrainingRows, columns: _FittedColumns, y, train, task, log_target,
                     options):
    """(train rows, targets, {feature column: (low, high)}, counts): bounds fitted on
    the train split; ``drop`` removes the train rows outside them, ``clip`` clips
    the train targets here (features are clipped by the pipeline, everywhere)."""
    if options is None:
        return train, y, {}, {}
    numeric = [c for c, k in zip(rows.features, columns.kinds) if k == "numeric"]
    names = list(numeric) if options["columns"] is None else list(options["columns"])
    with_target = options["target"] or rows.target in names
    names = [c for c in names if c != rows.target]
    for column in names:
        if column not in rows.features:
            raise _unknown_column("outliers column", column, rows.path,
                                  [*rows.features, rows.target])
        if column not in numeric:
            raise PipelineError(f"outliers: column {column!r} is categorical; outlier rules "
                                f"apply to numeric columns")
    if with_target and task != "regression":
        raise PipelineError(f"outliers: the target {rows.target!r} is a class label "
                            f"({task}); outlier rules apply to a regression target only")
    method, factor, action = options["method"], options["factor"], options["action"]
    bounds, counts, out = {}, {}, np.zeros(len(train), bool)
    checked = [(c, columns.encoded[c]) for c in names] + ([(rows.target, y)] if with_target
                                                          else [])
    for column, values in checked:
        low, high = cleaning.outlier_bounds(values[train], method, factor)
        found = cleaning.outside(values[train], low, high)
        out |= found
        shown = (np.expm1 if log_target and column == rows.target else float)
        counts[column] = {"found": int(found.sum()), "action": action,
                          "low": float(shown(low)) if np.isfinite(low) else None,
                          "high": float(shown(high)) if np.isfinite(high) else None}
        if column != rows.target:
            bounds[column] = (low, high)
        elif action == "clip":
            y = y.copy()
            y[train] = np.clip(y[train], low, high)
    if action == "drop":
        if out.all():
            raise PipelineError(f"{rows.path}: outliers: every train row is outside the "
                                f"bounds; raise outliers.factor")
        train = train[~out]
    found = {c: n["found"] for c, n in counts.items() if n["found"]}
    if found:
        listed = ", ".join(f"{c} {n}" for c, n in found.items())
        what = (f"dropped {int(out.sum())} train row(s)" if action == "drop" else
                "clipped them to the bounds")
        warnings.warn(f"{rows.path}: outliers ({method}) in the train split: {listed}; {what}; "
                      f"val, test and predict inputs are clipped to the train bounds",
                      stacklevel=3)
    return train, y, bounds, counts


def _target_values(rows: _TrainingRows, task, log_target):
    """(task, target values, class names): the task detected when 'auto'; class
    indices into the sorted class names, or float64 regression values (log1p-ed
    with ``log_target``), not yet scaled."""
    y_text, target, path = rows.y_text, rows.target, rows.path
    if task == "auto":
        task = _detect_task(y_text)
    if task == "classification":
        if log_target:
            raise ValueError("log_target applies to regression; this target is classification")
        class_names = _class_order(np.unique(y_text).tolist())
        lookup = {name: i for i, name in enumerate(class_names)}
        return task, np.array([lookup[v] for v in y_text.tolist()], dtype=np.int64), class_names
    coded = rows.table[target]
    y = _parse_coded_numbers(coded, np.zeros(len(coded.values), bool), target, rows.lines,
                             str(path))
    if log_target:
        _check_log(y, target)
        y = np.log1p(y)
    return task, y, None


def _split_rows(rows: _TrainingRows, y, splits, seed, stratify):
    """(train, val, test) row indices, seeded (and stratified for classification);
    an empty train split is an error."""
    parts = list(split_indices(len(y), splits, seed=seed, stratify=stratify))
    parts += [np.empty(0, np.int64)] * (3 - len(parts))
    train, val, test = parts[:3]
    if len(train) == 0:
        raise PipelineError(f"{rows.path}: the train split is empty ({len(y)} rows, "
                            f"splits={splits})")
    return train, val, test


@dataclass
class _FittedColumns:
    """Each feature column's kind and train statistics, and its parsed cells for
    ``TabularPipeline._encode`` (float values, or (text, missing) pairs)."""

    kinds: list[str] = field(default_factory=list)
    encoded: dict[str, Any] = field(default_factory=dict)
    numeric_fill: list[float] = field(default_factory=list)
    center: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    categorical_fill: list[str] = field(default_factory=list)
    categories: list[list[str]] = field(default_factory=list)


def _parse_columns(rows: _TrainingRows, *, categorical, numeric) -> _FittedColumns:
    """Each feature column's kind and parsed cells (no statistics yet)."""
    fitted = _FittedColumns()
    declared_numeric, declared_categorical = set(numeric or []), set(categorical or [])
    for column in rows.features:
        coded = rows.table[column]
        missing = np.isin(coded.values, rows.missing_values)  # per distinct value
        # a column is numeric when every present cell parses as a number; one
        # that does then must hold finite numbers (inf or 1e308 is an error,
        # not a category and not a missing value)
        if column not in declared_categorical and (
                column in declared_numeric
                or _first_non_number(coded.values, missing | ~coded.used()) is None):
            fitted.kinds.append("numeric")
            fitted.encoded[column] = _parse_coded_numbers(coded, missing, column, rows.lines,
                                                          str(rows.path))
        else:
            fitted.kinds.append("categorical")
            fitted.encoded[column] = (coded, missing)
    return fitted


def _parse_coded_numbers(coded: _CodedColumn, missing, column, lines, where):
    """``_parse_numbers`` of a coded column (``missing`` per distinct value): each
    distinct text is parsed once. Anything that cannot be used - a non-number, an
    infinity, a number beyond float32's range - sends the column through
    ``_parse_numbers`` cell by cell, whose error names the first such cell's line."""
    skip = missing | ~coded.used()
    per_value = np.full(len(coded.values), np.nan)
    try:
        per_value[~skip] = coded.values[~skip].astype(np.float64)
    except ValueError:
        per_value = None
    if per_value is None or _not_finite(per_value).any():
        return _parse_numbers(coded.text(), coded.cells(missing), column, lines, where)
    return coded.cells(per_value)


def _fit_columns(rows: _TrainingRows, fitted: _FittedColumns, train, *, impute_numeric,
                 impute_categorical, numeric_fill_value, fill_value, scaling,
                 bounds=None) -> _FittedColumns:
    """Train statistics of the parsed columns, one vectorised pass per column; a
    numeric column with ``bounds`` ({column: (low, high)}) is clipped to them first."""
    bounds = bounds or {}
    for column, kind in zip(rows.features, fitted.kinds):
        if kind == "numeric":
            values = fitted.encoded[column][train]
            if column in bounds:
                values = np.clip(values, *bounds[column])
            fill, c, s = _numeric_stats(values, impute_numeric, numeric_fill_value, scaling)
            if not np.isfinite([fill, c, s]).all():
                raise DataError(f"{rows.path}: column {column!r}: its values overflow the "
                                f"{scaling} scaler's statistics (fill {fill:g}, center {c:g}, "
                                f"scale {s:g}); rescale the column")
            fitted.numeric_fill.append(fill)
            fitted.center.append(c)
            fitted.scale.append(s)
        else:
            fill, categories = _category_stats(*fitted.encoded[column], train,
                                               impute_categorical, fill_value)
            fitted.categorical_fill.append(fill)
            fitted.categories.append(categories)
    return fitted


def _category_stats(coded: _CodedColumn, missing, train, impute_categorical, fill_value):
    """(fill, sorted categories) of a categorical column's train cells (``missing`` per
    distinct value): the fill is the most frequent present text (ties go to the
    smallest, as ``_most_frequent``) unless imputing a constant; the categories are
    the present texts, plus the fill when a train cell is missing."""
    codes = coded.codes[train]
    missing_rows = missing[codes]
    counts = np.bincount(codes[~missing_rows], minlength=len(coded.values))
    if impute_categorical == "constant" or counts.sum() == 0:
        fill = _CATEGORICAL_FILL if fill_value is None else str(fill_value)
    else:
        fill = str(coded.values[np.argmax(counts)])  # values are sorted
    categories = set(coded.values[counts > 0].tolist())
    if missing_rows.any():
        categories.add(fill)
    return fill, sorted(categories)


def _fit_target_scale(rows: _TrainingRows, y, train, task):
    """(targets in model units, mean, std): regression targets standardised with
    the train mean and std; class indices unchanged (mean 0, std 1)."""
    if task != "regression":
        return y, 0.0, 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        target_mean, target_std = float(y[train].mean()), float(y[train].std())
    if not np.isfinite([target_mean, target_std]).all():
        raise DataError(f"{rows.path}: column {rows.target!r} (the target): its values overflow "
                        f"the mean and standard deviation (mean {target_mean:g}, std "
                        f"{target_std:g}); rescale the target or set log_target")
    target_std = target_std if target_std > 0 else 1.0
    return ((y - target_mean) / target_std).astype(np.float32), target_mean, target_std
