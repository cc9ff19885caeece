"""Datasets for short local fine-tunes.

Classification: CSV, TSV (GLUE style, header ``sentence<TAB>label``), JSONL or Parquet, with the
text and label columns given or detected among the usual names. A two-column CSV / TSV without a
header line (``text<TAB>label`` rows) is detected: when its first row's label value also occurs
further down, the first row is data; the column with fewer distinct values is the label, and the
note says so. Labels are class names or integer ids,
mapped to 0..K-1 in sorted order. Causal LM: plain text or JSONL with a text field, tokenized and
cut into blocks of ``block_size`` tokens; instruction data (conversations, prompt / completion,
Alpaca fields) is chat_data.py's. A validation split is taken from the data (seeded, 10%)
when no validation file is given.
"""
from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import DataError

TEXT_COLUMNS = ("text", "sentence", "content", "review", "document", "sentence1")
LABEL_COLUMNS = ("label", "labels", "sentiment", "class", "target", "category")
DEMO_FOLDER = Path(__file__).resolve().parent / "demo"  # package data
DEMO_DATASETS = {"demo-sentiment": (DEMO_FOLDER / "sentiment_train.tsv", DEMO_FOLDER / "sentiment_validation.tsv"),
                 "demo-corpus": (DEMO_FOLDER / "corpus.txt", None),
                 "demo-chat": (DEMO_FOLDER / "chat_train.jsonl", DEMO_FOLDER / "chat_validation.jsonl")}
VALIDATION_FRACTION = 0.1


@dataclass
class ClassificationData:
    train_texts: list[str]
    train_labels: list[int]
    validation_texts: list[str]
    validation_labels: list[int]
    label_names: list[str]
    notes: list[str] = field(default_factory=list)  # what was detected (e.g. no header line)


@dataclass
class Records:
    """Rows of a data file as dicts, and how the file was read (``note``: None or what was detected)."""
    rows: list[dict]
    note: str | None = None


@dataclass
class LanguageModelData:
    train_blocks: torch.Tensor  # (n_train, block_size) token ids
    validation_blocks: torch.Tensor  # (n_validation, block_size)


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"no such data file: {path}")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not valid UTF-8 text: undecodable byte 0x{raw[error.start]:02x} "
                        f"at offset {error.start}; save it as UTF-8") from None


def read_records(path: Path, wanted: tuple[str | None, ...] = ()) -> Records:
    """Rows of a .csv, .tsv, .jsonl or .parquet file as dicts. ``wanted``: column names the caller
    asks for (a first row holding one of them is a header)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return Records(_read_parquet(path))
    text = _read_text(path)
    if suffix in (".jsonl", ".json"):
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DataError(f"{path} line {number} is not valid JSON: {error.msg}") from None
                if not isinstance(record, dict):
                    raise DataError(f"{path} line {number} is not a JSON object")
                records.append(record)
        return Records(records)
    if suffix not in (".csv", ".tsv"):
        raise DataError(f"{path}: unsupported data format {suffix or '(none)'}; use .csv, .tsv, .jsonl or .parquet")
    return _read_delimited(path, text, "\t" if suffix == ".tsv" else ",", wanted)


def _read_parquet(path: Path) -> list[dict]:
    import pandas as pd

    if not path.is_file():
        raise DataError(f"no such data file: {path}")
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path} is not a readable Parquet file: {error}") from None
    return frame.to_dict(orient="records")


def _read_delimited(path: Path, text: str, delimiter: str, wanted: tuple[str | None, ...]) -> Records:
    rows = [row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if row]
    if not rows:
        return Records([])
    width = len(rows[0])
    for number, row in enumerate(rows[1:], 2):
        if len(row) != width:
            raise DataError(f"{path} line {number} has {len(row)} fields, the first line {width} "
                            f"(separator {delimiter!r}; quote fields that contain it)")
    if _is_headerless(rows, wanted):
        label = 0 if len(set(r[0] for r in rows)) < len(set(r[1] for r in rows)) else 1
        names = ["label", "text"] if label == 0 else ["text", "label"]
        note = (f"{path.name}: no header line; read as two columns, column {1 - label + 1} the text and "
                f"column {label + 1} the label")
        return Records([dict(zip(names, row)) for row in rows], note)
    header = rows[0]
    return Records([dict(zip(header, row)) for row in rows[1:]])


def _is_headerless(rows: list[list[str]], wanted: tuple[str | None, ...]) -> bool:
    """A two-column file whose first row is data: it names no known or wanted column, and one of
    its values (the label) occurs again in the same column further down."""
    if len(rows[0]) != 2 or len(rows) < 2:
        return False
    names = {c.lower().strip() for c in rows[0]}
    if names & {*TEXT_COLUMNS, *LABEL_COLUMNS} or names & {w.lower() for w in wanted if w}:
        return False
    return any(rows[0][i] in {r[i] for r in rows[1:]} for i in (0, 1))


class ColumnError(DataError):
    """A text or label column that is not in the file, or that no known name finds; ``columns``:
    the file's columns, and ``what``: "text" or "label", for a caller that lets the user pick."""

    def __init__(self, message: str, columns: list[str], what: str):
        super().__init__(message)
        self.columns, self.what = columns, what


