"""Writes chat_train.jsonl / chat_validation.jsonl, the demo instruction data ("demo-chat"): each
review of the sentiment demo's train file (400), and the first VALIDATION_PER_CLASS of each class of
its validation file (kept small so that scoring greedy answers takes seconds), as a question in the
conversational `messages` format whose answer is the label word. Run: ``python make_chat.py``."""
import csv
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUESTION = "Is this review positive or negative? Answer with one word.\n\n{text}"
VALIDATION_PER_CLASS = 10

for split in ("train", "validation"):
    with open(HERE / f"sentiment_{split}.tsv", newline="") as source:
        rows = list(csv.DictReader(source, delimiter="\t"))
    if split == "validation":
        rows = [r for r in rows if sum(o["label"] == r["label"] for o in rows[:rows.index(r) + 1])
                <= VALIDATION_PER_CLASS]
    with open(HERE / f"chat_{split}.jsonl", "w") as out:
        for row in rows:
            messages = [{"role": "user", "content": QUESTION.format(text=row["sentence"])},
                        {"role": "assistant", "content": row["label"]}]
            out.write(json.dumps({"messages": messages}) + "\n")
