"""The warm launcher (runs/launcher.py, training/warm.py): a run forked from it is an ordinary run
(its own process, peak memory and log, the same losses as a cold run, stopped and resumed like
one), a run that crashes takes neither the launcher nor other runs down, and without a launcher
runs start cold."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_until

import lamda_core as lc
from lamda_core.runs import launcher
from lamda_core.runs.config import TrainConfig
from lamda_core.runs.folder import RunFolder, create_run, read_metrics, read_status, request_stop, start_run
from lamda_core.training.trainer import run

TINY = dict(source="tiny-gpt2", task="causal-lm", train_data="demo-corpus", seq_len=32, batch_size=4,
            eval_interval=10, checkpoint_interval=5, adapter=lc.LamdaConfig(rank=4), learning_rate=5e-3)

pytestmark = pytest.mark.xdist_group("launcher")  # one worker: the launcher's requests in order


def test_a_warm_run_is_an_ordinary_run_with_its_own_process_peak_and_log(tmp_path):
    cold = create_run(TrainConfig(max_steps=10, **TINY), tmp_path / "cold")
    start_run(cold).wait()
    warm = create_run(TrainConfig(max_steps=10, **TINY), tmp_path / "warm")
    process = start_run(warm, warm=True)
    assert isinstance(process, launcher.WarmProcess)
    process.wait()
    assert read_status(warm)["state"] == read_status(cold)["state"] == "finished"
    assert read_status(warm)["pid"] == process.pid != launcher.ping()  # the run's own process, not the launcher
    assert "training: 100%" in (warm / "train.log").read_text()  # the trainer's output in the run's log
    # the same computation as a cold process
    assert [m["loss"] for m in read_metrics(warm)] == pytest.approx([m["loss"] for m in read_metrics(cold)], rel=1e-5)
    cold_summary, warm_summary = RunFolder(cold).summary(), RunFolder(warm).summary()
    for summary in (cold_summary, warm_summary):
        # recorded; their sizes are benchmarks/startup.py's and throughput.py's business
        assert {"startup_seconds", "tokens_per_second", "training_seconds"} <= summary.keys()
    # its own peak: the trainer's process (the launcher's imported stack counts as a cold run's imports do)
    assert warm_summary["peak_memory_mib"] == pytest.approx(cold_summary["peak_memory_mib"], rel=0.35)


def test_a_warm_run_stops_and_resumes_to_the_uninterrupted_losses(tmp_path):
    reference = create_run(TrainConfig(max_steps=30, **TINY), tmp_path / "reference")
    assert run(reference) == "finished"
    folder = create_run(TrainConfig(max_steps=30, **TINY), tmp_path / "stopped")
    process = start_run(folder, warm=True)
    wait_until(lambda: read_status(folder).get("step", 0) >= 6, "step 6")
    request_stop(folder)
    process.wait()
    assert read_status(folder)["state"] == "stopped" and RunFolder(folder).checkpoints()
    start_run(folder, warm=True).wait()
    assert read_status(folder)["state"] == "finished"
    metrics = read_metrics(folder)
    assert [m["step"] for m in metrics] == list(range(1, 31))
    assert [m["loss"] for m in metrics] == pytest.approx([m["loss"] for m in read_metrics(reference)], rel=1e-5)


def test_a_killed_run_takes_neither_the_launcher_nor_other_runs_down(tmp_path):
    doomed = create_run(TrainConfig(max_steps=2000, **TINY), tmp_path / "doomed")
    process = start_run(doomed, warm=True)
    serving = launcher.ping()
    wait_until(lambda: read_status(doomed).get("step", 0) >= 2, "step 2")
    os.killpg(process.pid, signal.SIGKILL)  # its own session: the launcher is not in it
    process.wait()
    assert read_status(doomed)["state"] == "running" and not RunFolder(doomed).is_live()  # what a crash leaves
    assert launcher.ping() == serving
    survivor = create_run(TrainConfig(max_steps=3, **TINY), tmp_path / "survivor")
    start_run(survivor, warm=True).wait()
    assert read_status(survivor)["state"] == "finished" and launcher.ping() == serving


def test_without_the_launcher_a_run_starts_cold(tmp_path, monkeypatch):
    monkeypatch.setenv("LAMDA_LAUNCHER", "off")
    folder = create_run(TrainConfig(max_steps=2, **TINY), tmp_path / "cold")
    process = start_run(folder, warm=True)
    assert isinstance(process, subprocess.Popen)
    process.wait()
    assert read_status(folder)["state"] == "finished"


def test_a_launcher_that_cannot_start_is_a_clear_error(tmp_path, monkeypatch):
    """A broken launcher (here: one whose imports fail) is reported with its log, and the run
    starts cold with a note."""
    monkeypatch.setenv("HF_LAUNCHER_TEST_KEY", str(tmp_path))  # a launcher of its own (a new import-time key)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    (tmp_path / "accelerate.py").write_text("raise ImportError('accelerate is broken here')\n")
    with pytest.raises(launcher.LauncherError, match="exited with code 1 while starting"):
        launcher.ensure_launcher()
    assert "accelerate is broken here" in launcher.socket_path().with_suffix(".log").read_text()


def test_a_process_that_exited_is_gone_even_before_it_is_reaped():
    """A run's trainer that exited but was not waited for (a zombie: an orphan under an init that
    does not reap) must not count as a live run, or waiting for it never ends."""
    from lamda_core.runs.processes import alive

    parent = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time\n"
                               "child = subprocess.Popen(['true'])\nprint(child.pid, flush=True)\ntime.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        zombie = int(parent.stdout.readline())
        wait_until(lambda: not alive(zombie), "the exited grandchild to count as gone")
        assert Path(f"/proc/{zombie}").exists()  # still in the process table: not reaped, yet gone
        assert alive(parent.pid) and not alive(None)
    finally:
        parent.kill()
    parent.wait()
    assert not alive(parent.pid)


def test_a_warm_run_named_by_a_relative_path_trains_in_the_callers_directory(tmp_path, monkeypatch):
    """`lamda compare --root runs` names its folders relative to the caller's directory, which is
    not the launcher's (the CI hang: the trainer opened runs/.../train.log from the wrong one)."""
    monkeypatch.chdir(tmp_path)
    folder = create_run(TrainConfig(max_steps=2, **TINY), Path("runs") / "relative")
    start_run(folder, warm=True).wait()
    assert read_status(tmp_path / "runs" / "relative")["state"] == "finished"


def test_a_run_the_launcher_cannot_start_is_failed_with_the_reason_and_not_live(tmp_path):
    folder = create_run(TrainConfig(max_steps=2, **TINY), tmp_path / "unstartable")
    RunFolder(folder).write_status("queued")
    process = launcher.start_warm(folder, tmp_path / "no such folder" / "train.log")  # the child cannot open its log
    process.wait()
    status = read_status(folder)
    assert status["state"] == "failed" and "could not start its trainer" in status["reason"]
    assert "No such file or directory" in status["reason"] and not RunFolder(folder).is_live()


def test_a_queued_run_whose_process_died_is_not_live(tmp_path):
    """Otherwise a page or `lamda compare` would follow it forever."""
    run_folder = RunFolder(create_run(TrainConfig(max_steps=2, **TINY), tmp_path / "queued"))
    assert run_folder.is_live()  # created, its process not started yet
    gone = subprocess.Popen(["true"])
    gone.wait()
    run_folder.write_status("queued", pid=gone.pid)
    assert not run_folder.is_live()
