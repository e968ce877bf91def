"""Text duplicates and conflicts (dropped before splitting) and data.ngram_range in configs."""
import warnings

import numpy as np
import pytest

from conftest import run, write_config
from micrograd.build import build_data
from micrograd.config.loader import validate
from micrograd.data.text import UNKNOWN, deduplicate, load_text


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def repeated_corpus(tmp_path, copies=3, n=40):
    """n sentences, each written ``copies`` times (case and spacing vary); each holds a
    word of its own (w0, w1, ...) that no other sentence uses."""
    lines = []
    for copy in range(copies):
        for i in range(n):
            sentence = f"Review  w{i} is GOOD" if copy % 2 else f"review w{i} is good"
            lines.append(f"{sentence}\t{i % 2}")
    return write(tmp_path / "reviews.txt", lines)


def sentences_in_two_splits(data) -> int:
    """Rows of val/test whose own word (token id 3: after 'review', 'w<i>') is known
    to the vocabulary, which learned only train sentences: the sentence is in train too."""
    own_word = [data.pipeline.vocabulary[i - 2] if i != UNKNOWN else None
                for x in (data.x_val, data.x_test) for i in np.asarray(x)[:, 1]]
    return sum(w is not None for w in own_word)


def test_duplicates_are_dropped_before_splitting_so_no_sentence_is_in_two_splits(tmp_path):
    path = repeated_corpus(tmp_path)
    with pytest.warns(UserWarning, match="80 line"):  # copies 2 and 3 of 40 sentences
        kept = load_text(path, vectorizer="ids", duplicates="keep", splits=(0.5, 0.25, 0.25))
    assert sentences_in_two_splits(kept) > 0  # the check can fail
    assert kept.info["duplicates"] == {"found": 80, "dropped": 0, "conflicts": 0}

    with pytest.warns(UserWarning, match="dropped before splitting"):
        data = load_text(path, vectorizer="ids", duplicates="drop", splits=(0.5, 0.25, 0.25))
    assert sentences_in_two_splits(data) == 0
    assert data.info["duplicates"] == {"found": 80, "dropped": 80, "conflicts": 0}
    assert data.info["samples"] == 40
    assert data.info["rows"] == {"train": 20, "val": 10, "test": 10}
    assert data.info["class_balance"] == {"train": {"0": 10, "1": 10},
                                          "val": {"0": 5, "1": 5}, "test": {"0": 5, "1": 5}}


def test_sentences_are_the_same_when_the_tokenizer_sees_the_same_tokens():
    records = [("f", i + 1, s, "1", None) for i, s in
               enumerate(["Great phone!", "great   phone !", "GREAT PHONE!", "great phones!"])]
    with pytest.warns(UserWarning):
        kept, counts = deduplicate(records, duplicates="drop")
    assert [r[1] for r in kept] == [1, 4] and counts["found"] == 2
    kept, counts = deduplicate(records, lowercase=False, duplicates="drop")  # case counts
    assert [r[1] for r in kept] == [1, 2, 3, 4] and counts["found"] == 0


CONFLICTED = [("good film", "1"), ("bad film", "0"), ("good film", "1"), ("meh film", "1"),
              ("Meh film", "0"), ("fine", "1")]


