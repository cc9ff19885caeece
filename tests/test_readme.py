"""The README's Python example runs verbatim and does what its comments say."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_example_runs(tmp_path, monkeypatch, capsys):
    section = README.read_text().split("## Quick start in Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "adapter=168192" in printed and printed.strip().endswith("True")
    assert (tmp_path / "out" / "peft" / "adapter_model.safetensors").is_file()
    assert not any(layer.lamda_B.requires_grad for layer in namespace["lc"].lamda_layers(namespace["model"]).values())


def command_line_block() -> list[str]:
    """The commands of the README's Command line block, one per entry (`;` separates several)."""
    section = README.read_text().split("## Command line", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = [line.split("#", 1)[0] for line in block.splitlines()]
    return [command.strip() for line in lines for command in line.split(";") if command.strip()]


def as_test_command(command: str) -> list[str]:
    """The command as the test runs it: /models/llama-2-7b is a local tiny Llama stand-in, a train
    gets 10 steps (checkpoints and evaluations every 5) and a comparison or sweep 5, instead of their
    full length. A background train, the one the README stops and resumes, gets 60 steps (every 10):
    the stop comes as soon as step 1 is written, and 10 short steps could end before it arrives,
    leaving a finished run that resume rightly refuses. The SmolLM2 instruction-tune evaluates once, at
    its end (each evaluation of the 135 M model costs as much as several steps)."""
    import shlex

    argv = shlex.split(command.replace("/models/", "models/"))
    assert argv[0] == "lamda", command
    argv = argv[1:]
    if argv[0] == "train":
        if "--max-steps" in argv:
            del argv[argv.index("--max-steps"):argv.index("--max-steps") + 2]
        steps, every = ("60", "10") if "--background" in argv else ("10", "5")
        evaluate_every = "10" if "smollm2" in argv else every
        argv += ["--max-steps", steps, "--checkpoint-interval", every, "--eval-interval", evaluate_every]
    if argv[0] in ("compare", "sweep") and "--steps" in argv:
        argv[argv.index("--steps") + 1] = "5"
    return argv


def build_llama_stand_in(folder: Path) -> None:
    """A small Llama (GQA, 4096 positions, every matrix at least 64 wide so `--top-k 64` fits)
    with the MiniLM tokenizer, in place of a 7B checkpoint."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from lamda_core.models.paths import default_model_path

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=4096, vocab_size=30522, pad_token_id=0,
                         bos_token_id=101, eos_token_id=102)
    LlamaForCausalLM(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(default_model_path()).save_pretrained(folder)


@pytest.mark.heavy
def test_every_command_line_in_the_readme_runs(tmp_path, monkeypatch):
    import json
    import time

    import torch
    from transformers import AutoModelForSequenceClassification

    import lamda_core as lc
    from lamda_core.cli import main
    from lamda_core.runs.folder import read_status

    monkeypatch.chdir(tmp_path)
    build_llama_stand_in(tmp_path / "models" / "llama-2-7b")
    Path("reviews.csv").write_text("text,label\n" + "".join(
        f"{text},{label}\n" for text, label in [("a warm and witty film", "pos"), ("dull and far too long", "neg"),
                                               ("the cast shines", "pos"), ("a waste of an evening", "neg")] * 8))
    commands = command_line_block()
    assert any(c.startswith("lamda export") for c in commands) and any(c.startswith("lamda stop") for c in commands)
    assert {c.split()[1] for c in commands} >= {"evaluate", "predict", "generate"}
    for command in commands:
        argv = as_test_command(command)
        if argv[0] == "stop":  # stop a run that is training, as a user would
            deadline = time.monotonic() + 600  # a hang guard, not a speed check
            while read_status(argv[1]).get("step", 0) < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert read_status(argv[1])["state"] == "running", command
        assert main(argv) == 0, command
        if argv[0] == "stop":
            assert read_status(argv[1])["state"] == "stopping", command
    for run in ("lamda-r8", "lamda-r8-lora", "pp", "lm", "chat"):
        assert read_status(Path("runs") / run)["state"] == "finished", run
    import csv

    evaluation = json.loads(Path("eval.json").read_text())  # lamda evaluate: the report, by hand-checkable parts
    assert evaluation["examples"] == 32 and sum(map(sum, evaluation["confusion"])) == 32
    assert [c["label"] for c in evaluation["per_class"]] == ["neg", "pos"]
    with open("predictions.csv") as handle:  # lamda predict --output: a prediction per row of the file
        rows = list(csv.DictReader(handle))
    assert len(rows) == 32 and {r["predicted"] for r in rows} <= {"neg", "pos"}
    merged = AutoModelForSequenceClassification.from_pretrained("out/merged")
    base, _ = lc.load_model("default")
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(merged.state_dict()[name], base.state_dict()[name])  # the update is in the weights
    reloaded, _ = lc.load_model("out/merged")  # and the mean pooling it was trained with comes back
    assert type(reloaded.bert.pooler).__name__ == "MeanPooler"

    chat = json.loads(Path("chat.json").read_text())  # lamda evaluate on conversations: the demo's 20 answers
    assert chat["examples"] == 20 and 0 <= chat["exact_match"] <= 1 and 0 <= chat["base_exact_match"] <= 1
    assert chat["fine_tuned_perplexity"] < chat["base_perplexity"]  # 10 steps on the answers lower their loss
    with open("answers.csv") as handle:
        answers = list(csv.DictReader(handle))
    assert len(answers) == 20 and {a["reference"] for a in answers} == {"positive", "negative"}

    update = json.loads(Path("update.json").read_text())  # lamda analyze: every adapted matrix
    assert update["method"] == "lamda" and len(update["matrices"]) == 36
    assert Path("update.csv").read_text().count("\n") == 37
    compared = json.loads(Path("compare.json").read_text())["runs"]  # lamda compare: three methods, all trained
    assert [r["method"] for r in compared] == ["lora", "lamda", "lamda++"]
    assert all(r["state"] == "finished" and r["accuracy"] is not None for r in compared)
