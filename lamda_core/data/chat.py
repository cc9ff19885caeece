"""Instruction data for causal LMs: conversations rendered with the tokenizer's own chat template,
the loss on the assistant's tokens only.

Accepted rows (``.jsonl`` or ``.parquet``), each read into one conversation, a list of
``{"role", "content"}`` messages:
  messages                     a list of {role, content} (the OpenAI / TRL conversational format);
  prompt / completion          strings, or lists of messages (TRL's prompt-completion format):
                               [user: prompt, assistant: completion];
  instruction / input / output the Alpaca fields: [user: instruction + "\\n\\n" + input, assistant: output].
A conversation ends with an assistant message; roles are system, user and assistant.

Rendering (``encode_conversation``): the conversation is cut at each assistant turn into
segments; segment k is the template's text from the end of segment k-1 up to where that turn's
answer starts (``apply_chat_template(messages[:i], add_generation_prompt=True)``), then the answer
up to the end of its turn (``apply_chat_template(messages[:i + 1])``). Each segment is tokenized on
its own, so the prompt tokens are exactly those that generation feeds the model, and the labels are
the ids on answer segments and -100 (ignored) elsewhere:

    input_ids: [ p_0 ... | a_0 ... <|im_end|> \\n | p_1 ... | a_1 ... ]      (length <= max_len)
    labels:    [ -100 ...| a_0 ... <|im_end|> \\n | -100 ...| a_1 ... ]

Examples longer than max_len are truncated (counted in a note); one with no answer token left is
dropped (also noted).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import DataError

ROLES = ("system", "user", "assistant")
IGNORE_INDEX = -100  # labels that CrossEntropyLoss skips
CHAT_SUFFIXES = (".jsonl", ".json", ".parquet")
FORMATS = {"messages": ("messages",), "prompt-completion": ("prompt", "completion"),
           "alpaca": ("instruction", "output")}


def row_format(record: dict) -> str | None:
    """Which accepted format a row is in ("messages", "prompt-completion", "alpaca"), or None."""
    for name, keys in FORMATS.items():
        if all(key in record for key in keys):
            return name
    return None


def is_chat_file(path: str | Path) -> bool:
    """Whether ``path`` is an instruction file (its first row in an accepted format); plain text
    (.txt, or rows with a text field) is not."""
    from .reading import read_records

    path = Path(path)
    if path.suffix.lower() not in CHAT_SUFFIXES or not path.is_file():
        return False
    rows = read_records(path).rows
    return bool(rows) and row_format(rows[0]) is not None


def _as_messages(value, where: str, what: str) -> list[dict]:
    """A list of {role, content} dicts from a row field (a Parquet column gives numpy arrays)."""
    if isinstance(value, str) and what != "messages":
        return [{"role": "user" if what == "prompt" else "assistant", "content": value}]
    if hasattr(value, "tolist") and not isinstance(value, dict):
        value = value.tolist()
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: {what!r} must be a non-empty list of {{role, content}} messages "
                        f"or a string, got {type(value).__name__}")
    messages = []
    for k, message in enumerate(value):
        if not isinstance(message, dict):
            raise DataError(f"{where}: message {k + 1} of {what!r} is not a {{role, content}} object")
        role, content = message.get("role"), message.get("content")
        if role is None:
            raise DataError(f"{where}: message {k + 1} of {what!r} has no 'role' (one of {', '.join(ROLES)})")
        if role not in ROLES:
            raise DataError(f"{where}: message {k + 1} has role {role!r}; roles are {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise DataError(f"{where}: message {k + 1} ({role}) has no text 'content'")
        messages.append({"role": role, "content": content})
    return messages


def conversation(record: dict, where: str) -> list[dict]:
    """The row's conversation as messages, checked: it ends with a non-empty assistant answer and
    every user message has text. ``where``: "FILE line N" for the error messages."""
    kind = row_format(record)
    if kind == "messages":
        messages = _as_messages(record["messages"], where, "messages")
    elif kind == "prompt-completion":
        messages = _as_messages(record["prompt"], where, "prompt") + _as_messages(record["completion"], where,
                                                                                  "completion")
    elif kind == "alpaca":
        extra = str(record.get("input") or "").strip()
        instruction = str(record["instruction"] or "")
        messages = [{"role": "user", "content": f"{instruction}\n\n{extra}" if extra else instruction},
                    {"role": "assistant", "content": str(record["output"] or "")}]
    else:
        raise DataError(f"{where} is not an instruction example: it needs 'messages', 'prompt' and 'completion', "
                        f"or 'instruction' and 'output'; its fields are {sorted(map(str, record))}")
    if messages[-1]["role"] != "assistant":
        raise DataError(f"{where}: the conversation ends with a {messages[-1]['role']} message; "
                        "it must end with the assistant's answer")
    for message in messages:
        if message["role"] != "system" and not message["content"].strip():
            raise DataError(f"{where}: an empty {message['role']} message"
                            + (" (the answer to learn)" if message["role"] == "assistant" else ""))
    return messages


def read_conversations(path: str | Path) -> list[list[dict]]:
    """Every row of an instruction file as a checked conversation (DataError naming the line)."""
    from .reading import read_records

    path = Path(path)
    if path.suffix.lower() not in CHAT_SUFFIXES:
        raise DataError(f"{path}: instruction data is .jsonl or .parquet (plain text for causal-lm is .txt)")
    rows = read_records(path).rows
    if not rows:
        raise DataError(f"{path} is empty: no rows")
    return [conversation(row, f"{path.name} line {number}") for number, row in enumerate(rows, 1)]


@dataclass
class ChatExample:
    """One tokenized conversation: input_ids and labels of equal length (labels -100 off the answers)."""
    input_ids: list[int]
    labels: list[int]

    @property
    def answer_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def check_chat_template(tokenizer) -> None:
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise DataError("the model's tokenizer has no chat template, so instruction data cannot be rendered; "
                        "use an instruct model (e.g. 'smollm2') or plain text (.txt)")


def render_prompt(tokenizer, messages: list[dict]) -> str:
    """The template's text that asks the model for the next assistant turn after ``messages``."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode_conversation(tokenizer, messages: list[dict], max_len: int) -> tuple[ChatExample, bool]:
    """(the example, whether it was truncated): segments tokenized one by one (module docstring)."""
    check_chat_template(tokenizer)
    ids: list[int] = []
    labels: list[int] = []
    done = ""  # template text already tokenized
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render_prompt(tokenizer, messages[:i])
        turn = tokenizer.apply_chat_template(messages[:i + 1], tokenize=False)
        if not prompt.startswith(done) or not turn.startswith(prompt):
            raise DataError("the chat template does not render a conversation as a prefix of its continuation; "
                            "the answer tokens cannot be located")
        for text, learn in ((prompt[len(done):], False), (turn[len(prompt):], True)):
            piece = tokenizer(text, add_special_tokens=False)["input_ids"]
            ids += piece
            labels += piece if learn else [IGNORE_INDEX] * len(piece)
        done = turn
    truncated = len(ids) > max_len
    return ChatExample(ids[:max_len], labels[:max_len]), truncated


