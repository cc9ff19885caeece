"""Using a fine-tuned run: evaluation reports checked by hand, unknown labels refused, the one
loader for finished and stopped runs, exports that predict what the studio predicts when loaded
the way their README says, and a causal LM that beats its base on its training text."""
import json
from pathlib import Path

import pytest
import torch
from conftest import run_cli

import lamda_core as lc
from lamda_core.data.reading import DEMO_DATASETS
from lamda_core.runs.config import TrainConfig
from lamda_core.runs.folder import RunFolder, create_run, request_stop
from lamda_core.training.trainer import run
from lamda_core.use.evaluation import classification_report, evaluate_run
from lamda_core.use.export import export_merged
from lamda_core.use.inference import load_run

VALIDATION = DEMO_DATASETS["demo-sentiment"][1]
SENTENCES = [
    f"{opening} {thing} {ending}"
    for opening in ("Honestly, the", "I thought the")
    for thing in ("film", "hotel", "jacket", "album", "phone")
    for ending in ("was wonderful.", "was a chore.", "let me down badly.", "made my week.", "was fine, I guess.")
]


def trained(folder: Path, **changes) -> Path:
    config = TrainConfig(max_steps=12, eval_interval=12, checkpoint_interval=6, **changes)
    assert run(create_run(config, folder)) == "finished"
    return folder


pytestmark = pytest.mark.xdist_group("use")  # one worker builds the module's fixtures once


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Short runs on the demo data: LaMDA with MiniLM's mean pooling, LoRA with the [CLS] head."""
    root = tmp_path_factory.mktemp("runs")
    return {
        "lamda-mean": trained(root / "lamda-mean"),
        "lora-cls": trained(root / "lora-cls", method="lora", pooling="cls"),
    }


def test_a_report_on_a_tiny_case_matches_the_numbers_worked_out_by_hand():
    # true:      a a a b b c ; predicted: a a b b c c (probabilities below)
    probabilities = torch.tensor([[.9, .05, .05], [.6, .3, .1], [.2, .7, .1], [.1, .8, .1], [.1, .3, .6], [.2, .2, .6]])
    texts = [f"t{i}" for i in range(6)]
    report = classification_report("r", "f", texts, [0, 0, 0, 1, 1, 2], probabilities, ["a", "b", "c"])
    assert report.confusion == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert report.accuracy == pytest.approx(4 / 6)
    a, b, c = report.per_class
    assert (a["precision"], a["recall"], a["support"]) == (1.0, pytest.approx(2 / 3), 3)
    assert (b["precision"], b["recall"], b["f1"]) == (0.5, 0.5, 0.5)
    assert (c["precision"], c["recall"], c["f1"]) == (0.5, 1.0, pytest.approx(2 / 3))
    assert report.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert [w["text"] for w in report.wrong] == ["t2", "t4"]  # most confident first: 0.7, then 0.6
    assert report.wrong[0] == {"text": "t2", "true": "a", "predicted": "b", "probability": pytest.approx(0.7)}
    assert report.rows_csv().splitlines()[0] == "text,true,predicted,probability,p(a),p(b),p(c)"


def test_a_label_the_run_never_saw_is_refused_by_name(runs, tmp_path):
    path = tmp_path / "test.csv"
    path.write_text("text,label\ngood,positive\nmeh,neutral\n")
    with pytest.raises(
        lc.DataError, match=r"label 'neutral' is not among the run's classes \['negative', 'positive'\]"
    ):
        evaluate_run(runs["lamda-mean"], path)
    path.write_text("sentence,sentiment\n")
    with pytest.raises(lc.DataError, match="is empty"):
        evaluate_run(runs["lamda-mean"], path)


def test_evaluating_the_validation_file_gives_what_training_reported(runs):
    """Training's evaluation and `lamda evaluate` share one code path."""
    for folder in runs.values():
        report = evaluate_run(folder, VALIDATION)
        assert report.accuracy == pytest.approx(RunFolder(folder).last_eval()["eval_accuracy"])
        assert report.macro_f1 == pytest.approx(RunFolder(folder).last_eval()["eval_f1"])
        assert sum(map(sum, report.confusion)) == report.examples == 100


def test_a_stopped_run_is_used_from_its_last_checkpoint(tmp_path):
    config = TrainConfig(max_steps=12, eval_interval=6, checkpoint_interval=6)
    folder = create_run(config, tmp_path / "stopped")
    original = RunFolder.stop_requested
    RunFolder.stop_requested = lambda self: (self.status().get("step") or 0) >= 6  # stop after step 6, as Stop would
    try:
        assert run(folder) == "stopped"
    finally:
        RunFolder.stop_requested = original
    loaded = load_run(folder)
    assert (loaded.state, loaded.step, loaded.label_names) == ("stopped", 6, ["negative", "positive"])
    report = evaluate_run(folder, VALIDATION, loaded=loaded)
    assert report.accuracy == pytest.approx(RunFolder(folder).last_eval()["eval_accuracy"])


