"""Dataset loading: formats, column detection, splits and every bad-input path."""
import json

import pytest

import lamda_core as lc
from lamda_core.data.reading import load_classification, load_language_model


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def test_demo_sentiment_is_balanced_and_split():
    data = load_classification("demo-sentiment")
    assert len(data.train_texts) == 400 and len(data.validation_texts) == 100
    assert data.label_names == ["negative", "positive"]
    assert 180 <= sum(data.train_labels) <= 220 and len(set(data.train_texts)) == 400


@pytest.mark.parametrize("name,content", [
    ("d.csv", "text,label\nfine film,1\nawful film,0\ngreat,1\nbad,0\n"),
    ("d.tsv", "sentence\tlabel\nfine film\t1\nawful film\t0\ngreat\t1\nbad\t0\n"),
    ("d.jsonl", "\n".join(json.dumps({"content": t, "sentiment": y}) for t, y in
                          [("fine film", "1"), ("awful film", "0"), ("great", "1"), ("bad", "0")])),
])
def test_formats_and_column_detection(tmp_path, name, content):
    data = load_classification(write(tmp_path / name, content))
    assert data.label_names == ["0", "1"] and len(data.train_texts) + len(data.validation_texts) == 4


def test_explicit_columns_and_validation_file(tmp_path):
    train = write(tmp_path / "t.csv", "body,verdict\na,yes\nb,no\nc,yes\n")
    validation = write(tmp_path / "v.csv", "body,verdict\nd,no\n")
    data = load_classification(train, validation, text_column="body", label_column="verdict")
    assert data.label_names == ["no", "yes"] and data.validation_labels == [0]


@pytest.mark.parametrize("content,message", [
    ("text,label\n", "is empty: no rows"),
    ("text,score\na,1\nb,0\n", "has no label column: looked for"),
    ("text,label\na,1\nb,1\n", "only one class"),
    ("text,label\na,1\nb,good\n", "labels mix numbers"),
    ("text,label\na,0.5\nb,1\n", "is not an integer class id"),
    ("text,label\n,1\nb,0\n", "has an empty 'text'"),
])
def test_bad_classification_files(tmp_path, content, message):
    with pytest.raises(lc.DataError, match=message):
        load_classification(write(tmp_path / "d.csv", content))


def test_unseen_validation_labels(tmp_path):
    train = write(tmp_path / "t.csv", "text,label\na,pos\nb,neg\n")
    validation = write(tmp_path / "v.csv", "text,label\nc,neutral\n")
    with pytest.raises(lc.DataError, match=r"labels \['neutral'\] never occur in the training data"):
        load_classification(train, validation)


def test_undecodable_bytes(tmp_path):
    path = write(tmp_path / "d.csv", b"text,label\ncaf\xe9 ok,1\nbad,0\n")
    with pytest.raises(lc.DataError, match="not valid UTF-8 text: undecodable byte 0xe9 at offset 14"):
        load_classification(path)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(lc.DataError, match="no such data file"):
        load_classification(tmp_path / "none.csv")
    with pytest.raises(lc.DataError, match="unsupported data format .xlsx"):
        load_classification(write(tmp_path / "d.xlsx", "x"))


def test_language_model_blocks_and_short_file(tmp_path):
    _, tokenizer = lc.load_model("tiny-gpt2", task="causal-lm")
    data = load_language_model("demo-corpus", tokenizer, block_size=64)
    assert data.train_blocks.shape[1] == 64 and len(data.train_blocks) + len(data.validation_blocks) == 9
    with pytest.raises(lc.DataError, match="shorter than one block of 64"):
        load_language_model(write(tmp_path / "short.txt", "only a few words here"), tokenizer, block_size=64)
    with pytest.raises(lc.DataError, match="is empty: no text"):
        load_language_model(write(tmp_path / "empty.txt", "  \n"), tokenizer, block_size=64)


@pytest.mark.parametrize("name,content,texts", [
    ("d.tsv", "a great movie\t1\nterrible plot\t0\nfine acting\t1\nboring\t0\n", ["a great movie", "terrible plot"]),
    ("d.csv", "pos,\"warm, funny\"\nneg,dull\npos,bright\nneg,flat\n", ["warm, funny", "dull"]),  # label first
])
def test_headerless_two_column_files_are_detected(tmp_path, name, content, texts):
    data = load_classification(write(tmp_path / name, content), write(tmp_path / f"v{name}", content))
    assert data.train_texts[:2] == texts and len(data.train_texts) == 4  # the first row is data, not a header
    assert len(data.notes) == 2 and all("no header line" in note for note in data.notes)  # one per file
    assert data.notes[0].startswith(name) and data.notes[1].startswith(f"v{name}")


def test_an_unknown_header_is_still_a_header(tmp_path):
    path = write(tmp_path / "d.tsv", "phrase\tpolarity\ngood\t1\nbad\t0\n")
    with pytest.raises(lc.DataError, match=r"no text column: .* its columns are \['phrase', 'polarity'\]"):
        load_classification(path)
    data = load_classification(path, text_column="phrase", label_column="polarity")
    assert sorted(data.train_texts + data.validation_texts) == ["bad", "good"] and not data.notes


def test_rows_with_a_different_field_count_name_the_line(tmp_path):
    with pytest.raises(lc.DataError, match="line 3 has 3 fields, the first line 2"):
        load_classification(write(tmp_path / "d.csv", "text,label\na,1\nb,0,extra\n"))


def test_parquet_files(tmp_path):
    import pandas as pd

    pd.DataFrame({"sentence": ["good", "bad", "fine", "awful"], "label": [1, 0, 1, 0]}).to_parquet(
        tmp_path / "t.parquet"
    )
    pd.DataFrame({"review": ["nice"], "stars": [1]}).to_parquet(tmp_path / "v.parquet")
    data = load_classification(tmp_path / "t.parquet", tmp_path / "t.parquet")
    assert data.train_texts == ["good", "bad", "fine", "awful"] and data.train_labels == [1, 0, 1, 0]
    with pytest.raises(lc.DataError, match=r"no label column: .* its columns are \['review', 'stars'\]"):
        load_classification(tmp_path / "t.parquet", tmp_path / "v.parquet")
    write(tmp_path / "broken.parquet", "not parquet at all")
    with pytest.raises(lc.DataError, match="is not a readable Parquet file"):
        load_classification(tmp_path / "broken.parquet")