def _pick_column(records: list[dict], given: str | None, candidates: tuple[str, ...], what: str, path: Path) -> str:
    columns = list(records[0].keys())
    if given is not None:
        if given not in columns:
            raise ColumnError(f"{path} has no {what} column {given!r}; its columns are {columns}", columns, what)
        return given
    lowered = {c.lower().strip(): c for c in columns if c is not None}
    for name in candidates:
        if name in lowered:
            return lowered[name]
    raise ColumnError(f"{path} has no {what} column: looked for {list(candidates)}; its columns are {columns}; "
                      f"name it with the {what}_column option", columns, what)


def _texts_and_labels(path: Path, text_column: str | None, label_column: str | None,
                      notes: list[str], read: Records | None = None) -> tuple[list[str], list[str]]:
    """Texts and label strings of every row; ``read``: the file's records when already read."""
    read = read or read_records(path, (text_column, label_column))
    records = read.rows
    if read.note and read.note not in notes:
        notes.append(read.note)
    if not records:
        raise DataError(f"{path} is empty: no rows")
    text_key = _pick_column(records, text_column, TEXT_COLUMNS, "text", path)
    label_key = _pick_column(records, label_column, LABEL_COLUMNS, "label", path)
    texts, labels = [], []
    first_row = 2 if path.suffix.lower() in (".csv", ".tsv") and not read.note else 1
    for number, record in enumerate(records, first_row):
        text, label = record.get(text_key), record.get(label_key)
        if text is None or not str(text).strip():
            raise DataError(f"{path} row {number} has an empty {text_key!r}")
        if label is None or str(label).strip() == "":
            raise DataError(f"{path} row {number} has no {label_key!r} value")
        texts.append(str(text))
        labels.append(str(label).strip())
    return texts, labels


@dataclass
class DataPreview:
    """What a classification file holds, for a check before training: its columns, the text and
    label columns chosen (given or detected), the first rows, the count per class, and notes."""
    columns: list[str]
    text_column: str
    label_column: str
    head: list[dict]
    class_counts: dict[str, int]
    notes: list[str]


def preview_classification(path: str | Path, text_column: str | None = None, label_column: str | None = None,
                           rows: int = 5) -> DataPreview:
    """Read and check the whole file as training would (DataError on any problem) and describe it."""
    path = Path(path)
    read = read_records(path, (text_column, label_column))
    if not read.rows:
        raise DataError(f"{path} is empty: no rows")
    text_key = _pick_column(read.rows, text_column, TEXT_COLUMNS, "text", path)
    label_key = _pick_column(read.rows, label_column, LABEL_COLUMNS, "label", path)
    notes: list[str] = []
    _, labels = _texts_and_labels(path, text_key, label_key, notes, read)
    names = _label_names(labels, path)
    return DataPreview(list(read.rows[0]), text_key, label_key, read.rows[:rows],
                       {name: labels.count(name) for name in names}, notes)


def file_columns(path: str | Path) -> tuple[list[str], str | None, str | None]:
    """(columns, detected text column or None, detected label column or None) of a
    classification file as training reads it (DataError if it cannot be read)."""
    read = read_records(Path(path))
    if not read.rows:
        raise DataError(f"{path} is empty: no rows")

    def detected(candidates: tuple[str, ...], what: str) -> str | None:
        try:
            return _pick_column(read.rows, None, candidates, what, Path(path))
        except ColumnError:
            return None

    return [str(c) for c in read.rows[0]], detected(TEXT_COLUMNS, "text"), detected(LABEL_COLUMNS, "label")


def _label_names(labels: list[str], path: Path) -> list[str]:
    """Sorted class names; integer ids sort numerically. Fractions or a mix of numbers and
    names are errors."""
    distinct = sorted(set(labels))
    numeric = [label for label in distinct if _is_number(label)]
    if numeric and len(numeric) != len(distinct):
        names = [label for label in distinct if not _is_number(label)]
        raise DataError(f"{path}: labels mix numbers {numeric[:3]} and names {names[:3]}; use one or the other")
    if numeric:
        fractional = [label for label in numeric if float(label) != int(float(label))]
        if fractional:
            raise DataError(f"{path}: label {fractional[0]!r} is not an integer class id "
                            "(regression targets are not supported)")
        distinct = sorted(distinct, key=lambda label: int(float(label)))
    if len(distinct) < 2:
        raise DataError(f"{path}: only one class ({distinct[0]!r}); classification needs at least two")
    return distinct


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def resolve_dataset(train: str | Path, validation: str | Path | None) -> tuple[Path, Path | None]:
    """Paths of a dataset given by name ("demo-sentiment", "demo-corpus") or by file."""
    if str(train) in DEMO_DATASETS:
        demo_train, demo_validation = DEMO_DATASETS[str(train)]
        return demo_train, Path(validation) if validation else demo_validation
    return Path(train), Path(validation) if validation else None


