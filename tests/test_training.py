"""The training engine: a real short run, stop, SIGKILL and resume, two processes, failures."""
import json
import os
import signal
from pathlib import Path

import pytest
import torch
from conftest import run_cli, wait_until
from peft import PeftModel

import lamda_core as lc
from lamda_core.methods import get_method
from lamda_core.runs.config import TrainConfig
from lamda_core.runs.folder import (
    RunFolder,
    create_run,
    read_config,
    read_metrics,
    read_status,
    request_stop,
    start_run,
)
from lamda_core.training.trainer import run


def finished(folder):
    return lambda: read_status(folder)["state"] in ("finished", "stopped", "failed")


def test_short_run_learns_and_leaves_a_complete_folder(tmp_path):
    folder = create_run(
        TrainConfig(
            max_steps=40, eval_interval=20, checkpoint_interval=20, adapter=lc.LamdaConfig(rank=8, freeze_fraction=0.3)
        ),
        tmp_path / "run",
    )
    assert run(folder) == "finished"
    metrics = read_metrics(folder)
    assert [m["step"] for m in metrics] == list(range(1, 41))
    losses = [m["loss"] for m in metrics]
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10  # the loss falls
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["eval_accuracy"] > 0.7 and summary["labels"] == ["negative", "positive"]  # chance is 0.5
    assert metrics[-1]["adapter_parameters"] == 36 * 64  # B frozen: r^2 per matrix
    assert metrics[0]["trainable_parameters"] > metrics[-1]["trainable_parameters"]
    expected_fields = {"remaining", "elapsed", "learning_rate", "eval_f1"}  # progress fields, not a timing check
    assert expected_fields <= set(metrics[-1])
    for name in ("run_config.json", "status.json", "adapter/lamda_config.json", "peft/adapter_config.json"):
        assert (folder / name).is_file(), name
    assert read_status(folder)["state"] == "finished"

    # the PEFT export reloads onto the original base with the trained model's outputs
    lamda_model, tokenizer = lc.load_model("default", num_labels=2)
    lc.load_adapter(lamda_model, folder / "adapter")
    base, _ = lc.load_model("default", num_labels=2)
    peft_model = PeftModel.from_pretrained(base, str(folder / "peft")).eval()
    batch = tokenizer(["The film was a genuine delight.", "The app was a complete waste of time."],
                      return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = lamda_model.eval()(**batch).logits
        assert torch.allclose(peft_model(**batch).logits, expected, atol=1e-4)
    assert expected.argmax(-1).tolist() == [1, 0]


def test_stop_request_checkpoints_and_stops(tmp_path):
    folder = create_run(
        TrainConfig(max_steps=2000, eval_interval=1000, checkpoint_interval=1000, adapter=lc.LamdaConfig(rank=4)),
        tmp_path / "run",
    )
    process = start_run(folder)
    wait_until(lambda: read_status(folder).get("step", 0) >= 3, "three steps")
    request_stop(folder)
    process.wait()
    status = read_status(folder)
    assert status["state"] == "stopped"
    checkpoints = sorted((folder / "checkpoints").glob("step-*"))
    assert checkpoints and checkpoints[-1].name == f"step-{status['step']:06d}"
    assert len(read_metrics(folder)) == status["step"]


def test_sigkill_then_resume_loses_and_repeats_no_step(tmp_path):
    config = dict(source="tiny-gpt2", task="causal-lm", train_data="demo-corpus", seq_len=32, batch_size=4,
                  max_steps=30, eval_interval=10, checkpoint_interval=5, adapter=lc.LamdaConfig(rank=4),
                  learning_rate=5e-3)
    reference = create_run(TrainConfig(**config), tmp_path / "reference")
    assert run(reference) == "finished"

    folder = create_run(TrainConfig(**config), tmp_path / "killed")
    process = start_run(folder)
    wait_until(lambda: read_status(folder).get("step", 0) >= 13, "step 13")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert read_status(folder)["state"] == "running"  # what a crash leaves behind
    start_run(folder).wait()
    assert read_status(folder)["state"] == "finished"
    metrics = read_metrics(folder)
    assert [m["step"] for m in metrics] == list(range(1, 31))
    # resumed exactly: same losses and the same final adapter as the uninterrupted run
    assert [m["loss"] for m in metrics] == pytest.approx([m["loss"] for m in read_metrics(reference)], rel=1e-5)
    from safetensors.torch import load_file

    resumed = load_file(str(folder / "adapter" / "lamda_adapter.safetensors"))
    uninterrupted = load_file(str(reference / "adapter" / "lamda_adapter.safetensors"))
    assert all(torch.allclose(resumed[k], uninterrupted[k], atol=1e-6) for k in uninterrupted)


def test_two_process_accelerate_run_with_the_freezer(tmp_path):
    folder = create_run(
        TrainConfig(
            max_steps=12, eval_interval=12, checkpoint_interval=6, batch_size=8, adapter=lc.LamdaConfig(rank=4)
        ),
        tmp_path / "ddp",
    )
    start_run(folder, processes=2).wait()
    status = read_status(folder)
    assert status["state"] == "finished", (folder / "train.log").read_text()[-2000:]
    metrics = read_metrics(folder)
    assert metrics[-1]["epoch"] == pytest.approx(12 * 8 * 2 / 400)  # both processes consumed data
    assert metrics[-1]["adapter_parameters"] == 36 * 16  # every B frozen under DDP
    saved = json.loads((folder / "adapter" / "lamda_config.json").read_text())
    assert all(m["frozen_columns"] == 4 and not m["b_trainable"] for m in saved["matrices"].values())


def test_runs_wait_for_each_other_in_order(tmp_path):
    first = create_run(
        TrainConfig(max_steps=15, eval_interval=100, checkpoint_interval=100, adapter=lc.LamdaConfig(rank=4)),
        tmp_path / "a",
    )
    second = create_run(
        TrainConfig(max_steps=5, eval_interval=100, checkpoint_interval=100, adapter=lc.LamdaConfig(rank=4)),
        tmp_path / "b",
    )
    one = start_run(first)
    wait_until(lambda: read_status(first)["state"] == "running", "the first run to start")
    two = start_run(second)
    wait_until(lambda: read_status(first).get("step", 0) >= 2, "two steps of the first run")
    assert read_status(second)["state"] == "queued"
    assert RunFolder(second).waiting_for() == ["a (running)"]
    one.wait(), two.wait()
    a, b = read_status(first), read_status(second)
    assert a["state"] == b["state"] == "finished"
    assert b["started"] >= a["updated"] - 1.0  # the second began once the first had ended


def test_runs_started_back_to_back_train_in_creation_order(tmp_path):
    """A comparison starts its runs at once: each must queue behind the ones created before it,
    even before their trainers have come up."""
    folders = [create_run(TrainConfig(max_steps=2, eval_interval=100, checkpoint_interval=100,
                                      adapter=lc.LamdaConfig(rank=2)), tmp_path / name) for name in "abc"]
    processes = [start_run(folder) for folder in folders]
    assert all(read_status(f)["pid"] == p.pid for f, p in zip(folders, processes))  # queued with its pid at once
    for process in processes:
        process.wait()
    started = [read_status(folder)["started"] for folder in folders]
    assert all(read_status(folder)["state"] == "finished" for folder in folders)
    assert started == sorted(started), started


def test_stopping_a_queued_run_removes_it_from_the_queue_at_once(tmp_path):
    first = create_run(
        TrainConfig(max_steps=400, eval_interval=1000, checkpoint_interval=1000, adapter=lc.LamdaConfig(rank=4)),
        tmp_path / "a",
    )
    second = create_run(TrainConfig(max_steps=5, adapter=lc.LamdaConfig(rank=4)), tmp_path / "b")
    one = start_run(first)
    wait_until(lambda: read_status(first)["state"] == "running", "the first run to start")
    two = start_run(second)
    wait_until(lambda: read_status(second).get("pid") == two.pid, "the second run to queue")
    request_stop(second)
    status = read_status(second)
    assert status["state"] == "stopped" and "stopped while queued" in status["reason"]  # at once
    assert two.wait() == 0  # its waiting trainer saw the request and left
    assert read_status(second)["state"] == "stopped" and not read_metrics(second)
    assert read_status(first)["state"] == "running"  # the other run goes on
    request_stop(first)
    one.wait()


def test_nan_loss_fails_with_the_reason_and_keeps_the_last_good_checkpoint(tmp_path):
    folder = create_run(TrainConfig(source="tiny-gpt2", task="causal-lm", train_data="demo-corpus", seq_len=32,
                                    batch_size=4, method="full", learning_rate=1e30, max_grad_norm=0.0,
                                    max_steps=20, checkpoint_interval=1, eval_interval=100), tmp_path / "nan")
    assert run(folder) == "failed"
    status = read_status(folder)
    assert "the loss became nan" in status["reason"] and "last good checkpoint (step-" in status["reason"]
    last = sorted((folder / "checkpoints").glob("step-*"))[-1]
    assert (last / "trainable.safetensors").is_file()
    assert int(last.name.split("-")[1]) == len(read_metrics(folder))


def test_bad_dataset_or_rank_is_refused_before_the_run_folder_exists(tmp_path):
    data = tmp_path / "one_class.csv"
    data.write_text("text,label\ngood,1\nfine,1\n")
    with pytest.raises(lc.DataError, match="only one class"):
        create_run(TrainConfig(train_data=str(data), max_steps=5), tmp_path / "bad")
    with pytest.raises(lc.RankError, match=r"rank 500 > 384"):
        create_run(TrainConfig(adapter=lc.LamdaConfig(rank=500)), tmp_path / "bad")
    with pytest.raises(lc.TargetError):
        create_run(TrainConfig(adapter=lc.LamdaConfig(targets=["no_such_module"])), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_data_spoiled_after_queueing_fails_the_run_with_a_specific_reason(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("text,label\ngood,1\nbad,0\n")
    folder = create_run(TrainConfig(train_data=str(data), max_steps=5), tmp_path / "run")
    data.write_text("text,label\ngood,1\nfine,1\n")
    assert run(folder) == "failed"
    assert "only one class" in read_status(folder)["reason"]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A run that trained 5 steps with checkpoints at 2 and 4 and then died (status: failed)."""
    folder = create_run(TrainConfig(source="tiny-gpt2", task="causal-lm", train_data="demo-corpus", seq_len=32,
                                    batch_size=4, max_steps=5, checkpoint_interval=2, eval_interval=5,
                                    adapter=lc.LamdaConfig(rank=4)), tmp_path_factory.mktemp("runs") / "run")
    assert run(folder) == "finished"
    assert [c.name for c in RunFolder(folder).checkpoints()] == ["step-000002", "step-000004"]
    RunFolder(folder).write_status("failed", reason="killed")
    return folder


def copy_of(folder, tmp_path):
    import shutil

    return Path(shutil.copytree(folder, tmp_path / "copy"))


def test_resume_starts_from_a_verified_checkpoint(interrupted, tmp_path):
    assert RunFolder(copy_of(interrupted, tmp_path)).resume_checkpoint().name == "step-000004"


@pytest.mark.parametrize(
    "spoil,message",
    [
        (lambda c: (c / "optimizer.pt").unlink(), "is incomplete: optimizer.pt missing"),
        (lambda c: (c / "trainable.safetensors").write_bytes(b"garbage"), "is unreadable"),
        (lambda c: (c / "trainer_state.json").write_text('{"step": 3}'), "holds step 3, its folder says 4"),
        (lambda c: nan_in(c / "trainable.safetensors"), "holds non-finite values in"),
        (
            lambda c: (c.parent.parent / "run_config.json").write_text(
                (c.parent.parent / "run_config.json").read_text().replace('"seed": 0', '"seed": 1')
            ),
            "changed after checkpoint",
        ),
        (
            lambda c: RunFolder(c.parent.parent).write_status("stopped", step=5),
            "stopped at step 5 but its last checkpoint",
        ),
        (lambda c: RunFolder(c.parent.parent).write_status("failed", step=3), "is ahead of the status"),
        (lambda c: RunFolder(c.parent.parent).write_status("finished"), "has finished"),
    ],
)
def test_resume_refuses_a_checkpoint_it_cannot_trust(interrupted, tmp_path, spoil, message):
    folder = copy_of(interrupted, tmp_path)
    spoil(folder / "checkpoints" / "step-000004")
    status = read_status(folder)
    for resume in (RunFolder(folder).resume_checkpoint, lambda: run(folder), lambda: start_run(folder)):
        with pytest.raises(lc.RunError, match=message):
            resume()
    assert read_status(folder) == status  # refused before anything was written


def test_resume_without_any_checkpoint_after_steps_is_refused(interrupted, tmp_path):
    import shutil

    folder = copy_of(interrupted, tmp_path)
    shutil.rmtree(folder / "checkpoints")
    with pytest.raises(lc.RunError, match="trained 5 steps but holds no checkpoint"):
        RunFolder(folder).resume_checkpoint()


def nan_in(path):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    name = next(k for k in tensors if k.endswith("lamda_S"))
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, str(path))


def test_run_folder_misuse_is_a_specific_error(tmp_path):
    folder = create_run(TrainConfig(max_steps=5), tmp_path / "run")
    with pytest.raises(lc.RunError, match="already holds a run"):
        create_run(TrainConfig(), folder)
    with pytest.raises(lc.RunError, match="not a run folder"):
        read_status(tmp_path)
    (folder / "status.json").write_text(json.dumps({"state": "finished"}))
    with pytest.raises(lc.RunError, match="nothing to stop"):
        request_stop(folder)


def test_merged_export_of_a_finished_run_matches_the_adapter(tmp_path):
    from lamda_core.use.export import export_merged

    folder = create_run(
        TrainConfig(max_steps=4, eval_interval=4, checkpoint_interval=10, adapter=lc.LamdaConfig(rank=4)),
        tmp_path / "run",
    )
    assert run(folder) == "finished"
    merged_folder = export_merged(folder)
    merged, tokenizer = lc.load_model(str(merged_folder), num_labels=2)
    adapted, _ = lc.load_model("default", num_labels=2)
    lc.load_adapter(adapted, folder / "adapter")
    batch = tokenizer(["The tour was money well spent."], return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(merged.eval()(**batch).logits, adapted.eval()(**batch).logits, atol=1e-4)
    import zipfile

    archive = RunFolder(folder).download("peft")
    assert archive == folder / "downloads" / "peft.zip"
    names = zipfile.ZipFile(archive).namelist()
    assert "peft/adapter_config.json" in names and "peft/adapter_model.safetensors" in names
    built = archive.stat().st_mtime_ns
    assert RunFolder(folder).download("peft").stat().st_mtime_ns == built  # built once, then reused


@pytest.mark.parametrize("changes,message", [
    (dict(lr_schedule="cosin"), "unknown lr_schedule 'cosin'"),
    (dict(method="qlorax"), "unknown method 'qlorax'"),
    (dict(batch_size=0), "batch_size must be a positive integer"),
    (dict(warmup_fraction=1.5), "warmup_fraction must be in"),
])
def test_train_config_is_validated_on_construction(changes, message):
    with pytest.raises(lc.ConfigError, match=message):
        TrainConfig(**changes)


def test_each_method_gets_its_own_default_rank_and_alpha_follows_the_rank(tmp_path):
    from lamda_core import choices

    for method in ("lamda", "lora", "full"):
        adapter = TrainConfig(method=method).adapter
        assert adapter.rank == get_method(method).default_rank and adapter.alpha == 2 * adapter.rank
        assert adapter.dropout == get_method(method).default_dropout
    assert (lc.LamdaConfig().rank, lc.LamdaConfig().freeze_fraction) == (choices.DEFAULT_LAMDA_RANK, 0.01)
    assert lc.LamdaConfig(rank=8).alpha == 16 and lc.LamdaConfig(rank=8, alpha=4).alpha == 4
    for method, rank in (("lora", "8"), ("lamda", str(choices.DEFAULT_LAMDA_RANK))):  # the CLI, without --rank
        output = tmp_path / method
        result = run_cli("train", "--method", method, "--max-steps", "1", "--output", output)
        assert result.returncode == 0, result.stderr
        assert read_config(output).rank_label == rank


def test_run_config_holds_the_whole_config_with_ranks_inline(tmp_path):
    ranks = {"bert.encoder.layer.0.attention.self.query": 12}
    config = TrainConfig(method="lamda++", adapter=lc.LamdaConfig(rank=4, rank_pattern=ranks), head_learning_rate=1e-3)
    folder = create_run(config, tmp_path / "run")
    stored = json.loads((folder / "run_config.json").read_text())
    assert stored["adapter"]["rank_pattern"] == ranks and stored["adapter"]["rank"] == 4
    assert read_config(folder) == config  # rebuilt once, typed, equal
    assert not list(folder.glob("ranks*.json"))


def test_delete_is_refused_while_the_run_trains_and_removes_it_after(tmp_path):
    from lamda_core.runs.folder import delete_run

    folder = create_run(TrainConfig(max_steps=5), tmp_path / "run")
    RunFolder(folder).write_status("running", pid=os.getpid())  # a live process holds it
    with pytest.raises(lc.RunError, match="stop it before deleting"):
        delete_run(folder)
    assert folder.is_dir()
    RunFolder(folder).write_status("stopped")
    delete_run(folder)
    assert not folder.exists()


@pytest.mark.parametrize("size,batch,world", [(400, 16, 1), (400, 32, 1), (5735, 32, 1), (1000, 8, 2)])
def test_length_grouped_batches_are_deterministic_and_cover_each_epoch(size, batch, world):
    from collections import Counter

    from lamda_core.training.batches import Batches

    lengths = [(i * 7919) % 97 for i in range(size)]
    batches = [Batches(size, batch, world, rank, seed=3, lengths=lengths) for rank in range(world)]
    rounds = 4 * batches[0].rounds  # whole groups: they hold exactly their stretch of the sample stream
    seen = Counter(i for m in range(rounds) for b in batches for i in b.indices(m))
    epochs = rounds * batch * world / size
    assert set(seen) == set(range(size)) if epochs >= 1 else len(seen) == sum(seen.values())
    assert max(seen.values()) - min(seen.values()) <= 1  # every sample as often as the others
    duplicates = sum(batch - len(set(b.indices(m))) for m in range(rounds) for b in batches)
    assert duplicates <= 0.01 * rounds * batch * world  # copies of a sample rarely share a micro-batch
    again = Batches(size, batch, world, 0, seed=3, lengths=lengths)
    assert [again.indices(m) for m in range(rounds)] == [batches[0].indices(m) for m in range(rounds)]
    spread = [max(lengths[i] for i in batches[0].indices(m)) - min(lengths[i] for i in batches[0].indices(m))
              for m in range(rounds)]
    assert sum(spread) / len(spread) < 60  # similar lengths share a batch (random batches: about 90)


def test_speed_fields_are_tokens_over_the_steps_own_time():
    """summary.json's speed fields from the trainer's counters (no clock read here)."""
    from types import SimpleNamespace

    from lamda_core.training.trainer import Trainer

    counters = SimpleNamespace(first_step_at=105.5, startup_origin=100.0, train_tokens=1280, train_seconds=2.0)
    assert Trainer.speed(counters) == {"startup_seconds": 5.5, "tokens_per_second": 640.0, "training_seconds": 2.0}
    assert Trainer.speed(SimpleNamespace(first_step_at=None)) == {}
