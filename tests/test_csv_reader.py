"""The fast CSV reader (pyarrow, the ``fast`` extra) against the stdlib reader: the same
header, cells, dtypes and line numbers on generated files, or no answer at all (the
stdlib reader then reads the file), and the same errors through read_csv_columns."""
import contextlib
import csv
import io
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from micrograd.data import tabular
from micrograd.data.pipeline import DataError
from micrograd.data.tabular import _read_csv_fast, _read_csv_stdlib, read_csv_columns

try:
    import pyarrow.csv  # noqa: F401
except ImportError:
    HAVE_PYARROW = False
else:
    HAVE_PYARROW = True
# The comparisons need the fast reader; the fallback and helper tests run without it.
needs_pyarrow = pytest.mark.skipif(not HAVE_PYARROW, reason="pyarrow (the fast extra) "
                                   "is not installed: pip install 'micrograd-trainer[fast]'")


def same(fast, slow):
    header, columns, lines = fast
    assert header == slow[0]
    np.testing.assert_array_equal(lines, slow[2])
    assert lines.dtype.kind == slow[2].dtype.kind == "i"
    assert list(columns) == list(slow[1])
    for name in header:
        assert columns[name].dtype == slow[1][name].dtype, name
        assert columns[name].tolist() == slow[1][name].tolist(), name


def stdlib_or_error(text):
    try:
        return _read_csv_stdlib("f.csv", text)
    except DataError as exc:
        return exc


# cells: ASCII with the characters CSV cares about, spaces, and some non-ASCII
CELL = st.text(alphabet=st.sampled_from(list("ab1.-, \"'\t") + ["é", "日", "\u00a0", "x"]),
               max_size=8)
NAME = st.text(alphabet="abcXYZ_ 1", min_size=1, max_size=6)


@st.composite
def tables(draw, multiline=False):
    width = draw(st.integers(1, 5))
    names = draw(st.lists(NAME, min_size=width, max_size=width,
                          unique_by=lambda s: s.strip()).filter(
                              lambda ns: all(n.strip() for n in ns)))
    cell = st.one_of(CELL, st.just(""), st.just("a\nb")) if multiline else CELL
    rows = draw(st.lists(st.lists(cell, min_size=width, max_size=width), min_size=1,
                         max_size=12))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=draw(st.sampled_from(["\n", "\r\n"])),
                        quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])))
    writer.writerow(names)
    blank = draw(st.sets(st.integers(0, len(rows)), max_size=3))
    for i, row in enumerate(rows):
        if i in blank:
            out.write(draw(st.sampled_from(["\n", "\r\n"])))
        writer.writerow(row)
    text = out.getvalue()
    if draw(st.booleans()):
        text = text.rstrip("\r\n")  # no newline at the end
    return text


@needs_pyarrow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_well_formed_files_read_the_same(text):
    slow = stdlib_or_error(text)
    fast = _read_csv_fast(text)
    if isinstance(slow, DataError):
        assert fast is None
        return
    # One-line rows under unique, non-blank names: the fast reader must answer (the
    # test would pass vacuously otherwise).
    if "\n" not in "".join(np.concatenate(list(slow[1].values())).tolist()):
        assert fast is not None, text
    same(fast, slow)


@needs_pyarrow
@settings(max_examples=200, deadline=None)
@given(tables(multiline=True))
def test_values_over_several_lines_are_left_to_the_stdlib_reader(text):
    slow = stdlib_or_error(text)
    fast = _read_csv_fast(text)
    if fast is not None:
        same(fast, slow)


RAW = st.text(alphabet=st.sampled_from(list('ab,"\n\r \t1') + ["é", "\ufeff"]), max_size=60)


@needs_pyarrow
@settings(max_examples=500, deadline=None)
@given(RAW)
def test_any_text_gives_the_stdlib_answer_or_none(text):
    """Ragged rows, stray quotes, lone CRs, blank-only lines: whatever the fast reader
    answers is what the stdlib reader answers; it never answers where that raises."""
    slow = stdlib_or_error(text)
    fast = _read_csv_fast(text)
    if fast is None:
        return
    assert not isinstance(slow, DataError), (text, slow)
    same(fast, slow)