@dataclass
class ChatData:
    train: list[ChatExample]
    validation: list[ChatExample]
    notes: list[str] = field(default_factory=list)


def encode_file(path: Path, tokenizer, max_len: int, notes: list[str]) -> list[ChatExample]:
    """A file's conversations as examples; truncations and dropped examples go into ``notes``."""
    examples, cut, dropped = [], 0, 0
    conversations = read_conversations(path)
    for messages in conversations:
        example, truncated = encode_conversation(tokenizer, messages, max_len)
        cut += truncated
        if example.answer_tokens == 0:
            dropped += 1
        else:
            examples.append(example)
    if cut:
        notes.append(f"{path.name}: {cut} of {len(conversations)} examples are longer than {max_len} tokens and "
                     "were truncated" + (f"; {dropped} lost their whole answer and are left out" if dropped else ""))
    if not examples:
        raise DataError(f"{path}: no example keeps any answer token within {max_len} tokens; raise the sequence length")
    return examples


def load_chat(train: str | Path, tokenizer, max_len: int, validation: str | Path | None = None,
              seed: int = 0) -> ChatData:
    """Train and validation examples (10% of the train file, seeded, when no validation file)."""
    from .reading import VALIDATION_FRACTION

    check_chat_template(tokenizer)
    notes: list[str] = []
    examples = encode_file(Path(train), tokenizer, max_len, notes)
    if validation is not None:
        return ChatData(examples, encode_file(Path(validation), tokenizer, max_len, notes), notes)
    if len(examples) < 2:
        raise DataError(f"{train} has {len(examples)} example; a validation split needs at least 2")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    cut = max(1, round(len(order) * VALIDATION_FRACTION))
    return ChatData([examples[i] for i in order[cut:]], [examples[i] for i in order[:cut]], notes)


def pad_batch(examples: list[ChatExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded (b, longest) input_ids, attention_mask and labels (-100 on padding)."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def check_language_model_text(train: str | Path, validation: str | Path | None = None) -> None:
    """The causal-LM files exist and hold text, or every row of an instruction file is a checked
    conversation (tokenizing waits for the trainer)."""
    from .reading import language_model_text, resolve_dataset

    for path in filter(None, resolve_dataset(train, validation)):
        if is_chat_file(path):
            read_conversations(path)
        elif not language_model_text(path).strip():
            raise DataError(f"{path} is empty: no text")