@pytest.mark.parametrize("duplicates, conflicts, kept_lines, counts, warned", [
    ("keep", "keep", [1, 2, 3, 4, 5, 6], {"found": 1, "dropped": 0, "conflicts": 2}, 1),
    ("drop", "keep", [1, 2, 4, 5, 6], {"found": 1, "dropped": 1, "conflicts": 2}, 1),
    ("drop", "report", [1, 2, 4, 5, 6], {"found": 1, "dropped": 1, "conflicts": 2}, 2),
    ("drop", "drop", [1, 2, 6], {"found": 1, "dropped": 3, "conflicts": 2}, 2),
    ("keep", "drop", [1, 2, 3, 6], {"found": 1, "dropped": 2, "conflicts": 2}, 2),
])
def test_conflicts_are_kept_reported_or_dropped(duplicates, conflicts, kept_lines, counts,
                                                warned):
    records = [("reviews.txt", i + 1, s, y, None) for i, (s, y) in enumerate(CONFLICTED)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kept, found = deduplicate(records, duplicates=duplicates, conflicts=conflicts)
    assert [r[1] for r in kept] == kept_lines
    assert found == counts
    assert len(caught) == warned
    if conflicts != "keep":
        assert "reviews.txt:4, reviews.txt:5" in str(caught[-1].message)


def test_conflicts_drop_through_load_text_and_a_config(tmp_path):
    path = write(tmp_path / "c.txt", [f"{s}\t{y}" for s, y in CONFLICTED] +
                 [f"word{i} here\t{i % 2}" for i in range(20)])
    cfg = {"data": {"type": "text", "path": str(path), "duplicates": "drop",
                    "conflicts": "drop", "splits": {"train": 0.5, "val": 0.25, "test": 0.25}},
           "model": {"layers": [{"type": "linear", "out_features": 2}]},
           "loss": "cross_entropy", "optimizer": "adam"}
    with pytest.warns(UserWarning) as caught:
        data = build_data(validate(cfg))
    assert [str(w.message).split(" (at")[0] for w in caught] == [
        "1 line(s) repeat an earlier sentence and label",
        "2 line(s) hold a sentence that also occurs with another label"]
    assert data.info["duplicates"] == {"found": 1, "dropped": 3, "conflicts": 2}
    assert data.info["samples"] == 26 - 3
    assert "meh" not in data.pipeline.vocabulary
    assert sum(data.info["rows"].values()) == 23


def test_nothing_left_after_dropping_is_a_data_error(tmp_path):
    from micrograd.data.pipeline import DataError

    path = write(tmp_path / "c.txt", ["same\t0", "same\t1"])
    with pytest.raises(DataError, match="no sentences left"), pytest.warns(UserWarning):
        load_text(path, conflicts="drop")


def test_defaults_keep_duplicates_and_report_conflicts():
    section = validate({"data": {"type": "text", "path": "x.txt"},
                        "model": {"layers": [{"type": "linear", "out_features": 2}]},
                        "loss": "cross_entropy", "optimizer": "adam"}).data
    assert (section.duplicates, section.conflicts, section.ngram_range) == ("keep", "report",
                                                                            [1, 1])


# --- data.ngram_range --------------------------------------------------------

def test_ngram_range_from_a_config_reaches_the_vocabulary_and_predict(tmp_path):
    lines = [f"{'not good' if i % 2 == 0 else 'very good'} item{i}\t{i % 2}" for i in range(40)]
    write(tmp_path / "reviews.txt", lines)
    cfg = {"data": {"type": "text", "path": "reviews.txt", "ngram_range": [1, 2]},
           "model": {"layers": [{"type": "linear", "out_features": 2}]},
           "loss": "cross_entropy", "optimizer": {"type": "adam", "lr": 0.1},
           "train": {"epochs": 30, "batch_size": 8}}
    write_config(tmp_path, cfg)
    data = build_data(validate({**cfg, "data": {**cfg["data"],
                                                "path": str(tmp_path / "reviews.txt")}}))
    assert "not good" in data.pipeline.vocabulary and data.info["ngram_range"] == [1, 2]
    assert data.pipeline.ngram_range == (1, 2)

    result = run(["train", "config.yaml", "-q"], tmp_path)
    assert result.exit_code == 0, result.output
    # "not" alone is a word of class 0 only; the stored pipeline forms the same bigrams
    assert run(["predict", "--input", "very good"], tmp_path).output.startswith("1 ")
    assert run(["predict", "--input", "not good"], tmp_path).output.startswith("0 ")
    result = run(["summary", "config.yaml", "--set", "data.ngram_range=[1, 1]"], tmp_path)
    assert result.exit_code == 0, result.output
    unigrams = len(build_data(validate({**cfg, "data": {
        **cfg["data"], "ngram_range": [1, 1], "path": str(tmp_path / "reviews.txt")}}))
        .pipeline.vocabulary)
    assert f"input {unigrams}" in result.output


@pytest.mark.parametrize("value", ["[2, 1]", "[0, 1]", "[1]", "[1, 2, 3]", "2"])
def test_a_bad_ngram_range_exits_2_naming_the_key(tmp_path, value):
    write(tmp_path / "reviews.txt", ["good\t1", "bad\t0"] * 5)
    write_config(tmp_path, {"data": {"type": "text", "path": "reviews.txt"},
                            "model": {"layers": [{"type": "linear", "out_features": 2}]},
                            "loss": "cross_entropy", "optimizer": "adam"})
    result = run(["train", "config.yaml", "--set", f"data.ngram_range={value}"], tmp_path)
    assert result.exit_code == 2, result.output
    assert "ngram_range" in result.output
