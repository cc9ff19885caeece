"""Classification scores over predicted and true class ids (0..K-1)."""
from __future__ import annotations


def accuracy(predictions: list[int], labels: list[int]) -> float:
    return sum(p == t for p, t in zip(predictions, labels)) / len(labels)


def confusion_matrix(predictions: list[int], labels: list[int], classes: int) -> list[list[int]]:
    """C[t][p]: examples of true class t predicted as p (rows: truth, columns: prediction)."""
    matrix = [[0] * classes for _ in range(classes)]
    for p, t in zip(predictions, labels):
        matrix[t][p] += 1
    return matrix


def per_class_scores(predictions: list[int], labels: list[int], classes: int) -> list[dict]:
    """Per class k: precision TP/(TP+FP), recall TP/(TP+FN), F1 2TP/(2TP+FP+FN) (0 where the
    denominator is 0) and support (true examples of k)."""
    matrix = confusion_matrix(predictions, labels, classes)
    scores = []
    for k in range(classes):
        tp = matrix[k][k]
        fp = sum(matrix[t][k] for t in range(classes)) - tp
        fn = sum(matrix[k]) - tp
        scores.append({"precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tp / (tp + fn) if tp + fn else 0.0,
                       "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0, "support": tp + fn})
    return scores


def macro_f1(predictions: list[int], labels: list[int], classes: int) -> float:
    """Mean over classes of F1_k = 2 TP_k / (2 TP_k + FP_k + FN_k) (0 for a class never seen or predicted)."""
    return sum(s["f1"] for s in per_class_scores(predictions, labels, classes)) / classes


def percent_text(fraction: float, examples: int) -> str:
    """``fraction`` as a percentage with the decimals ``examples`` can support: one example moves
    it by 100 / examples points, so 6 examples get none ("83%") and 1,000 get one ("87.2%")."""
    import math

    decimals = max(0, math.ceil(math.log10(max(examples, 1) / 100)))
    return f"{100 * fraction:.{decimals}f}%"
