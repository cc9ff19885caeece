"""Gradual PMB freezing: schedule, true freeze under AdamW, optimizer state dropped, Trainer."""
import pytest
import torch
from conftest import batch, load, train_steps
from transformers import Trainer, TrainingArguments

import lamda_core as lc


@pytest.mark.parametrize("rule,rank,total,fraction,expected", [
    ("linear", 4, 10, 0.5, [0, 0, 1, 2, 3, 4, 4, 4, 4, 4, 4]),
    ("linear", 8, 10, 0.3, [0, 2, 5, 8, 8, 8, 8, 8, 8, 8, 8]),
    ("grad-mask-stepwise", 8, 10, 0.3, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3]),
    ("linear", 4, 5, 0.0, [4, 4, 4, 4, 4, 4]),  # eta = 0: frozen before the first step
    ("never", 4, 5, 0.3, [0, 0, 0, 0, 0, 0]),
])
def test_schedule_formula(rule, rank, total, fraction, expected):
    assert [lc.frozen_column_count(rule, rank, t, total, fraction) for t in range(total + 1)] == expected


def test_linear_rule_truly_freezes_columns_and_drops_b():
    model, tokenizer = load("minilm")
    lc.apply_lamda(model, lc.LamdaConfig(rank=4, freeze_fraction=0.5))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2, weight_decay=0.1)
    freezer = lc.PMBFreezer(model, total_steps=10)
    inputs = batch(tokenizer, n=8)
    history = train_steps(model, inputs, optimizer, freezer, steps=10)

    assert [h["bert.encoder.layer.0.attention.self.query"][0] for h in history] == [0, 1, 2, 3, 4, 4, 4, 4, 4, 4]
    final = lc.lamda_layers(model)
    for name, layer in final.items():
        for k, b_then in (step[name] for step in history):
            # every column frozen at that step is bit-identical at the end
            assert torch.equal(layer.lamda_B[:, :k], b_then[:, :k])
        assert not layer.lamda_B.requires_grad and layer.lamda_B.grad is None
        assert all(layer.lamda_B is not p for g in optimizer.param_groups for p in g["params"])
        assert layer.lamda_B not in optimizer.state
        assert layer.lamda_S in optimizer.state
    # the columns that were still training did move (the test can fail)
    b_step1 = history[0]["bert.encoder.layer.0.attention.self.query"][1]
    assert not torch.equal(b_step1[:, 1:], final["bert.encoder.layer.0.attention.self.query"].lamda_B[:, 1:])
    assert freezer.trainable_b_layers() == 0
    assert lc.trainable_parameters(model).adapter == 36 * 16


@pytest.mark.parametrize("fraction,rule", [(0.0, "linear"), (0.5, "never")])
def test_the_two_ends_of_bs_warm_up_b_never_trains_or_never_freezes(fraction, rule):
    """eta = 0: B is the SVD factor it started as, bit for bit, and never in the optimizer; the
    "never" rule: B trains to the last step. S trains in both; the parameter count follows."""
    model, tokenizer = load("minilm")
    lc.apply_lamda(model, lc.LamdaConfig(rank=4, freeze_fraction=fraction, freeze_rule=rule))
    b_start = {n: layer.lamda_B.detach().clone() for n, layer in lc.lamda_layers(model).items()}
    freezer = lc.PMBFreezer(model, total_steps=6)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    history = train_steps(model, batch(tokenizer, n=8), optimizer, freezer, steps=6)
    for name, layer in lc.lamda_layers(model).items():
        b_moved = not torch.equal(layer.lamda_B, b_start[name])
        assert b_moved == (rule == "never") and layer.lamda_B.requires_grad == (rule == "never")
        assert not torch.equal(layer.lamda_S, torch.zeros_like(layer.lamda_S))
    if rule == "never":  # still moving at the last step
        name = next(iter(b_start))
        assert not torch.equal(history[-2][name][1], history[-1][name][1])
    expected_b = sum(layer.lamda_B.numel() for layer in lc.lamda_layers(model).values()) if rule == "never" else 0
    assert lc.trainable_parameters(model).adapter == 36 * 16 + expected_b


def test_training_goes_on_after_b_is_frozen():
    model, tokenizer = load("minilm")
    lc.apply_lamda(model, lc.LamdaConfig(rank=4, freeze_fraction=0.2))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    freezer = lc.PMBFreezer(model, total_steps=10)
    inputs = batch(tokenizer, n=8)
    train_steps(model, inputs, optimizer, freezer, steps=2)
    layer = next(iter(lc.lamda_layers(model).values()))
    s_before = layer.lamda_S.detach().clone()
    train_steps(model, inputs, optimizer, freezer, steps=3)
    assert not torch.equal(s_before, layer.lamda_S)


def test_step_says_when_the_trainable_set_changes():
    """The trainer counts trainable parameters again only when step() says a B dropped out."""
    model, tokenizer = load("minilm")
    lc.apply_lamda(model, lc.LamdaConfig(rank=4, freeze_fraction=0.5))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    freezer = lc.PMBFreezer(model, total_steps=10)
    inputs, said = batch(tokenizer, n=8), []
    for _ in range(10):
        optimizer.zero_grad()
        model(**inputs).loss.backward()
        optimizer.step()
        before = lc.trainable_parameters(model).trainable
        said.append(freezer.step(optimizer))
        assert said[-1] == (lc.trainable_parameters(model).trainable < before)
    assert said == [False, False, False, False, True, False, False, False, False, False]


def test_authors_rule_only_masks_gradients():
    model, tokenizer = load("minilm")
    lc.apply_lamda(model, lc.LamdaConfig(rank=8, freeze_rule="grad-mask-stepwise", freeze_fraction=0.3))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    freezer = lc.PMBFreezer(model, total_steps=10)
    history = train_steps(model, batch(tokenizer, n=8), optimizer, freezer, steps=10)
    assert [h["bert.encoder.layer.0.attention.self.query"][0] for h in history] == [0, 0, 1, 1, 1, 2, 2, 2, 3, 3]
    assert all(layer.lamda_B.requires_grad for layer in lc.lamda_layers(model).values())


def test_freezer_needs_lamda_layers():
    model, _ = load("minilm")
    with pytest.raises(lc.ConfigError, match="no LaMDA layers"):
        lc.PMBFreezer(model, total_steps=10)


def test_trainer_callback_freezes_b_within_transformers_trainer(tmp_path):
    model, tokenizer = load("minilm")
    lc.apply_lamda(model, lc.LamdaConfig(rank=4, freeze_fraction=0.5))
    inputs = batch(tokenizer, n=16)
    rows = [{k: v[i] for k, v in inputs.items()} for i in range(16)]
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=6, per_device_train_batch_size=4,
                             learning_rate=1e-2, weight_decay=0.1, report_to=[], save_strategy="no",
                             use_cpu=True, logging_strategy="no", disable_tqdm=True)
    callback = lc.LamdaFreezeCallback()
    Trainer(model=model, args=args, train_dataset=rows, callbacks=[callback]).train()
    assert callback.freezer.completed_steps == 6
    assert all(int(layer.frozen_columns) == 4 and not layer.lamda_B.requires_grad
               for layer in lc.lamda_layers(model).values())
