"""Classification scores over predicted and true class ids."""
from __future__ import annotations


def accuracy(predictions: list[int], labels: list[int]) -> float:
    return sum(p == t for p, t in zip(predictions, labels)) / len(labels)


def macro_f1(predictions: list[int], labels: list[int], classes: int) -> float:
    """Mean over classes of F1_k = 2 TP_k / (2 TP_k + FP_k + FN_k) (0 for a class never seen or predicted)."""
    scores = []
    for k in range(classes):
        tp = sum(p == k and t == k for p, t in zip(predictions, labels))
        fp = sum(p == k and t != k for p, t in zip(predictions, labels))
        fn = sum(p != k and t == k for p, t in zip(predictions, labels))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return sum(scores) / classes
