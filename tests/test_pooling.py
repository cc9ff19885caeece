"""Classification pooling: MiniLM reads the masked mean of its token states by default."""
import json

import pytest
import torch

import lamda_core as lc
from lamda_core.models.pooling import CONFIG_KEY, MeanPooler, resolve_pooling
from lamda_core.runs.config import TrainConfig
from lamda_core.runs.preflight import check_run


def test_auto_reads_the_sentence_transformers_pooling_of_minilm():
    model, _ = lc.load_model("default")
    assert isinstance(model.bert.pooler, MeanPooler) and getattr(model.config, CONFIG_KEY) == "mean"
    own, _ = lc.load_model("default", pooling="cls")
    assert type(own.bert.pooler).__name__ == "BertPooler" and getattr(own.config, CONFIG_KEY) == "cls"


@torch.no_grad()
def test_mean_pooling_is_the_masked_mean_whatever_the_padding():
    model, tokenizer = lc.load_model("default")
    model.eval()
    texts = ["a gripping, beautifully acted film", "dull"]
    padded = tokenizer(texts, padding=True, return_tensors="pt")
    alone = tokenizer(texts[1:], return_tensors="pt")
    assert padded["attention_mask"][1].sum() < padded["attention_mask"].shape[1]  # the short text is padded
    logits = model(**padded).logits
    assert torch.allclose(logits[1], model(**alone).logits[0], atol=1e-5)
    hidden = model.bert(**alone).last_hidden_state
    assert torch.allclose(logits[1], model.classifier(hidden.mean(dim=1))[0], atol=1e-5)


@torch.no_grad()
def test_mean_pooling_sees_the_mask_inside_a_peft_model():
    from peft import LoraConfig, get_peft_model

    model, tokenizer = lc.load_model("default")
    wrapped = get_peft_model(model, LoraConfig(r=2, target_modules=["query"], task_type="SEQ_CLS")).eval()
    padded = tokenizer(["a gripping, beautifully acted film", "dull"], padding=True, return_tensors="pt")
    alone = tokenizer(["dull"], return_tensors="pt")
    assert torch.allclose(wrapped(**padded).logits[1], wrapped(**alone).logits[0], atol=1e-5)


@torch.no_grad()
def test_saved_model_keeps_its_pooling_and_the_usual_keys(tmp_path):
    model, tokenizer = lc.load_model("default")
    model.eval()
    assert {"bert.pooler.dense.weight", "bert.pooler.dense.bias"} <= set(model.state_dict())
    model.save_pretrained(tmp_path / "saved")
    tokenizer.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "config.json").read_text())[CONFIG_KEY] == "mean"
    reloaded, _ = lc.load_model(str(tmp_path / "saved"))
    reloaded.eval()
    inputs = tokenizer(["a fine film", "not at all good"], padding=True, return_tensors="pt")
    assert isinstance(reloaded.bert.pooler, MeanPooler)
    assert torch.allclose(model(**inputs).logits, reloaded(**inputs).logits, atol=1e-6)


def test_sentence_transformers_folder_that_asks_for_cls(tmp_path):
    model, _ = lc.load_model("tiny-gpt2", task="classification")
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    delattr(model.config, CONFIG_KEY)
    assert resolve_pooling("auto", model, str(tmp_path)) == "cls"


def test_impossible_pooling_is_a_specific_error():
    with pytest.raises(lc.ConfigError, match="mean pooling needs a BERT-like model.*use pooling 'cls'"):
        lc.load_model("tiny-gpt2", pooling="mean")
    with pytest.raises(lc.ConfigError, match="unknown pooling 'max'"):
        TrainConfig(pooling="max")
    with pytest.raises(lc.ConfigError, match="mean pooling needs a BERT-like model"):
        check_run(TrainConfig(source="tiny-gpt2", pooling="mean"))
    with pytest.raises(lc.ConfigError, match="classification only"):
        check_run(TrainConfig(source="tiny-gpt2", task="causal-lm", train_data="demo-corpus", pooling="mean"))


def test_run_configs_from_before_pooling_keep_the_models_own_head():
    old = json.loads(TrainConfig().to_json())
    del old["pooling"]
    assert TrainConfig.from_json(json.dumps(old)).pooling == "cls"
    assert TrainConfig.from_json(TrainConfig().to_json()).pooling == "auto"
