"""Scoring an instruction-tuned causal-LM run on a conversation file: the perplexity of the
reference answers (assistant tokens only) and the exact-match accuracy of the greedy answer, for
the base model and the fine-tuned one side by side.

Per conversation, the prompt is every message before the last, rendered with the chat template
and a generation prompt; the reference is the last (assistant) message. Exact match compares
``normalize(answer) == normalize(reference)``: case folded, whitespace collapsed, punctuation
stripped from both ends ("Positive." matches "positive"; "not positive" does not).
"""
from __future__ import annotations

import string
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..data.chat import encode_conversation, read_conversations, render_prompt
from ..training.passes import PerplexityPair, answer_losses
from .inference import RunModel

TOP_WORST = 20
GENERATION_BATCH = 16
EXTRA_NEW_TOKENS = 8  # room beyond the longest reference of a batch, so a longer answer shows as wrong
MAX_NEW_TOKENS = 256


def normalize(text: str) -> str:
    """Lower case, inner whitespace collapsed to one space, punctuation and whitespace stripped at both ends."""
    return " ".join(text.lower().split()).strip(string.punctuation + string.whitespace)


def exact_match(answer: str, reference: str) -> bool:
    return normalize(answer) == normalize(reference)


@torch.no_grad()
def greedy_answers(loaded: RunModel, conversations: list[list[dict]], progress=None) -> list[str]:
    """The greedy answer to each conversation's prompt (all messages but the last), batched with
    left padding; at most the longest reference of the batch plus EXTRA_NEW_TOKENS new tokens."""
    tokenizer, model = loaded.tokenizer, loaded.model
    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues every row from its last real token
    answers: list[str] = []
    try:
        for start in range(0, len(conversations), GENERATION_BATCH):
            chunk = conversations[start:start + GENERATION_BATCH]
            prompts = [render_prompt(tokenizer, c[:-1]) for c in chunk]
            longest = max(len(tokenizer(c[-1]["content"], add_special_tokens=False)["input_ids"]) for c in chunk)
            encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            out = model.generate(**encoded, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                                 max_new_tokens=min(MAX_NEW_TOKENS, longest + EXTRA_NEW_TOKENS))
            answers += tokenizer.batch_decode(out[:, encoded["input_ids"].shape[1]:], skip_special_tokens=True)
            if progress is not None:
                progress(min(start + GENERATION_BATCH, len(conversations)), len(conversations))
    finally:
        tokenizer.padding_side = side
    return [answer.strip() for answer in answers]


@dataclass
class ChatReport(PerplexityPair):
    """A causal-LM run and its base model on one conversation file. worst: the TOP_WORST examples
    with the highest fine-tuned loss per answer token (wrong answers first); rows: every example's
    prompt, reference, both answers, matches and losses (the CSV)."""

    run: str
    data: str
    base_loss: float
    fine_tuned_loss: float
    base_exact_match: float
    exact_match: float
    truncated: int
    worst: list[dict]
    rows: list[dict] = field(repr=False)

    @property
    def examples(self) -> int:
        return len(self.rows)

    def summary(self) -> dict:
        data = asdict(self)
        data.pop("rows")
        return {**data, "examples": self.examples, "base_perplexity": self.base_perplexity,
                "fine_tuned_perplexity": self.fine_tuned_perplexity}


def evaluate_chat(loaded: RunModel, base: RunModel, path: str | Path, progress=None) -> ChatReport:
    """Score ``loaded`` (the fine-tuned run) and ``base`` on the conversations of ``path``
    (answers truncated at the run's seq_len for the loss; generation sees the whole prompt)."""
    conversations = read_conversations(path)
    encoded = [encode_conversation(loaded.tokenizer, c, loaded.seq_len) for c in conversations]
    examples = [example for example, _ in encoded]
    pad = loaded.tokenizer.pad_token_id

    def losses(model: RunModel) -> list[tuple[float, int]]:
        return answer_losses(model.model, examples, pad)

    tuned, untuned = losses(loaded), losses(base)
    answers = greedy_answers(loaded, conversations, progress)
    base_answers = greedy_answers(base, conversations)
    rows = []
    for c, answer, base_answer, (total, n), (base_total, _) in zip(conversations, answers, base_answers, tuned,
                                                                   untuned):
        rows.append({"prompt": c[-2]["content"] if len(c) > 1 else "", "reference": c[-1]["content"],
                     "answer": answer, "correct": exact_match(answer, c[-1]["content"]),
                     "base_answer": base_answer, "base_correct": exact_match(base_answer, c[-1]["content"]),
                     "answer_loss": round(total / max(1, n), 6), "base_answer_loss": round(base_total / max(1, n), 6)})

    def mean_loss(pairs):
        return sum(t for t, _ in pairs) / max(1, sum(n for _, n in pairs))

    worst = sorted(rows, key=lambda r: (r["correct"], -r["answer_loss"]))[:TOP_WORST]
    return ChatReport(loaded.name, Path(path).name, mean_loss(untuned), mean_loss(tuned),
                      sum(r["base_correct"] for r in rows) / len(rows), sum(r["correct"] for r in rows) / len(rows),
                      sum(truncated for _, truncated in encoded), worst, rows)