@needs_pyarrow
def test_a_plain_file_is_read_by_pyarrow():
    text = "a, b ,c\n1, x ,é\n\n2,\"y,z\",\r\n3,\"q\"\"r\",  \n"
    fast = _read_csv_fast(text)
    assert fast is not None
    same(fast, _read_csv_stdlib("f.csv", text))
    header, columns, lines = fast
    assert header == ["a", "b", "c"] and lines.tolist() == [2, 4, 5]
    assert columns["b"].tolist() == ["x", "y,z", 'q"r'] and columns["c"].tolist() == ["é", "", ""]


# ------------------------------------------------- through read_csv_columns


@pytest.fixture
def always_fast(monkeypatch):
    monkeypatch.setattr(tabular, "FAST_CSV_MIN_CHARS", 0)


@pytest.fixture
def no_pyarrow(monkeypatch):
    monkeypatch.setattr(tabular, "FAST_CSV_MIN_CHARS", 0)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.csv", None)


BAD_FILES = {
    "ragged": b"a,b\n1,2\n3\n",
    "ragged_crlf": b"a,b\r\n1,2\r\n3,4,5\r\n",
    "not_utf8": b"a,b\n1,2\ncaf\xe9,3\n",
    "empty": b"",
    "blank_header": b"\n\n",
    "header_only": b"a,b\n",
    "header_only_blank_lines": b"a,b\n\n\r\n",
    "duplicate": b"a, a ,b\n1,2,3\n",
    "duplicate_and_ragged": b"a,a\n1\n",
    "unclosed_quote": b'a,b\n1,"2\n',
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_errors_are_the_stdlib_readers(tmp_path, monkeypatch, name):
    path = tmp_path / "t.csv"
    path.write_bytes(BAD_FILES[name])
    monkeypatch.setattr(tabular, "FAST_CSV_MIN_CHARS", 0)
    try:
        with_fast = read_csv_columns(path)
    except DataError as exc:
        with_fast = str(exc)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.csv", None)
    try:
        without = read_csv_columns(path)
    except DataError as exc:
        without = str(exc)
    if isinstance(without, str):
        assert with_fast == without
        assert str(path) in without
    else:  # an unclosed quote runs to the end of the file: one value, for both
        same(with_fast, without)


@needs_pyarrow
def test_ragged_row_message_names_file_and_line(tmp_path, always_fast):
    path = tmp_path / "t.csv"
    path.write_bytes(b"\xef\xbb\xbfa,b\r\n1,2\r\n\r\n3\r\n")
    with pytest.raises(DataError, match=r"t\.csv, line 4: expected 2 fields \(one per header "
                                        r"column\), found 1"):
        read_csv_columns(path)


@needs_pyarrow
def test_bom_crlf_and_stdin(tmp_path, always_fast, monkeypatch):
    data = "\ufeffId,Name\r\n1, Zoë \r\n2,\"a,b\"\r\n".encode()
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    header, columns, lines = read_csv_columns(path)
    assert header == ["Id", "Name"] and columns["Name"].tolist() == ["Zoë", "a,b"]
    assert lines.tolist() == [2, 3]

    class Stdin:
        buffer = io.BytesIO(data)

    monkeypatch.setattr(sys, "stdin", Stdin)
    header2, columns2, lines2 = read_csv_columns("-")
    assert header2 == header and lines2.tolist() == [2, 3]
    assert columns2["Name"].tolist() == ["Zoë", "a,b"]


def test_without_pyarrow_the_stdlib_reader_answers(tmp_path, no_pyarrow):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n")
    assert _read_csv_fast("a,b\n1,2\n") is None
    header, columns, lines = read_csv_columns(path)
    assert header == ["a", "b"] and columns["b"].tolist() == ["2"] and lines.tolist() == [2]


def test_small_files_skip_pyarrow(monkeypatch):
    calls = []
    monkeypatch.setattr(tabular, "_read_csv_fast", lambda text: calls.append(text))
    monkeypatch.setattr(tabular, "read_text", lambda path, what: "a\n1\n")
    read_csv_columns("small.csv")
    assert calls == []
    monkeypatch.setattr(tabular, "FAST_CSV_MIN_CHARS", 0)
    read_csv_columns("small.csv")
    assert calls == ["a\n1\n"]


# ------------------------------------------- the fit helpers' speedups


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(list("nNaA+-1 .x")), max_size=5),
                min_size=1, max_size=30))
