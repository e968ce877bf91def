import json
import math

import numpy as np
import pytest

from micrograd.data.pipeline import PipelineError, pipeline_from_state
from micrograd.data.splits import split_indices
from micrograd.data.text import (
    TextFormatError,
    TextPipeline,
    build_vocabulary,
    load_text,
    tokenize,
)


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# 10 labelled sentences, balanced, enough for a stratified 3-way split
SENTENCES = [
    ("Great phone, works great!", 1),
    ("I love it.", 1),
    ("Excellent value for the money.", 1),
    ("Good sound and good battery.", 1),
    ("Highly recommended!", 1),
    ("Terrible battery, don't buy.", 0),
    ("It broke after a week.", 0),
    ("Awful customer service.", 0),
    ("Poor quality and bad sound.", 0),
    ("Waste of money!!", 0),
]


@pytest.fixture
def corpus(tmp_path):
    return write(tmp_path / "reviews.txt", [f"{s}\t{y}" for s, y in SENTENCES])


# --- tokenisation ---------------------------------------------------------

def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize("Great phone, works GREAT!") == ["great", "phone", ",", "works", "great", "!"]


def test_tokenize_keeps_inner_apostrophes_and_unicode_words():
    assert tokenize("Don't buy it...") == ["don't", "buy", "it", ".", ".", "."]
    assert tokenize("Café crème") == ["café", "crème"]
    assert tokenize("Keep Case", lowercase=False) == ["Keep", "Case"]


# --- vocabulary -------------------------------------------------------------

def test_vocabulary_orders_by_frequency_then_alphabetically():
    docs = [["b", "a", "c"], ["c", "a"], ["d"]]
    assert build_vocabulary(docs) == ["a", "c", "b", "d"]
    assert build_vocabulary(docs, min_freq=2) == ["a", "c"]
    assert build_vocabulary(docs, max_vocab=3) == ["a", "c", "b"]


def test_vocabulary_comes_from_the_train_split_only(corpus):
    data = load_text(corpus, splits=(0.6, 0.2, 0.2), seed=3, vectorizer="bow")
    labels = np.array([y for _, y in SENTENCES])
    train, val, test = split_indices(len(SENTENCES), (0.6, 0.2, 0.2), seed=3, stratify=labels)
    train_tokens = {t for i in train for t in tokenize(SENTENCES[i][0])}
    other_tokens = {t for i in np.r_[val, test] for t in tokenize(SENTENCES[i][0])}
    vocab = set(data.pipeline.vocabulary)
    assert vocab == train_tokens
    assert other_tokens - train_tokens  # the check below can fail
    assert not vocab & (other_tokens - train_tokens)
    # each train row counts exactly its sentence's tokens
    assert data.x_train.sum() == sum(len(tokenize(SENTENCES[i][0])) for i in train)


def test_min_freq_and_max_vocab_apply_to_load_text(corpus):
    full = load_text(corpus, splits=(1.0, 0.0, 0.0))
    frequent = load_text(corpus, splits=(1.0, 0.0, 0.0), min_freq=2)
    capped = load_text(corpus, splits=(1.0, 0.0, 0.0), max_vocab=4)
    counts = {}
    for s, _ in SENTENCES:
        for t in tokenize(s):
            counts[t] = counts.get(t, 0) + 1
    assert sorted(frequent.pipeline.vocabulary) == sorted(t for t, c in counts.items() if c >= 2)
    assert capped.pipeline.vocabulary == full.pipeline.vocabulary[:4]
    assert capped.x_train.shape == (10, 4)
    assert full.info["vocab_size"] == len(counts)


# --- vectors on a hand-computed example ------------------------------------

TRAIN = [["good", "good", "film"], ["bad", "film"]]  # vocabulary: film, good, bad


@pytest.mark.parametrize("vectorizer, expected", [
    ("bow", [[1, 2, 0], [1, 0, 1]]),
    ("binary", [[1, 1, 0], [1, 0, 1]]),
])
def test_counts_and_binary(vectorizer, expected):
    p = TextPipeline.fit(TRAIN, vectorizer=vectorizer)
    assert p.vocabulary == ["film", "good", "bad"]
    x = p.vectorize(TRAIN)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, expected)


def test_tfidf_by_hand():
    p = TextPipeline.fit(TRAIN, vectorizer="tfidf")
    rare = math.log(3 / 2) + 1  # n=2 documents, df=1: ln((1+2)/(1+1)) + 1
    np.testing.assert_allclose(p.idf, [1.0, rare, rare])
    first = np.array([1.0, 2 * rare, 0.0])
    second = np.array([1.0, 0.0, rare])
    expected = np.stack([first / np.linalg.norm(first), second / np.linalg.norm(second)])
    x = p.vectorize(TRAIN)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, expected, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-6)


