"""The batched forward passes that training's evaluation, ``lamda evaluate`` / ``predict``, the
app and comparisons all share (one place each loss is computed).

    classification: texts -> logits (n, K), tokenized like training (truncated at the run's
        seq_len), in batches of similar lengths (less padding), returned in the input order;
    causal LM: (n, block) token blocks -> mean next-token loss; perplexity = exp(loss);
    conversations: the loss on the answer tokens only (labels -100 elsewhere, data/chat.py).
"""
from __future__ import annotations

import math

import torch
from torch import nn

EVAL_BATCH = 64  # texts per forward pass
LM_EVAL_BATCH = 16  # blocks per forward pass


@torch.no_grad()
def classification_logits(model: nn.Module, tokenizer, texts: list[str], seq_len: int, batch_size: int = EVAL_BATCH,
                          progress=None) -> torch.Tensor:
    """(len(texts), K) float32 logits. Texts go through in batches of similar length (sorted by
    characters), so a long file pads little; ``progress(done, total)`` after each batch."""
    device = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    logits = [None] * len(texts)
    was_training = model.training
    model.eval()
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        encoded = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=seq_len,
                            return_tensors="pt").to(device)
        for i, row in zip(rows, model(**encoded).logits.float().cpu()):
            logits[i] = row
        if progress is not None:
            progress(min(start + batch_size, len(order)), len(order))
    model.train(was_training)
    return torch.stack(logits) if logits else torch.empty(0, 0)


@torch.no_grad()
def language_model_loss(model: nn.Module, blocks: torch.Tensor, batch_size: int = LM_EVAL_BATCH,
                        progress=None) -> float:
    """Mean next-token cross-entropy over (n, block) token blocks (each block weighted equally)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = 0.0
    for start in range(0, len(blocks), batch_size):
        chunk = blocks[start:start + batch_size].to(device)
        total += float(model(input_ids=chunk, labels=chunk).loss) * len(chunk)
        if progress is not None:
            progress(min(start + batch_size, len(blocks)), len(blocks))
    model.train(was_training)
    return total / len(blocks)


@torch.no_grad()
def answer_losses(model: nn.Module, examples: list, pad_id: int, batch_size: int = LM_EVAL_BATCH,
                  progress=None) -> list[tuple[float, int]]:
    """Per chat example (chat_data.ChatExample): (summed next-token loss over its answer tokens,
    answer token count). Batches are right-padded; labels -100 off the answers."""
    from ..data.chat import pad_batch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(examples), batch_size):
        batch = {k: v.to(device) for k, v in pad_batch(examples[start:start + batch_size], pad_id).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        targets = batch["labels"][:, 1:]
        losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), targets, reduction="none",
                                                   ignore_index=-100)
        counts = (targets != -100).sum(1)
        out += [(float(total), int(n)) for total, n in zip(losses.sum(1), counts)]
        if progress is not None:
            progress(min(start + batch_size, len(examples)), len(examples))
    model.train(was_training)
    return out


def answer_loss(model: nn.Module, examples: list, pad_id: int, progress=None) -> float:
    """Mean next-token loss over every answer token of the chat examples (token-weighted)."""
    pairs = answer_losses(model, examples, pad_id, progress=progress)
    return sum(total for total, _ in pairs) / max(1, sum(n for _, n in pairs))


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50))


class PerplexityPair:
    """The perplexities of a report holding ``base_loss`` and ``fine_tuned_loss`` (mean token losses)."""

    base_loss: float
    fine_tuned_loss: float

    @property
    def base_perplexity(self) -> float:
        return perplexity(self.base_loss)

    @property
    def fine_tuned_perplexity(self) -> float:
        return perplexity(self.fine_tuned_loss)