def test_missing_mask_is_the_plain_definition(cells):
    """_missing_mask lowercases only cells that could spell NaN; the answer is that of
    lowercasing them all."""
    text = np.array(cells, dtype=str)
    missing = ("", "NA", "N/A")
    plain = np.isin(text, missing) | np.isin(np.char.lower(text), ["nan", "+nan", "-nan"])
    np.testing.assert_array_equal(tabular._missing_mask(text, missing), plain)


def test_parse_numbers_parses_once_and_still_names_the_culprit():
    text = np.array(["1", "", "2.5", "x", "3"])
    missing = text == ""
    values = tabular._parse_numbers(np.array(["1", "", "2.5"]), np.array([False, True, False]),
                                    "c")
    np.testing.assert_array_equal(values, [1.0, np.nan, 2.5])
    with pytest.raises(DataError, match=r"f\.csv, line 13: column 'c' holds 'x'"):
        tabular._parse_numbers(text, missing, "c", np.arange(10, 15), "f.csv")


# ------------------------------- training's coded columns: fast against stdlib


def _training_csv(path, seed, n=600):
    """A table with every kind of cell training meets: numbers with missing
    spellings (NA, nan, NaN, empty), the same number spelled two ways (1 and 1.0),
    categories with padding, a numeric-looking categorical column, text in a column
    that is otherwise numbers, and repeated rows (some with another target)."""
    rng = np.random.default_rng(seed)
    missing = ["", "NA", "nan", "NaN", "N/A", "null", "NAN"]
    rows = []
    for i in range(n):
        area = rng.choice(missing) if rng.random() < 0.1 else str(int(rng.integers(1, 40)) * 100)
        rate = rng.choice(["1", "1.0", " 2.5", "3e0", "-0.5", ""])
        zone = rng.choice(["RL", " RM", "RL ", "C (all)", "FV", "", "NA", "Zoë"])
        code = rng.choice(["10", "20", "020", "30", ""])  # declared categorical
        mixed = rng.choice(["1", "2", "x", ""]) if i % 7 == 0 else str(i % 5)
        price = str(int(rng.integers(50, 500)) * 1000) if rng.random() > 0.02 else "NA"
        rows.append([area, rate, zone, code, mixed, price])
    rows += rows[:40]  # exact duplicates
    rows += [r[:-1] + ["123000"] for r in rows[40:60]]  # conflicts: same features, other target
    order = rng.permutation(len(rows))
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Area", "Rate", "Zone", "Code", "Mixed", "Price"])
        writer.writerows(rows[i] for i in order)


def _load_both(monkeypatch, path, **options):
    """load_tabular through the fast coded reader, then through the stdlib reader."""
    assert tabular._arrow_table(path.read_text()) is not None  # the fast path answers
    answers = []
    for threshold in (0, float("inf")):
        monkeypatch.setattr(tabular, "FAST_CSV_MIN_CHARS", threshold)
        with _no_check():
            answers.append(tabular.load_tabular(path, "Price", **options))
    return answers


