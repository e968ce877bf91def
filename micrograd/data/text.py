"""Sentence classification: delimited text files -> bag-of-words / TF-IDF vectors.

The sentiment files (``sentence<TAB>label``, one per line) are read, split
(stratified) into train/validation/test, and a vocabulary is learned from the
training sentences only. Each sentence becomes one float32 row of length
``vocab_size``:

- ``bow``: token counts,
- ``binary``: 1 where a token occurs, else 0,
- ``tfidf``: counts times smooth idf, ``ln((1 + n) / (1 + df)) + 1`` (as
  scikit-learn's ``TfidfVectorizer``), each row scaled to unit L2 norm.

Tokenisation is one regular expression on the (lowercased) sentence: words are
runs of letters/digits, with inner apostrophes kept (``don't`` stays one
token, which matters for sentiment), and every other non-space character is a
token of its own (``great!`` -> ``great``, ``!``). Keeping punctuation scored
as well as or better than dropping it on the amazon + yelp sentences, and ``!``
carries sentiment.
"""
from __future__ import annotations

import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from .kinds import DataKind, register_kind
from .pipeline import DataError, Pipeline, PipelineError, Splits
from .sparse import CSRMatrix
from .splits import split_indices

_TOKEN = re.compile(r"\w+(?:'\w+)*|[^\w\s]")
_VECTORIZERS = ("bow", "binary", "tfidf", "ids")
#: Token ids of the "ids" vectorizer: 0 pads a short sentence, 1 stands for a word
#: outside the vocabulary, and vocabulary word i is i + 2.
PAD, UNKNOWN = 0, 1


class TextFormatError(DataError):
    """A text dataset file that cannot be used: missing, unreadable, not UTF-8, empty, or
    with a line that is not ``sentence<delimiter>label``. The message names the file
    (and the line). A ``DataError``: the CLI exits 1."""


class TextFileMissing(TextFormatError, FileNotFoundError):
    """A text data file that does not exist (also a ``FileNotFoundError``, as before)."""


def tokenize(sentence: str, lowercase: bool = True) -> list[str]:
    """Split a sentence into word and punctuation tokens.

    Example::

        >>> tokenize("Don't buy it... Awful!")
        ["don't", 'buy', 'it', '.', '.', '.', 'awful', '!']
    """
    if lowercase:
        sentence = sentence.lower()
    return _TOKEN.findall(sentence)