def test_exports_predict_what_the_studio_predicts_loaded_the_way_the_readme_says(runs, tmp_path):
    from peft import PeftModel
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    assert len(SENTENCES) == 50
    # a mean-pooled LaMDA run: the merged export is a sentence-transformers model
    studio = load_run(runs["lamda-mean"]).probabilities(SENTENCES)
    merged = export_merged(runs["lamda-mean"], tmp_path / "mean")
    assert "SentenceTransformer" in (merged / "README.md").read_text()
    exported = SentenceTransformer(str(merged)).encode(SENTENCES, convert_to_tensor=True).softmax(-1)
    assert torch.allclose(exported, studio, atol=1e-5)
    # its PEFT adapter onto the base loaded with the run's pooling (README: Exports)
    base, tokenizer = lc.load_model("default", num_labels=2, pooling="mean")
    adapter = PeftModel.from_pretrained(base, str(runs["lamda-mean"] / "peft")).eval()
    encoded = tokenizer(SENTENCES, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(adapter(**encoded).logits.softmax(-1), studio, atol=1e-5)
    # plain transformers would read the [CLS] pooler: the README says not to, and it would differ
    plain = AutoModelForSequenceClassification.from_pretrained(str(merged)).eval()
    with torch.no_grad():
        assert not torch.allclose(plain(**encoded).logits.softmax(-1), studio, atol=1e-3)

    # a fully fine-tuned, mean-pooled run goes through the same export
    full = trained(tmp_path / "full-mean", method="full")
    merged = export_merged(full, tmp_path / "full")
    exported = SentenceTransformer(str(merged)).encode(SENTENCES, convert_to_tensor=True).softmax(-1)
    assert torch.allclose(exported, load_run(full).probabilities(SENTENCES), atol=1e-5)

    # a [CLS]-pooled LoRA run: the merged export is a plain transformers classifier, labels named
    studio = load_run(runs["lora-cls"]).probabilities(SENTENCES)
    merged = export_merged(runs["lora-cls"], tmp_path / "cls")
    classify = pipeline("text-classification", model=str(merged), tokenizer=AutoTokenizer.from_pretrained(str(merged)),
                        top_k=None)
    for sentence, probs, scores in zip(SENTENCES, studio, classify(SENTENCES)):
        by_label = {s["label"]: s["score"] for s in scores}
        assert by_label["negative"] == pytest.approx(float(probs[0]), abs=1e-5), sentence
        assert by_label["positive"] == pytest.approx(float(probs[1]), abs=1e-5), sentence


def test_a_causal_lm_run_has_lower_perplexity_than_its_base_on_its_training_text(tmp_path):
    config = TrainConfig(source="tiny-gpt2", task="causal-lm", train_data="demo-corpus", method="lora",
                         learning_rate=1e-2, max_steps=30, eval_interval=30, checkpoint_interval=30, seq_len=32)
    folder = create_run(config, tmp_path / "lm")
    assert run(folder) == "finished"
    report = evaluate_run(folder, DEMO_DATASETS["demo-corpus"][0])
    assert report.fine_tuned_perplexity < 0.9 * report.base_perplexity  # 30 steps of LoRA: about 0.7x here
    assert load_run(folder).generate("The", max_new_tokens=5)  # some continuation


def test_the_command_line_evaluates_several_runs_side_by_side_and_predicts_to_a_file(runs, tmp_path):
    result = run_cli("evaluate", runs["lamda-mean"], runs["lora-cls"], "--data", VALIDATION,
                     "--json", tmp_path / "e.json", "--csv", tmp_path / "e.csv")
    assert result.returncode == 0, result.stderr
    assert "side by side" in result.stdout and "confusion matrix" in result.stdout
    saved = json.loads((tmp_path / "e-lamda-mean.json").read_text())
    assert saved["examples"] == 100 and len(saved["confusion"]) == 2 and "rows" not in saved
    assert (tmp_path / "e-lora-cls.csv").read_text().count("\n") == 101
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(SENTENCES[:5]))
    result = run_cli("predict", runs["lamda-mean"], "--data", texts, "--output", tmp_path / "p.csv")
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "text,predicted,probability,p(negative),p(positive)" and len(lines) == 6
    unfinished = create_run(TrainConfig(max_steps=5), tmp_path / "queued")
    request_stop(unfinished)
    result = run_cli("predict", unfinished, "good")
    assert result.returncode == 2 and "no checkpoint yet" in result.stderr


def test_a_full_fine_tune_is_used_with_its_base_tokenizer(tmp_path):
    """Transformers builds an empty-vocabulary tokenizer from a folder with only config.json; a full
    fine-tune's saved model must not be read that way (every word would be unknown)."""
    from lamda_core.models.loading import load_model

    folder = trained(tmp_path / "full", method="full")
    _, base_tokenizer = load_model("default")
    text = "The hotel was wonderful."
    assert load_run(folder).tokenizer(text)["input_ids"] == base_tokenizer(text)["input_ids"]
    assert (folder / "model" / "tokenizer.json").is_file()  # the saved model folder stands on its own
    (folder / "model" / "tokenizer.json").unlink()  # a run saved before the tokenizer was written beside it
    (folder / "model" / "tokenizer_config.json").unlink()
    assert load_run(folder).tokenizer(text)["input_ids"] == base_tokenizer(text)["input_ids"]