@contextlib.contextmanager
def _no_check():
    """Warnings (duplicates, conflicts, outliers) are the same either way: ignore them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _same_splits(a, b):
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    meta_a, arrays_a = a.pipeline.get_state()
    meta_b, arrays_b = b.pipeline.get_state()
    assert meta_a == meta_b
    assert list(arrays_a) == list(arrays_b)
    for key in arrays_a:
        np.testing.assert_array_equal(arrays_a[key], arrays_b[key], err_msg=key)
    assert a.info == b.info


@needs_pyarrow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("options", [
    {},
    {"categorical": ["Code"], "duplicates": "drop", "conflicts": "drop"},
    {"categorical": ["Code"], "numeric": ["Rate"], "task": "regression", "log_target": True,
     "impute_numeric": "median", "impute_categorical": "constant", "scaling": "robust",
     "outliers": {"method": "iqr", "action": "drop"}},
    {"drop": ["Mixed"], "conflicts": "report", "scaling": "minmax",
     "select": {"variance_threshold": 0.01, "k": 6}},
])
def test_coded_fast_and_stdlib_readers_give_identical_splits(tmp_path, monkeypatch, seed,
                                                             options):
    path = tmp_path / "t.csv"
    _training_csv(path, seed)
    fast, slow = _load_both(monkeypatch, path, **options)
    _same_splits(fast, slow)
    assert "Mixed" not in fast.pipeline.columns or \
        fast.pipeline.kinds[fast.pipeline.columns.index("Mixed")] == "categorical"
    assert fast.info["duplicates"]["found"] > 0


@needs_pyarrow
def test_coded_reader_matches_the_string_columns(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    _training_csv(path, 3)
    text = path.read_text()
    header, columns, lines = tabular._read_csv_stdlib(str(path), text)
    for threshold in (0, float("inf")):
        monkeypatch.setattr(tabular, "FAST_CSV_MIN_CHARS", threshold)
        header2, coded, lines2 = tabular.read_csv_coded(path)
        assert header2 == header and lines2.tolist() == lines.tolist()
        for name in header:
            assert coded[name].text().tolist() == columns[name].tolist(), name
            assert coded[name].values.tolist() == sorted(set(columns[name].tolist())), name


@needs_pyarrow
@pytest.mark.parametrize("bad, shown", [("inf", "inf"), ("-Infinity", "-Infinity"),
                                        ("1e308", "1e308"), (" 1e39 ", "1e39")])
def test_an_infinity_in_a_big_file_names_its_line_and_column(tmp_path, monkeypatch, bad, shown):
    path = tmp_path / "t.csv"
    _training_csv(path, 4)
    lines = path.read_text().splitlines()
    fields = next(csv.reader([lines[300]]))
    fields[0] = bad  # Area, on file line 301
    lines[300] = ",".join(f'"{v}"' if "," in v else v for v in fields)
    path.write_text("\n".join(lines) + "\n")
    messages = []
    for threshold in (0, float("inf")):
        monkeypatch.setattr(tabular, "FAST_CSV_MIN_CHARS", threshold)
        with _no_check(), pytest.raises(DataError) as info:
            tabular.load_tabular(path, "Price")
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith(f"{path}, line 301: column 'Area' holds {shown!r}, which is "
                                  f"not a finite number within float32 range")


@needs_pyarrow
def test_text_in_a_declared_numeric_column_names_its_line(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    _training_csv(path, 5)
    messages = []
    for threshold in (0, float("inf")):
        monkeypatch.setattr(tabular, "FAST_CSV_MIN_CHARS", threshold)
        with _no_check(), pytest.raises(DataError) as info:
            tabular.load_tabular(path, "Price", numeric=["Zone"])
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert "column 'Zone' holds" in messages[0] and "but a number was expected" in messages[0]


def test_row_groups_on_codes_and_text_agree():
    rng = np.random.default_rng(0)
    from micrograd.data import cleaning

    text = rng.choice(["a", "b", "", "c"], size=(500, 3))
    codes = [np.unique(text[:, j], return_inverse=True)[1] for j in range(3)]
    by_text = cleaning.row_groups([text[:, j] for j in range(3)])
    by_code = cleaning.row_groups(codes)
    # the same partition of the rows, whatever the group numbers
    pairs = set(zip(by_text.tolist(), by_code.tolist()))
    assert len(pairs) == len(set(by_text.tolist())) == len(set(by_code.tolist()))


@needs_pyarrow
def test_a_header_whose_quote_opens_after_a_literal_quote_is_left_to_the_stdlib_reader():
    """`1","` has an even count of quotes, but the stdlib reader opens a quoted field at
    the second one, so the header runs on: found by the property test above."""
    assert _read_csv_fast('1","\n,') is None
    assert isinstance(stdlib_or_error('1","\n,'), DataError)


@needs_pyarrow
@pytest.mark.parametrize("text", ['1\n"\n\n', 'a,b\n1,"x\n\n"\n2,y\n'])
def test_a_quoted_value_spanning_only_blank_lines_is_left_to_the_stdlib_reader(text):
    """The row count matches the count of non-blank lines, since the lines the value
    spans are blank; the line numbers would not: found by the property test above."""
    slow = stdlib_or_error(text)
    fast = _read_csv_fast(text)
    assert fast is None or (not isinstance(slow, DataError) and same(fast, slow) is None)