def test_tfidf_matches_sklearn():
    sklearn_text = pytest.importorskip("sklearn.feature_extraction.text")
    docs = [s for s, _ in SENTENCES]
    tokens = [tokenize(s) for s in docs]
    ours = TextPipeline.fit(tokens, vectorizer="tfidf")
    ref = sklearn_text.TfidfVectorizer(analyzer=tokenize)
    theirs = ref.fit_transform(docs).toarray()
    order = [ref.vocabulary_[t] for t in ours.vocabulary]
    np.testing.assert_allclose(ours.vectorize(tokens), theirs[:, order], rtol=1e-5, atol=1e-7)


def test_ngrams_add_bigrams(corpus):
    data = load_text(corpus, splits=(1.0, 0.0, 0.0), ngram_range=(1, 2), vectorizer="bow")
    assert "don't buy" in data.pipeline.vocabulary
    assert "great" in data.pipeline.vocabulary
    x = data.pipeline.transform("don't buy")
    assert x[0, data.pipeline.vocabulary.index("don't buy")] == 1


# --- load_text --------------------------------------------------------------

def test_load_text_shapes_labels_and_stratified_split(corpus, tmp_path):
    data = load_text(corpus, splits=(0.6, 0.2, 0.2))
    p = data.pipeline
    assert p.kind == "text" and p.task == "classification"
    assert p.class_names == ["0", "1"]
    assert p.input_shape == (len(p.vocabulary),)
    assert data.x_train.shape == (6, len(p.vocabulary)) and data.x_train.dtype == np.float32
    for y in (data.y_train, data.y_val, data.y_test):
        assert y.dtype == np.int64
        assert np.bincount(y, minlength=2).tolist() == [len(y) // 2] * 2
    assert data.info["samples"] == 10 and data.info["skipped_lines"] == 0


def test_several_files_blank_lines_and_header(tmp_path):
    a = write(tmp_path / "a.txt", ["text\tlabel", "good one\tpos", "", "bad one\tneg"])
    b = write(tmp_path / "b.txt", ["text\tlabel", "  ", "fine one\tpos", "poor one\tneg"])
    data = load_text([a, b], has_header=True, splits=(1.0, 0.0, 0.0), vectorizer="bow")
    assert data.pipeline.class_names == ["neg", "pos"]
    assert data.info["samples"] == 4
    assert data.y_train.tolist() == [1, 0, 1, 0]
    assert "label" not in data.pipeline.vocabulary


def test_other_columns_and_delimiter(tmp_path):
    f = write(tmp_path / "c.csv", ["1;nice day;x", "0;sad day;y"])
    data = load_text(f, delimiter=";", text_column=1, label_column=0, splits=(1.0, 0.0, 0.0))
    assert sorted(data.pipeline.vocabulary) == ["day", "nice", "sad"]


def test_broken_line_names_file_and_line(tmp_path):
    f = write(tmp_path / "broken.txt", ["fine sentence\t1", "", "a sentence broken", "across lines\t0",
                                        "another\t0"])
    with pytest.raises(TextFormatError) as err:
        load_text(f)
    message = str(err.value)
    assert "broken.txt" in message and "line 3" in message and "sentence<TAB>label" in message
    assert isinstance(err.value, PipelineError) and isinstance(err.value, ValueError)


@pytest.mark.parametrize("bad_line, problem", [
    ("empty label here\t", "empty label"),
    ("a stray\ttab\t1", "'tab'"),
])
def test_empty_or_unexpected_label_is_malformed(tmp_path, bad_line, problem):
    f = write(tmp_path / "bad.txt", ["good\t1", "bad\t0", bad_line, "okay\t1"])
    with pytest.raises(TextFormatError, match=problem) as err:
        load_text(f)
    assert "line 3" in str(err.value)


def test_labels_outside_the_allowed_set(tmp_path):
    f = write(tmp_path / "bad.txt", ["good\tpos", "bad\tneg", "meh\tneutral"])
    with pytest.raises(TextFormatError, match="line 3"):
        load_text(f, labels=["neg", "pos"])


def test_skip_bad_lines_counts_and_warns(tmp_path):
    lines = [f"sentence number {i}\t{i % 2}" for i in range(10)]
    lines[2] = "broken in"
    lines[6] = "two\t"
    f = write(tmp_path / "broken.txt", lines)
    with pytest.warns(UserWarning, match=r"skipped 2 .*broken.txt:3, broken.txt:7"):
        data = load_text(f, skip_bad_lines=True, splits=(1.0, 0.0, 0.0))
    assert data.info["skipped_lines"] == 2
    assert data.info["samples"] == 8


def test_bad_arguments(corpus):
    with pytest.raises(ValueError, match="vectorizer"):
        load_text(corpus, vectorizer="word2vec")
    with pytest.raises(ValueError, match="min_freq"):
        load_text(corpus, min_freq=0)
    with pytest.raises(ValueError, match="ngram_range"):
        load_text(corpus, ngram_range=(2, 1))


# --- the pipeline at predict time ------------------------------------------

def test_transform_of_unseen_words_and_single_string(corpus):
    p = load_text(corpus, splits=(1.0, 0.0, 0.0), vectorizer="bow").pipeline
    x = p.transform("zzz qqq")
    assert x.shape == (1, len(p.vocabulary)) and x.dtype == np.float32
    assert not x.any()
    x = p.transform(["GREAT xyzzy great", "awful"])
    assert x.shape == (2, len(p.vocabulary))
    assert x[0, p.vocabulary.index("great")] == 2 and x[0].sum() == 2
    tfidf = load_text(corpus, splits=(1.0, 0.0, 0.0)).pipeline
    assert not tfidf.transform("nothing known here").any()  # no division by a zero norm
    with pytest.raises(PipelineError, match="sentence"):
        p.transform([1, 2])


@pytest.mark.parametrize("vectorizer", ["bow", "binary", "tfidf"])
def test_state_round_trip(corpus, vectorizer):
    data = load_text(corpus, vectorizer=vectorizer, ngram_range=(1, 2), max_vocab=20)
    meta, arrays = data.pipeline.state()
    meta = json.loads(json.dumps(meta))
    rebuilt = pipeline_from_state(meta, {k: np.array(v) for k, v in arrays.items()})
    assert isinstance(rebuilt, TextPipeline)
    assert rebuilt.vocabulary == data.pipeline.vocabulary
    assert rebuilt.class_names == ["0", "1"] and rebuilt.input_shape == (20,)
    sentences = [s for s, _ in SENTENCES] + ["never seen before"]
    np.testing.assert_array_equal(rebuilt.transform(sentences), data.pipeline.transform(sentences))


# ------------------------------------------------------------------ token ids


def test_ids_vectorizer_gives_padded_int64_token_ids():
    from micrograd.data.text import PAD, UNKNOWN

    p = TextPipeline.fit([["good", "film"], ["bad", "film", "really"]], vectorizer="ids")
    assert p.input_shape == (3,) and p.num_tokens == len(p.vocabulary) + 2
    ids = p.transform(["Good film unseen words here", "bad"])
    assert ids.dtype == np.int64 and ids.shape == (2, 3)
    word = {w: i + 2 for i, w in enumerate(p.vocabulary)}
    assert ids.tolist() == [[word["good"], word["film"], UNKNOWN], [word["bad"], PAD, PAD]]
    again = TextPipeline.from_state(*p.get_state())
    assert np.array_equal(again.transform("bad film"), p.transform("bad film"))


def test_ids_vectorizer_needs_a_length():
    with pytest.raises(ValueError, match="max_length"):
        TextPipeline(["a"], vectorizer="ids")


def test_an_embedding_model_trains_on_token_ids_from_a_config(tmp_path):
    """vectorizer: ids + embedding_bag: num_embeddings comes from the vocabulary, the
    ids stay int64 from the data to the model, and predict and eval reuse them."""
    from conftest import run, write_config

    rng = np.random.default_rng(0)
    good, bad = ["great", "love", "fine", "nice"], ["awful", "hate", "broken", "poor"]
    lines = []
    for i in range(200):
        label = i % 2
        words = rng.choice(good if label else bad, size=3).tolist() + ["the", "phone"]
        rng.shuffle(words)
        lines.append(f"{' '.join(words)}\t{label}")
    (tmp_path / "reviews.txt").write_text("\n".join(lines) + "\n")
    cfg = {"data": {"type": "text", "path": "reviews.txt", "vectorizer": "ids"},
           "model": {"layers": [{"type": "embedding_bag", "embedding_dim": 8, "padding_idx": 0},
                                {"type": "linear", "out_features": 2}]},
           "loss": "cross_entropy", "optimizer": {"type": "adam", "lr": 0.05},
           "train": {"epochs": 15, "batch_size": 16, "monitor": "accuracy"}}
    write_config(tmp_path, cfg)
    result = run(["train", "config.yaml", "-q"], tmp_path)
    assert result.exit_code == 0, result.output
    assert "accuracy=1 " in result.output
    assert run(["predict", "--input", "love this nice phone"], tmp_path).output.startswith("1 ")
    assert run(["predict", "--input", "broken awful thing"], tmp_path).output.startswith("0 ")
    summary = run(["summary", "config.yaml"], tmp_path).output
    assert "EmbeddingBag(12, 8" in summary  # 10 words + padding + unknown

    cfg["data"]["vectorizer"] = "tfidf"  # float features: no token ids to embed
    write_config(tmp_path, cfg)
    result = run(["train", "config.yaml", "-q"], tmp_path)
    assert result.exit_code == 2 and "num_embeddings" in result.output, result.output
