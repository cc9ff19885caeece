import json

import pytest
import torch

import lamda_core as lc
from lamda_core.models.loading import hub_reachable


def test_default_model_is_pretrained_minilm_with_tokenizer():
    model, tokenizer = lc.load_model("default", task="encoder")
    assert model.config.model_type == "bert" and model.config.hidden_size == 384
    assert model.config.num_hidden_layers == 6
    encoded = tokenizer(["a real sentence"], return_tensors="pt")
    embedding = model(**encoded).last_hidden_state.mean(1)
    # Pretrained weights, not a random init: the query matrix has a decaying spectrum.
    sigma = torch.linalg.svdvals(model.encoder.layer[0].attention.self.query.weight)
    assert sigma[0] / sigma[-1] > 10 and embedding.shape == (1, 384)


@pytest.mark.parametrize("task,cls", [("classification", "BertForSequenceClassification"),
                                      ("encoder", "BertModel")])
def test_tasks_pick_the_head(task, cls):
    model, _ = lc.load_model("default", task=task)
    assert type(model).__name__ == cls


def test_local_folder_and_dtype(tmp_path):
    model, tokenizer = lc.load_model("tiny-gpt2", task="causal-lm")
    model.save_pretrained(tmp_path / "gpt")
    tokenizer.save_pretrained(tmp_path / "gpt")
    loaded, tok = lc.load_model(str(tmp_path / "gpt"), task="classification", dtype="bfloat16")
    assert type(loaded).__name__ == "GPT2ForSequenceClassification"
    assert loaded.transformer.h[0].attn.c_attn.weight.dtype == torch.bfloat16
    assert loaded.config.pad_token_id == tok.pad_token_id


def test_nonexistent_path_is_a_specific_error(tmp_path):
    with pytest.raises(lc.ModelSourceError, match="no such model folder"):
        lc.load_model(str(tmp_path / "nowhere"))


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(lc.ModelSourceError, match="not a Hugging Face model folder: it has no config.json"):
        lc.load_model(str(tmp_path))


def test_folder_with_config_but_no_weights(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(lc.ModelSourceError, match="no weights"):
        lc.load_model(str(tmp_path))


def test_a_file_instead_of_a_folder(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(lc.ModelSourceError, match="is a file"):
        lc.load_model(str(tmp_path / "model.safetensors"))


def test_hub_id_offline_fails_fast_and_says_how_to_use_a_folder(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(lc.ModelSourceError, match="pass the folder"):
        lc.load_model("someone/not-a-cached-model")


def test_hub_id_without_network_fails_fast(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: connection refused
    assert not hub_reachable()
    with pytest.raises(lc.ModelSourceError, match="cannot be reached"):
        lc.load_model("someone/not-a-cached-model")


def test_unknown_task_and_dtype():
    with pytest.raises(lc.ConfigError, match="unknown task"):
        lc.load_model("default", task="translation")
    with pytest.raises(lc.ConfigError, match="unknown dtype"):
        lc.load_model("default", dtype="int3")


def test_remote_code_stays_off(tmp_path):
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(
        {"model_type": "my-custom", "auto_map": {"AutoConfig": "configuration_custom.CustomConfig",
                                                 "AutoModel": "modeling_custom.CustomModel"}}))
    (folder / "model.safetensors").write_bytes(b"")
    (folder / "configuration_custom.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(lc.ModelSourceError, match="trust_remote_code"):
        lc.load_model(str(folder), task="encoder")
