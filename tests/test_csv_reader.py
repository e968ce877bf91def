"""The fast CSV reader (pyarrow, the ``fast`` extra) against the stdlib reader: the same
header, cells, dtypes and line numbers on generated files, or no answer at all (the
stdlib reader then reads the file), and the same errors through read_csv_columns."""
import csv
import io
import sys

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