def _ngrams(tokens: list[str], ngram_range: tuple[int, int]) -> list[str]:
    """Word n-grams for every n in ``ngram_range`` (inclusive), joined by single spaces."""
    low, high = ngram_range
    if (low, high) == (1, 1):
        return tokens
    grams = []
    for n in range(low, high + 1):
        grams.extend(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    return grams


def _check_ngram_range(ngram_range) -> tuple[int, int]:
    try:
        low, high = (int(v) for v in ngram_range)
    except (TypeError, ValueError):
        raise ValueError(f"ngram_range must be two integers (min_n, max_n), got {ngram_range!r}") from None
    if not 1 <= low <= high:
        raise ValueError(f"ngram_range must satisfy 1 <= min_n <= max_n, got {ngram_range!r}")
    return low, high


def build_vocabulary(token_lists, min_freq: int = 1, max_vocab: int | None = None) -> list[str]:
    """Tokens seen at least ``min_freq`` times, most frequent first, ties alphabetical.

    ``max_vocab`` keeps only that many of the most frequent tokens.
    """
    counts = Counter()
    for tokens in token_lists:
        counts.update(tokens)
    ranked = sorted((tok for tok, c in counts.items() if c >= min_freq),
                    key=lambda tok: (-counts[tok], tok))
    return ranked if max_vocab is None else ranked[:max_vocab]


class TextPipeline(Pipeline):
    """Sentences in, one bag-of-words / binary / TF-IDF row per sentence out, or the
    sentence's token ids for an embedding model.

    ``transform`` takes a string or a list of strings. The ``bow``, ``binary``
    and ``tfidf`` vectorizers return float32 ``(N, vocab_size)``; tokens not in
    the vocabulary are ignored (a sentence of unknown words is a row of zeros).
    ``ids`` returns int64 ``(N, max_length)``: word ``i`` of the vocabulary is
    ``i + 2``, an unknown word ``UNKNOWN`` (1), and ``PAD`` (0) fills the rest
    of a short sentence (a long one is cut); ``num_tokens`` is the size an
    ``Embedding`` over them needs (``padding_idx=0``).

    Example::

        >>> p = TextPipeline.fit([["good", "film"], ["bad", "film"]], vectorizer="bow")
        >>> p.vocabulary
        ['film', 'bad', 'good']
        >>> p.transform("Good good film, unseen").tolist()
        [[1.0, 0.0, 2.0]]
    """

    kind = "text"

    def __init__(self, vocabulary, idf=None, *, vectorizer="tfidf", lowercase=True,
                 ngram_range=(1, 1), class_names=None, max_length=None):
        if vectorizer not in _VECTORIZERS:
            raise ValueError(f"unknown vectorizer {vectorizer!r}; choose one of {list(_VECTORIZERS)}")
        self.vocabulary = [str(t) for t in vocabulary]
        self.index = {tok: i for i, tok in enumerate(self.vocabulary)}
        self.idf = (np.ones(len(self.vocabulary)) if idf is None
                    else np.asarray(idf, dtype=np.float64))
        if self.idf.shape != (len(self.vocabulary),):
            raise PipelineError(
                f"idf has shape {self.idf.shape} for a vocabulary of {len(self.vocabulary)} tokens"
            )
        self.vectorizer = vectorizer
        self.lowercase = bool(lowercase)
        self.ngram_range = _check_ngram_range(ngram_range)
        self.task = "classification"
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        if vectorizer == "ids":
            if not isinstance(max_length, int) or max_length < 1:
                raise ValueError(f"the ids vectorizer needs max_length >= 1, got {max_length!r}")
            self.max_length = max_length
            self.input_shape = (max_length,)
        else:
            self.max_length = None
            self.input_shape = (len(self.vocabulary),)

    @property
    def num_tokens(self):
        """How many token ids the ``ids`` vectorizer gives (the vocabulary, PAD and
        UNKNOWN): an embedding's ``num_embeddings``; None for the other vectorizers."""
        return len(self.vocabulary) + 2 if self.vectorizer == "ids" else None

    @classmethod
    def fit(cls, token_lists, *, vectorizer="tfidf", min_freq=1, max_vocab=None,
            lowercase=True, ngram_range=(1, 1), class_names=None,
            max_length=None) -> "TextPipeline":
        """Learn vocabulary and idf from the training sentences' tokens (n-grams already
        formed); the ids vectorizer's ``max_length`` defaults to the longest sentence."""
        vocabulary = build_vocabulary(token_lists, min_freq, max_vocab)
        index = {tok: i for i, tok in enumerate(vocabulary)}
        df = np.zeros(len(vocabulary))
        for tokens in token_lists:
            ids = [index[t] for t in set(tokens) if t in index]
            df[ids] += 1
        n = len(token_lists)
        idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
        if vectorizer == "ids" and max_length is None:
            max_length = max([len(t) for t in token_lists] + [1])
        return cls(vocabulary, idf, vectorizer=vectorizer, lowercase=lowercase,
                   ngram_range=ngram_range, class_names=class_names, max_length=max_length)

    def tokens(self, sentence: str) -> list[str]:
        """The sentence's tokens and n-grams, as the vocabulary counts them."""
        return _ngrams(tokenize(sentence, self.lowercase), self.ngram_range)

    def vectorize(self, token_lists, sparse=False):
        """Already tokenised sentences -> float32 (N, vocab_size), or int64 (N, max_length)
        token ids for the ids vectorizer.

        ``sparse=True`` gives the float32 rows as a ``CSRMatrix`` of their nonzero
        cells (the same values; the ids vectorizer's array stays dense): what
        ``load_text`` keeps, as a dense matrix is N * vocab_size * 4 bytes."""
        if self.vectorizer == "ids":
            return self._ids(token_lists)
        rows, cols = [], []
        for r, tokens in enumerate(token_lists):
            ids = [self.index[t] for t in tokens if t in self.index]
            rows.extend([r] * len(ids))
            cols.extend(ids)
        n, v = len(token_lists), len(self.vocabulary)
        # Work on the nonzero (row, col) cells only, then scatter them into the
        # dense matrix once: cost grows with the number of tokens, not N * vocab.
        flat = np.asarray(rows, dtype=np.int64) * v + np.asarray(cols, dtype=np.int64)
        cells, counts = np.unique(flat, return_counts=True)
        values = counts.astype(np.float64)
        if self.vectorizer == "binary":
            values[:] = 1.0
        elif self.vectorizer == "tfidf":
            values *= self.idf[cells % v]
            norms = np.sqrt(np.bincount(cells // v, weights=values**2, minlength=n))
            values /= norms[cells // v]
        if sparse:
            # cells are sorted by row, then column: already CSR order
            return CSRMatrix.from_cells(cells // v, cells % v, values, (n, v))
        x = np.zeros((n, v), dtype=np.float32)
        x.reshape(-1)[cells] = values
        return x

    def _ids(self, token_lists) -> np.ndarray:
        ids = np.full((len(token_lists), self.max_length), PAD, dtype=np.int64)
        for r, tokens in enumerate(token_lists):
            row = [self.index.get(t, UNKNOWN - 2) + 2 for t in tokens[:self.max_length]]
            ids[r, :len(row)] = row
        return ids

    def transform(self, raw) -> np.ndarray:
        if isinstance(raw, str):
            raw = [raw]
        try:
            sentences = list(raw)
        except TypeError:
            raise PipelineError(f"expected a sentence or a list of sentences, got {raw!r}") from None
        for s in sentences:
            if not isinstance(s, str):
                raise PipelineError(f"expected a sentence (str), got {s!r}")
        return self.vectorize([self.tokens(s) for s in sentences])

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {
            "vocabulary": self.vocabulary,
            "vectorizer": self.vectorizer,
            "lowercase": self.lowercase,
            "ngram_range": list(self.ngram_range),
            "task": self.task,
            "class_names": self.class_names,
            "input_shape": list(self.input_shape),
            "max_length": self.max_length,
        }
        return meta, {"idf": self.idf.copy()}

    @classmethod
    def from_state(cls, meta, arrays) -> "TextPipeline":
        return cls(meta["vocabulary"], arrays["idf"], vectorizer=meta["vectorizer"],
                   lowercase=meta["lowercase"], ngram_range=tuple(meta["ngram_range"]),
                   class_names=meta.get("class_names"), max_length=meta.get("max_length"))


@register_kind
class TextKind(DataKind):
    """Labelled sentences: the config's ``type: text``.

    ``predict --input`` takes a sentence, ``predict --file`` one sentence per
    line; ``eval --data`` reads ``sentence<delimiter>label`` lines with the
    training config's delimiter and header setting.

    The vectorizers give float32 rows of length ``vocab_size``, or, with
    ``vectorizer: ids``, int64 token ids ``(N, max_length)`` for an embedding
    model; nothing between the pipeline and the model casts them.
    """

    name = "text"
    pipeline_class = TextPipeline

    @classmethod
    def from_config(cls, section) -> Splits:
        return load_text(
            section.path, delimiter=section.delimiter, has_header=section.has_header,
            lowercase=section.lowercase, min_freq=section.min_freq,
            max_vocab=section.max_vocab, vectorizer=section.vectorizer,
            max_length=section.max_length, ngram_range=tuple(section.ngram_range),
            skip_bad_lines=section.skip_bad_lines, duplicates=section.duplicates,
            conflicts=section.conflicts, splits=section.splits.fractions(),
            seed=section.seed,
        )

    def expects(self) -> str:
        return "a sentence"

    def parse(self, text: str) -> str:
        return text

    def read_labelled(self, path):
        delimiter = getattr(self.section, "delimiter", "\t")
        has_header = getattr(self.section, "has_header", False)
        skip_bad_lines = getattr(self.section, "skip_bad_lines", False)
        records = _read_lines([path], delimiter, has_header, 0, 1)
        names = self.pipeline.class_names
        bad = [r for r in records if r[4] is not None or r[3] not in names]
        if bad and not skip_bad_lines:
            p, line, _, label, problem = bad[0]
            raise DataError(f"{p}, line {line}: expected sentence<TAB>label with a label "
                            f"in {names} ({problem or f'label {label!r}'})")
        good = [r for r in records if r not in bad]
        p = self.pipeline  # sparse, as training kept it: a large eval file stays small
        return (p.vectorize([p.tokens(r[2]) for r in good], sparse=True),
                np.array([names.index(r[3]) for r in good], dtype=np.int64))


def _layout(delimiter, text_column, label_column) -> str:
    """The expected line shape, e.g. ``sentence<TAB>label``."""
    name = "<TAB>" if delimiter == "\t" else delimiter
    fields = ["..."] * (max(text_column, label_column) + 1)
    fields[text_column], fields[label_column] = "sentence", "label"
    return name.join(fields)


def _is_int(s: str) -> bool:
    try:
        int(s)
    except ValueError:
        return False
    return True


def _lines(text: str) -> list[str]:
    """The text's lines, ended by \\n, \\r\\n or \\r only: unlike str.splitlines, a form
    feed, vertical tab or U+2028 inside a sentence does not end its line."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _read_text(path: Path, layout: str) -> str:
    """The file's text; a TextFormatError naming the file (and line) when it is
    missing, a directory, unreadable or not UTF-8."""
    expected = f"expected a text file of '{layout}' lines"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TextFileMissing(f"text data file not found: {path} ({expected})") from None
    except IsADirectoryError:
        raise TextFormatError(f"{path} is a directory, not a text data file ({expected})"
                              ) from None
    except OSError as exc:
        reason = exc.strerror or exc
        raise TextFormatError(f"{path}: cannot be read ({reason}; {expected})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = _lines(raw[:exc.start].decode("utf-8", "replace"))
        lineno, column = len(before), len(before[-1]) + 1
        raise TextFormatError(
            f"{path}, line {lineno}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
            f"{column}: {exc.reason}); save the file as UTF-8"
        ) from None


def _read_lines(paths, delimiter, has_header, text_column, label_column):
    """Every non-blank line as (path, lineno, sentence, label, problem); problem is None if fine.

    Raises TextFormatError naming the file when one is missing, unreadable, not
    UTF-8 (with the line) or holds no lines of data.
    """
    records = []
    need = max(text_column, label_column) + 1
    layout = _layout(delimiter, text_column, label_column)
    for path in paths:
        path = Path(path)
        lines = _lines(_read_text(path, layout))
        body = lines[1:] if has_header else lines
        if not any(line.strip() for line in body):
            header_only = has_header and lines and lines[0].strip()
            what = "has a header line but no data lines" if header_only else "is empty"
            raise TextFormatError(f"{path} {what} (expected lines of '{layout}')")
        for lineno, line in enumerate(lines, start=1):
            if (has_header and lineno == 1) or not line.strip():
                continue
            fields = line.split(delimiter)
            if len(fields) < need:
                records.append((path, lineno, None, None,
                                f"no label: {len(fields)} field(s), {need} expected"))
                continue
            label = fields[label_column].strip()
            sentence = fields[text_column].strip()
            problem = "empty label" if not label else None
            records.append((path, lineno, sentence, label, problem))
    return records


def _check_labels(records, labels):
    """Mark records whose label is not allowed: outside ``labels``, or not an integer
    when ``labels`` is None and most labels are integers."""
    if labels is not None:
        allowed = {str(v) for v in labels}
        is_valid = allowed.__contains__
        expected = f"one of {sorted(allowed)}"
    else:
        seen = [label for _, _, _, label, problem in records if problem is None]
        if sum(map(_is_int, seen)) * 2 <= len(seen):
            return records
        is_valid = _is_int
        expected = "an integer"
    checked = []
    for path, lineno, sentence, label, problem in records:
        if problem is None and not is_valid(label):
            problem = f"label {label!r} is not {expected}"
        checked.append((path, lineno, sentence, label, problem))
    return checked


_DUPLICATES = ("keep", "drop")
_CONFLICTS = ("keep", "report", "drop")


def _where(records) -> str:
    """``file:line`` of the first few records, for a warning."""
    more = ", ..." if len(records) > 5 else ""
    return ", ".join(f"{Path(p).name}:{n}" for p, n, *_ in records[:5]) + more


def deduplicate(records, *, lowercase=True, duplicates="keep", conflicts="report"):
    """Repeated sentences among ``(path, lineno, sentence, label, problem)`` records.

    Two sentences are the same when the tokenizer sees the same tokens (case
    folded when ``lowercase``; spacing ignored): they become the same row for
    the model. A line repeating an earlier line's sentence and label is a
    duplicate (``duplicates: drop`` keeps the first, ``keep`` all); lines whose sentence also
    occurs under another label are conflicts (``conflicts: drop`` removes all
    of them, since the data cannot say which label is right; ``report`` keeps
    them with a warning; ``keep`` silently). The counts are those of the CSV
    reader's ``duplicates``/``conflicts`` options.

    Returns the kept records, in order, and the counts ``{"found", "dropped",
    "conflicts"}``: duplicate lines found, lines dropped (duplicates and
    conflicts), conflicting lines (those not already dropped as duplicates).
    """
    if duplicates not in _DUPLICATES:
        raise ValueError(f"duplicates must be one of {list(_DUPLICATES)}, got {duplicates!r}")
    if conflicts not in _CONFLICTS:
        raise ValueError(f"conflicts must be one of {list(_CONFLICTS)}, got {conflicts!r}")
    keys = [tuple(tokenize(r[2], lowercase)) for r in records]
    labels_of: dict[tuple, set] = {}
    for key, record in zip(keys, records):
        labels_of.setdefault(key, set()).add(record[3])
    seen, kept, repeats, conflicting = set(), [], [], []
    for key, record in zip(keys, records):
        repeat = (key, record[3]) in seen
        seen.add((key, record[3]))
        if repeat:
            repeats.append(record)
            if duplicates == "drop":
                continue
        if len(labels_of[key]) > 1:
            conflicting.append(record)
            if conflicts == "drop":
                continue
        kept.append(record)
    counts = {"found": len(repeats), "dropped": len(records) - len(kept),
              "conflicts": len(conflicting)}
    if repeats:
        what = ("dropped before splitting" if duplicates == "drop" else
                "kept: copies may land in both train and test (duplicates: drop removes them)")
        warnings.warn(f"{len(repeats)} line(s) repeat an earlier sentence and label (at "
                      f"{_where(repeats)}); {what}", stacklevel=3)
    if conflicting and conflicts != "keep":
        what = "dropped" if conflicts == "drop" else "kept (conflicts: drop removes them)"
        warnings.warn(f"{len(conflicting)} line(s) hold a sentence that also occurs with another "
                      f"label (at {_where(conflicting)}); {what}", stacklevel=3)
    return kept, counts


def load_text(paths, *, delimiter="\t", has_header=False, text_column=0, label_column=1,
              labels=None, lowercase=True, min_freq=1, max_vocab=None, vectorizer="tfidf",
              max_length=None, ngram_range=(1, 1), skip_bad_lines=False,
              duplicates="keep", conflicts="report",
              splits=(0.8, 0.1, 0.1), seed=0) -> Splits:
    """Read labelled sentences, drop repeats, split them (stratified) and vectorise them.

    Args:
        paths: a file or a list of files; their lines are concatenated in order.
        delimiter: separates the fields of a line (tab by default).
        has_header: skip the first line of every file.
        text_column, label_column: 0-based field positions of sentence and label.
        labels: the allowed label values. By default, when most labels are
            integers, a label that is not an integer is malformed (a sentence
            holding a stray delimiter shifts a word into the label column).
        lowercase: lowercase sentences before tokenising.
        min_freq: keep tokens seen at least this often in the training split.
        max_vocab: keep at most this many tokens (most frequent, ties alphabetical).
        vectorizer: 'tfidf' (default), 'bow' (counts), 'binary', or 'ids' (int64
            token ids, padded or cut to ``max_length``: by default the longest
            training sentence), for an embedding model.
        ngram_range: (min_n, max_n) word n-grams, e.g. (1, 2) adds bigrams.
        skip_bad_lines: skip malformed lines with a warning instead of raising.
        duplicates: 'keep' (default, with a warning) or 'drop' lines whose
            sentence (as the tokenizer sees it) and label repeat an earlier
            line. Dropped before splitting, so no sentence is in two splits.
        conflicts: a sentence under different labels: 'report' (default: keep
            its lines, warn), 'drop' (remove all its lines) or 'keep' (silently).
            See ``deduplicate``.
        splits: train/validation/test fractions.
        seed: the same seed gives the same split.

    Returns:
        ``Splits`` with float32 ``x`` of shape (N, vocab_size), kept as a
        ``CSRMatrix`` (int64 (N, max_length) token ids for ``ids``), int64 ``y``
        indexing ``pipeline.class_names`` (sorted labels; numerically when all
        are integers) and ``info`` with 'samples' (after dropping repeats),
        'vocab_size', 'ngram_range', 'files', 'skipped_lines', 'duplicates'
        ({'found', 'dropped', 'conflicts'}), 'rows' and 'class_balance' per
        split, and 'features' (the vocabulary's size, first tokens and n-gram
        range), as ``micrograd.data.profile`` reads them.

    Raises:
        TextFormatError: (a ``DataError``) a line without a label (or an empty /
            unexpected one), naming the file and 1-based line number, unless
            ``skip_bad_lines``; a file that is missing (``TextFileMissing``, also
            a ``FileNotFoundError``), a directory, unreadable, not UTF-8 or
            empty; or no usable line at all.

    Example::

        >>> data = load_text("amazon_cells_labelled.txt")  # doctest: +SKIP
        >>> data.x_train.shape, data.pipeline.class_names  # doctest: +SKIP
        ((800, 1636), ['0', '1'])
    """
    if vectorizer not in _VECTORIZERS:
        raise ValueError(f"unknown vectorizer {vectorizer!r}; choose one of {list(_VECTORIZERS)}")
    if min_freq < 1:
        raise ValueError(f"min_freq must be at least 1, got {min_freq}")
    if max_vocab is not None and max_vocab < 1:
        raise ValueError(f"max_vocab must be at least 1 or None, got {max_vocab}")
    if text_column == label_column or min(text_column, label_column) < 0:
        raise ValueError(f"text_column ({text_column}) and label_column ({label_column}) "
                         "must be different non-negative field positions")
    ngram_range = _check_ngram_range(ngram_range)
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not paths:
        raise ValueError("no text files given")

    records = _read_lines(paths, delimiter, has_header, text_column, label_column)
    records = _check_labels(records, labels)

    layout = _layout(delimiter, text_column, label_column)
    bad = [r for r in records if r[4] is not None]
    if bad and not skip_bad_lines:
        path, lineno, _, _, problem = bad[0]
        raise TextFormatError(
            f"{path}, line {lineno}: expected '{layout}' ({problem}); a sentence broken across "
            "lines or a missing label? Fix the file or pass skip_bad_lines=True"
        )
    good = [r for r in records if r[4] is None]
    if not good:
        path, lineno, _, _, problem = bad[0]
        raise TextFormatError(
            f"no labelled sentences in {', '.join(map(str, paths))}: all {len(bad)} line(s) are "
            f"malformed, the first at {path}, line {lineno} ({problem}); expected '{layout}'"
        )
    if bad:
        where = ", ".join(f"{p.name}:{n}" for p, n, *_ in bad[:5])
        more = ", ..." if len(bad) > 5 else ""
        warnings.warn(f"skipped {len(bad)} malformed line(s) not of the form '{layout}' "
                      f"(at {where}{more})", stacklevel=2)
    good, repeats = deduplicate(good, lowercase=lowercase, duplicates=duplicates,
                                conflicts=conflicts)
    if not good:
        raise TextFormatError(f"no sentences left in {', '.join(map(str, paths))} after "
                              f"dropping {repeats['dropped']} repeated or conflicting line(s)")

    sentences = [r[2] for r in good]
    raw_labels = [r[3] for r in good]
    unique = set(raw_labels)
    numeric = all(map(_is_int, unique))
    class_names = sorted(unique, key=(lambda s: (int(s), s)) if numeric else None)
    position = {name: i for i, name in enumerate(class_names)}
    y = np.array([position[v] for v in raw_labels], dtype=np.int64)

    parts = split_indices(len(sentences), splits, seed=seed, stratify=y)
    while len(parts) < 3:
        parts.append(np.empty(0, dtype=np.int64))
    token_lists = [_ngrams(tokenize(s, lowercase), ngram_range) for s in sentences]
    train = parts[0]
    pipeline = TextPipeline.fit([token_lists[i] for i in train], vectorizer=vectorizer,
                                min_freq=min_freq, max_vocab=max_vocab, lowercase=lowercase,
                                ngram_range=ngram_range, class_names=class_names,
                                max_length=max_length)
    xs = [pipeline.vectorize([token_lists[i] for i in idx], sparse=True) for idx in parts[:3]]
    ys = [y[idx] for idx in parts[:3]]
    names = ("train", "val", "test")
    info = {
        "samples": len(sentences),
        "vocab_size": len(pipeline.vocabulary),
        "ngram_range": list(ngram_range),
        "files": [str(p) for p in paths],
        "skipped_lines": len(bad),
        "duplicates": repeats,
        "rows": {name: len(idx) for name, idx in zip(names, parts)},
        "class_balance": {name: dict(zip(class_names, np.bincount(
            part, minlength=len(class_names)).tolist())) for name, part in zip(names, ys)},
        "features": {"count": len(pipeline.vocabulary), "sample": pipeline.vocabulary[:10],
                     "ngram_range": list(ngram_range)},
    }
    return Splits(xs[0], ys[0], xs[1], ys[1], xs[2], ys[2], pipeline, info=info)
