"""The embedded SmolLM2 and instruction data: the cached conversion, the assistant-only loss mask,
every accepted format, bad files, exact match, and scoring greedy answers."""
import json
import shutil

import pytest
import torch

import lamda_core as lc
from lamda_core.data.chat import (
    IGNORE_INDEX,
    encode_conversation,
    load_chat,
    pad_batch,
    read_conversations,
    render_prompt,
)
from lamda_core.errors import DataError
from lamda_core.models import embedded_llm
from lamda_core.use.chat_evaluation import evaluate_chat, exact_match, normalize
from lamda_core.use.inference import RunModel

pytestmark = pytest.mark.xdist_group("smollm2")  # one loaded SmolLM2 for the whole file

CONVERSATION = [{"role": "system", "content": "You answer in one word."},
                {"role": "user", "content": "Is this review positive or negative? A warm, funny film."},
                {"role": "assistant", "content": "positive"}]


@pytest.fixture(scope="module")
def smollm2():
    model, tokenizer = lc.load_model("smollm2", task="causal-lm")
    return model.eval(), tokenizer


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_the_embedded_llm_is_a_30_layer_llama_with_a_chat_template(smollm2):
    model, tokenizer = smollm2
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.num_hidden_layers == 30
    assert 134e6 < sum(p.numel() for p in model.parameters()) < 135e6
    assert "<|im_start|>assistant" in render_prompt(tokenizer, CONVERSATION[:2])
    assert len(lc.scan_spectra("smollm2", top_k=4).matrices) == 210


def test_the_conversion_is_cached_and_a_damaged_cache_is_rebuilt(smollm2, tmp_path, monkeypatch):
    folder = embedded_llm.embedded_llm_path()
    weights = folder / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert embedded_llm.embedded_llm_path() == folder and weights.stat().st_mtime_ns == stamp  # reused as it is
    monkeypatch.setenv("LAMDA_CACHE", str(tmp_path))  # a copy to damage, so other tests keep theirs
    copy = embedded_llm.cache_folder()
    shutil.copytree(folder, copy)
    assert embedded_llm.cache_problem(copy) is None
    with open(copy / "model.safetensors", "r+b") as handle:  # same size, garbage header
        handle.write(b"\xff" * 16)
    assert "damaged" in embedded_llm.cache_problem(copy)
    (copy / "tokenizer.json").write_text("{}")
    assert "tokenizer.json has" in embedded_llm.cache_problem(copy)
    notes = []
    assert embedded_llm.embedded_llm_path(notify=notes.append) == copy
    assert embedded_llm.cache_problem(copy) is None and "rebuilding" in notes[0]
    model, tokenizer = lc.load_model("smollm2", task="causal-lm")
    original = smollm2[0].state_dict()["model.layers.0.self_attn.q_proj.weight"]
    assert torch.equal(model.state_dict()["model.layers.0.self_attn.q_proj.weight"], original)


def test_the_loss_is_on_the_answer_tokens_only(smollm2):
    tokenizer = smollm2[1]
    example, truncated = encode_conversation(tokenizer, CONVERSATION, 512)
    prompt_ids = tokenizer(render_prompt(tokenizer, CONVERSATION[:2]), add_special_tokens=False)["input_ids"]
    n = len(prompt_ids)
    assert not truncated and example.input_ids[:n] == prompt_ids  # exactly what generation feeds the model
    assert example.labels[:n] == [IGNORE_INDEX] * n
    assert example.labels[n:] == example.input_ids[n:]
    assert tokenizer.decode(example.input_ids[n:]) == "positive<|im_end|>\n"
    full = tokenizer(tokenizer.apply_chat_template(CONVERSATION, tokenize=False), add_special_tokens=False)
    assert example.input_ids == full["input_ids"]


def test_every_assistant_turn_is_learned_and_nothing_else(smollm2):
    tokenizer = smollm2[1]
    turns = CONVERSATION + [{"role": "user", "content": "And this one? Dull."}, {"role": "assistant", "content": "no"}]
    example, _ = encode_conversation(tokenizer, turns, 512)
    learned = tokenizer.decode([i for i, label in zip(example.input_ids, example.labels) if label != IGNORE_INDEX])
    assert learned == "positive<|im_end|>\nno<|im_end|>\n"