def _split(count: int, seed: int) -> tuple[list[int], list[int]]:
    order = list(range(count))
    random.Random(seed).shuffle(order)
    cut = max(1, round(count * VALIDATION_FRACTION))
    return order[cut:], order[:cut]


def load_classification(train: str | Path, validation: str | Path | None = None, text_column: str | None = None,
                        label_column: str | None = None, seed: int = 0) -> ClassificationData:
    train_path, validation_path = resolve_dataset(train, validation)
    notes: list[str] = []
    texts, labels = _texts_and_labels(train_path, text_column, label_column, notes)
    names = _label_names(labels, train_path)
    if validation_path is not None:
        validation_texts, validation_labels = _texts_and_labels(validation_path, text_column, label_column, notes)
        unseen = sorted(set(validation_labels) - set(names))
        if unseen:
            raise DataError(f"{validation_path}: labels {unseen[:3]} never occur in the training data {train_path}")
    else:
        if len(texts) < 2:
            raise DataError(f"{train_path} has {len(texts)} row; a validation split needs at least 2")
        train_index, validation_index = _split(len(texts), seed)
        validation_texts, validation_labels = (
            [texts[i] for i in validation_index],
            [labels[i] for i in validation_index],
        )
        texts, labels = [texts[i] for i in train_index], [labels[i] for i in train_index]
    index = {name: i for i, name in enumerate(names)}
    return ClassificationData(texts, [index[label] for label in labels], validation_texts,
                              [index[label] for label in validation_labels], names, notes)


def language_model_text(path: Path) -> str:
    """A plain causal-LM file's text: a .txt file, or the text field of every JSONL / parquet row."""
    if path.suffix.lower() in (".jsonl", ".json", ".parquet"):
        records = read_records(path).rows
        if records and not any(c.lower() in TEXT_COLUMNS for c in map(str, records[0])):
            raise DataError(f"{path} has neither a text field ({', '.join(TEXT_COLUMNS)}) for plain text nor "
                            "'messages', 'prompt' and 'completion', or 'instruction' and 'output' for instruction "
                            f"data; its fields are {sorted(map(str, records[0]))}")
        key = _pick_column(records, None, TEXT_COLUMNS, "text", path) if records else "text"
        return "\n\n".join(str(r.get(key, "")) for r in records)
    return _read_text(path)


def text_blocks(path: str | Path, tokenizer, block_size: int) -> torch.Tensor:
    """A text file's tokens cut into (count, block_size) blocks (the rest dropped)."""
    path = Path(path)
    text = language_model_text(path)
    if not text.strip():
        raise DataError(f"{path} is empty: no text")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    count = len(ids) // block_size
    if count == 0:
        raise DataError(f"{path} has {len(ids)} tokens, shorter than one block of {block_size}; "
                        "add text or lower the sequence length")
    return torch.tensor(ids[: count * block_size]).view(count, block_size)


def load_language_model(train: str | Path, tokenizer, block_size: int, validation: str | Path | None = None,
                        seed: int = 0) -> LanguageModelData:
    train_path, validation_path = resolve_dataset(train, validation)

    def blocks(path: Path) -> torch.Tensor:
        return text_blocks(path, tokenizer, block_size)

    train_blocks = blocks(train_path)
    if validation_path is not None:
        return LanguageModelData(train_blocks, blocks(validation_path))
    if len(train_blocks) < 2:
        raise DataError(f"{train_path} makes only one block of {block_size} tokens; a validation split needs 2")
    train_index, validation_index = _split(len(train_blocks), seed)
    return LanguageModelData(train_blocks[train_index], train_blocks[validation_index])


def load_labelled_file(path: str | Path, label_names: list[str], text_column: str | None = None,
                       label_column: str | None = None) -> tuple[list[str], list[int], list[str]]:
    """(texts, class ids, notes) of a held-out classification file, read and checked exactly like
    training data (formats, column detection, errors); every label must be one of ``label_names``,
    the classes the run was trained on (a DataError names the unknown ones and the known ones).
    A demo dataset's name means its validation file."""
    if str(path) in DEMO_DATASETS:
        train_file, validation_file = DEMO_DATASETS[str(path)]
        path = validation_file or train_file
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such data file: {path}")
    notes: list[str] = []
    texts, labels = _texts_and_labels(path, text_column, label_column, notes)
    unknown = sorted(set(labels) - set(label_names))
    if unknown:
        raise DataError(f"{path}: label{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown[:5]))} "
                        f"{'are' if len(unknown) > 1 else 'is'} not among the run's classes {label_names}")
    index = {name: i for i, name in enumerate(label_names)}
    return texts, [index[label] for label in labels], notes


def read_texts(path: str | Path, text_column: str | None = None) -> list[str]:
    """The texts of a file to predict: a classification file's text column (labels not needed),
    or one text per line of a .txt file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such data file: {path}")
    if path.suffix.lower() == ".txt":
        return [line for line in _read_text(path).splitlines() if line.strip()]
    records = read_records(path, (text_column,)).rows
    if not records:
        raise DataError(f"{path} is empty: no rows")
    key = _pick_column(records, text_column, TEXT_COLUMNS, "text", path)
    return [str(record.get(key) or "") for record in records]
