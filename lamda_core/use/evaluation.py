"""Scoring a run on a held-out file: classification reports (accuracy, macro F1, per-class
precision / recall / F1 / support, the confusion matrix, the most confidently wrong examples) and
causal-LM perplexity, base model against fine-tuned (on conversations also exact-match
accuracy: chat_evaluation.py). The model passes are inference.py's, the
same ones training's own evaluation runs."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..data.reading import DEMO_DATASETS
from ..training.metrics import accuracy, confusion_matrix, macro_f1, per_class_scores
from ..training.passes import PerplexityPair, language_model_loss
from .chat_evaluation import ChatReport
from .inference import RunModel, load_base, load_run

TOP_WRONG = 20


@dataclass
class ClassificationReport:
    """One run on one labelled file. confusion[t][p]: true class t predicted as p; wrong: the
    most confidently wrong examples, highest predicted probability first; rows: every example's
    text, true and predicted label and probabilities (the CSV)."""

    run: str
    data: str
    label_names: list[str]
    accuracy: float
    macro_f1: float
    per_class: list[dict]
    confusion: list[list[int]]
    wrong: list[dict]
    rows: list[dict] = field(repr=False)
    notes: list[str] = field(default_factory=list)

    @property
    def examples(self) -> int:
        return len(self.rows)

    def summary(self) -> dict:
        """Everything but the per-example rows (the JSON file and the side-by-side table)."""
        data = asdict(self)
        data.pop("rows")
        return {**data, "examples": self.examples}

    def rows_csv(self) -> str:
        return write_csv(self.rows)

    def wrong_csv(self) -> str:
        return write_csv(self.wrong) if self.wrong else "text,true,predicted,probability\n"


def prediction_rows(texts: list[str], probabilities: torch.Tensor, label_names: list[str]) -> list[dict]:
    """Per text: the predicted label, its probability and every label's probability p(label)."""
    return [{"text": text, "predicted": label_names[int(p.argmax())], "probability": round(float(p.max()), 6),
             **{f"p({name})": round(float(v), 6) for name, v in zip(label_names, p)}}
            for text, p in zip(texts, probabilities)]


def write_csv(rows: list[dict], path: str | Path | None = None) -> str:
    """``rows`` as CSV text (columns from the first row), also written to ``path`` when given."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    if path is not None:
        Path(path).write_text(out.getvalue())
    return out.getvalue()


def classification_report(run: str, data: str, texts: list[str], labels: list[int], probabilities: torch.Tensor,
                          label_names: list[str], top_wrong: int = TOP_WRONG) -> ClassificationReport:
    """The report of predictions ``probabilities`` (n, K) against true class ids ``labels``."""
    k = len(label_names)
    predicted = probabilities.argmax(-1).tolist()
    rows = [{"text": row.pop("text"), "true": label_names[t], **row}
            for row, t in zip(prediction_rows(texts, probabilities, label_names), labels)]
    wrong = sorted((r for r in rows if r["true"] != r["predicted"]), key=lambda r: -r["probability"])[:top_wrong]
    per_class = [{"label": name, **scores} for name, scores in zip(label_names, per_class_scores(predicted, labels, k))]
    return ClassificationReport(run, data, label_names, accuracy(predicted, labels), macro_f1(predicted, labels, k),
                                per_class, confusion_matrix(predicted, labels, k),
                                [{key: r[key] for key in ("text", "true", "predicted", "probability")} for r in wrong],
                                rows)


def evaluate_classifier(loaded: RunModel, path: str | Path, text_column: str | None = None,
                        label_column: str | None = None, progress=None) -> ClassificationReport:
    """Score a loaded classification run on a labelled file (read like training data; its labels
    must be the run's classes)."""
    from ..data.reading import load_labelled_file

    texts, labels, notes = load_labelled_file(path, loaded.label_names, text_column, label_column)
    report = classification_report(loaded.name, Path(path).name, texts, labels,
                                   loaded.probabilities(texts, progress=progress), loaded.label_names)
    report.notes = notes
    return report


@dataclass
class PerplexityReport(PerplexityPair):
    """A causal-LM run and its base model on one text file (blocks of the run's seq_len tokens)."""

    run: str
    data: str
    blocks: int
    base_loss: float
    fine_tuned_loss: float

    def summary(self) -> dict:
        return {**asdict(self), "base_perplexity": self.base_perplexity,
                "fine_tuned_perplexity": self.fine_tuned_perplexity}


def evaluate_language_model(folder: str | Path, loaded: RunModel, path: str | Path, progress=None) -> PerplexityReport:
    from ..data.reading import text_blocks

    blocks = text_blocks(path, loaded.tokenizer, loaded.seq_len)
    base = load_base(folder)
    return PerplexityReport(loaded.name, Path(path).name, len(blocks), language_model_loss(base.model, blocks),
                            language_model_loss(loaded.model, blocks, progress=progress))


def evaluate_run(folder: str | Path, path: str | Path, text_column: str | None = None, label_column: str | None = None,
                 progress=None, loaded: RunModel | None = None, base: RunModel | None = None):
    """A ClassificationReport, a ChatReport (a causal-LM run on conversations: chat_evaluation.py)
    or a PerplexityReport (on plain text) of the run in ``folder`` on ``path`` (``loaded`` /
    ``base``: the run / its base model already loaded, e.g. cached by the app)."""
    from ..data.chat import is_chat_file
    from ..data.reading import resolve_dataset
    from .chat_evaluation import evaluate_chat

    loaded = loaded or load_run(folder)
    if loaded.task == "classification":
        return evaluate_classifier(loaded, path, text_column, label_column, progress)
    if str(path) in DEMO_DATASETS:  # a demo's validation file (its train file when it has none)
        train, validation = resolve_dataset(path, None)
        path = validation or train
    if is_chat_file(path):
        return evaluate_chat(loaded, base or load_base(folder), path, progress)
    return evaluate_language_model(folder, loaded, path, progress)


def side_by_side(reports: list) -> list[dict]:
    """One row per run: its held-out scores (accuracy, macro F1 and per-class F1, or perplexity)."""
    rows = []
    for r in reports:
        if isinstance(r, ClassificationReport):
            rows.append({"run": r.run, "examples": r.examples, "accuracy": r.accuracy, "macro F1": r.macro_f1,
                         **{f"F1 {c['label']}": c["f1"] for c in r.per_class}})
        elif isinstance(r, ChatReport):
            rows.append({"run": r.run, "examples": r.examples, "exact match": r.exact_match,
                         "base exact match": r.base_exact_match, "perplexity": r.fine_tuned_perplexity,
                         "base perplexity": r.base_perplexity})
        else:
            rows.append({"run": r.run, "blocks": r.blocks, "base perplexity": r.base_perplexity,
                         "fine-tuned perplexity": r.fine_tuned_perplexity})
    return rows


def write_report(report, json_path: str | None = None, csv_path: str | None = None) -> list[str]:
    """Write a report's summary as JSON and its per-example rows as CSV; the paths written."""
    written = []
    if json_path:
        Path(json_path).write_text(json.dumps(report.summary(), indent=1))
        written.append(json_path)
    if csv_path and isinstance(report, (ClassificationReport, ChatReport)):
        write_csv(report.rows, csv_path)
        written.append(csv_path)
    return written