def test_every_accepted_format_gives_the_same_tokens(smollm2, tmp_path):
    import pandas as pd

    tokenizer = smollm2[1]
    question, answer = "Name a colour.", "Blue."
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    rows = {"messages": {"messages": messages},
            "prompt-completion": {"prompt": question, "completion": answer},
            "prompt-completion lists": {"prompt": messages[:1], "completion": messages[1:]},
            "alpaca": {"instruction": question, "input": "", "output": answer}}
    encoded = {}
    for name, row in rows.items():
        conversations = read_conversations(write_jsonl(tmp_path / f"{name}.jsonl", [row]))
        encoded[name] = encode_conversation(tokenizer, conversations[0], 128)[0]
    pd.DataFrame([{"messages": messages}]).to_parquet(tmp_path / "messages.parquet")
    encoded["parquet"] = encode_conversation(tokenizer, read_conversations(tmp_path / "messages.parquet")[0], 128)[0]
    first = encoded["messages"]
    assert all(e == first for e in encoded.values()), {k: len(e.input_ids) for k, e in encoded.items()}
    with_input = read_conversations(write_jsonl(tmp_path / "input.jsonl", [{"instruction": "Translate.",
                                                                             "input": "chat", "output": "cat"}]))
    assert with_input[0][0]["content"] == "Translate.\n\nchat"


@pytest.mark.parametrize("row, message", [
    ({"messages": [{"content": "hi"}, {"role": "assistant", "content": "yo"}]}, "line 1: message 1 of 'messages' "
                                                                                "has no 'role'"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]},
     "an empty assistant message (the answer to learn)"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "ends with a user message"),
    ({"messages": [{"role": "bot", "content": "hi"}]}, "role 'bot'"),
    ({"messages": "hello"}, "must be a non-empty list"),
    ({"question": "hi", "answer": "yo"}, "needs 'messages', 'prompt' and 'completion', or 'instruction' and 'output'"),
])
def test_bad_instruction_files_are_refused_by_name(tmp_path, row, message):
    path = write_jsonl(tmp_path / "chat.jsonl", [{"messages": [{"role": "user", "content": "ok"},
                                                                {"role": "assistant", "content": "fine"}]}, row])
    with pytest.raises(DataError, match="chat.jsonl line 2") as caught:
        read_conversations(path)
    assert message.replace("line 1: ", "") in str(caught.value)


def test_a_tokenizer_without_a_chat_template_is_refused_with_what_to_do(tmp_path):
    _, tokenizer = lc.load_model("tiny-llama", task="causal-lm")
    with pytest.raises(DataError, match="no chat template.*'smollm2'"):
        load_chat(write_jsonl(tmp_path / "c.jsonl", [{"prompt": "a", "completion": "b"}] * 4), tokenizer, 64)


def test_long_examples_are_truncated_with_a_note_and_padding_is_ignored(smollm2, tmp_path):
    tokenizer = smollm2[1]
    long = {"prompt": "word " * 200, "completion": "done"}
    short = {"prompt": "Say done.", "completion": "done"}
    data = load_chat(write_jsonl(tmp_path / "c.jsonl", [long, short, short, short]), tokenizer, 64,
                     validation=write_jsonl(tmp_path / "v.jsonl", [short]))
    assert len(data.train) == 3 and "1 of 4 examples are longer than 64 tokens" in data.notes[0]
    assert "1 lost their whole answer" in data.notes[0]
    batch = pad_batch(data.train + data.validation, tokenizer.pad_token_id)
    assert batch["labels"][batch["attention_mask"] == 0].eq(IGNORE_INDEX).all()


@pytest.mark.parametrize("answer, reference, same", [
    ("Positive.", "positive", True), ("  positive\n", "positive", True), ("Sci/Tech", "sci/tech", True),
    ("not positive", "positive", False), ("positive, I think", "positive", False),
    ("New  York", "new york", True), ("'World'", "World", True), ("", "positive", False)])
def test_exact_match_normalizes_case_whitespace_and_outer_punctuation(answer, reference, same):
    assert exact_match(answer, reference) is same
    assert normalize(" Hello,   World! ") == "hello, world"


def test_scoring_greedy_answers_and_answer_perplexity(smollm2, tmp_path):
    model, tokenizer = smollm2
    base = RunModel("base", "causal-lm", model, tokenizer, None, 96, "base", 0)
    rows = [{"messages": [{"role": "user", "content": "What is the capital of France? One word."},
                          {"role": "assistant", "content": "Paris"}]},
            {"prompt": "Reply with the word blue and nothing else.", "completion": "zebra"}]
    report = evaluate_chat(base, base, write_jsonl(tmp_path / "eval.jsonl", rows))
    assert report.examples == 2 and report.exact_match == report.base_exact_match
    assert [r["reference"] for r in report.rows] == ["Paris", "zebra"]
    assert report.rows[1]["correct"] is False and report.worst[0]["reference"] == "zebra"  # wrong answers first
    assert report.fine_tuned_perplexity == pytest.approx(report.base_perplexity)
    assert report.rows[0]["answer"] == base.generate("What is the capital of France? One word.", 10).strip()
