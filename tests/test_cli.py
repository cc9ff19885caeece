"""The command line: each subcommand's output, files and refusals (in this process: the entry
point itself runs once, in test_every_subcommand_has_help)."""
import subprocess
import sys

import pytest
from conftest import run_cli

from lamda_core.cli import build_parser, main


def test_matrices_lists_default_targets():
    result = run_cli("matrices", "default")
    assert result.returncode == 0, result.stderr
    assert "bert.encoder.layer.5.output.dense" in result.stdout
    assert "36 default targets: ffn_in x6, ffn_out x6, k x6, o x6, q x6, v x6" in result.stdout


def test_bad_source_is_a_message_not_a_traceback(tmp_path):
    result = run_cli("matrices", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: no such model folder") and "Traceback" not in result.stderr


def test_spectrum_prints_a_table_and_writes_json(tmp_path):
    result = run_cli("spectrum", "default", "--top-k", "16", "--json", str(tmp_path / "s.json"))
    assert result.returncode == 0, result.stderr
    assert "scanning spectra" in result.stderr and "36/36" in result.stderr  # the progress bar
    assert "encoder.layer.0.attention.self.query" in result.stdout and "top 16 singular values" in result.stdout
    from lamda_core import SpectrumReport

    report = SpectrumReport.from_json(tmp_path / "s.json")
    assert len(report.matrices) == 36 and all(len(m.sigma) == 16 for m in report.matrices)


def test_allocate_writes_ranks_that_sum_to_the_budget(tmp_path):
    out = tmp_path / "ranks.json"
    result = run_cli("allocate", "default", "--base-rank", "8", "--budget", "300", "--multiple", "2",
                     "--json", str(out))
    assert result.returncode == 0, result.stderr
    from lamda_core import Allocation

    allocation = Allocation.from_json(out)
    assert allocation.total_rank == 300 and all(r % 2 == 0 for r in allocation.ranks.values())
    assert "total rank 300" in result.stdout


def test_allocate_by_the_task_gradient_needs_and_reads_a_training_file(tmp_path):
    out = tmp_path / "ranks.json"
    result = run_cli("allocate", "default", "--base-rank", "8", "--strategy", "gradient", "--json", str(out))
    assert result.returncode == 2 and "pass --data TRAIN_FILE" in result.stderr and not out.exists()
    result = run_cli("allocate", "default", "--base-rank", "8", "--strategy", "gradient", "--data", "demo-sentiment",
                     "--json", str(out))
    assert result.returncode == 0, result.stderr
    from lamda_core import Allocation

    allocation = Allocation.from_json(out)
    assert allocation.strategy == "gradient" and allocation.total_rank == 8 * 36
    assert len(set(allocation.ranks.values())) > 1


def test_allocate_with_an_impossible_budget_is_a_message(tmp_path):
    result = run_cli("allocate", "default", "--base-rank", "8", "--budget", "5", "--json", str(tmp_path / "r.json"))
    assert result.returncode == 2 and "error: a rank budget of 5 is outside" in result.stderr


def test_estimate_prints_methods_side_by_side_and_measures(tmp_path):
    out = tmp_path / "costs.json"
    result = run_cli("estimate", "tiny-gpt2", "--task", "causal-lm", "--batch", "2", "--seq", "16", "--measure",
                     "--json", str(out))
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if line.startswith("component"))
    assert header.split()[1:] == ["lamda", "est", "lamda", "measured", "full", "est", "lora", "est", "dora", "est",
                                  "pissa", "est", "vera", "est"]
    assert "note: psoft left out" in result.stdout and "Conv1D" in result.stdout  # PEFT's PSOFT: nn.Linear only
    error_line = next(line for line in result.stdout.splitlines() if line.startswith("relative error"))
    assert "weights +0.0%" in error_line
    peak_error = float(error_line.split("peak ")[1].split("%")[0])
    assert abs(peak_error) < 5  # the estimated peak against the allocator's (benchmarks/memory.py)
    assert next(line for line in result.stdout.splitlines() if line.startswith("peak in")).split()[2] in (
        "forward", "backward", "optimizer")
    import json

    data = json.loads(out.read_text())
    assert data["lamda est"]["total"] == data["lamda est"]["weights"] + data["lamda est"]["gradients"] + \
        data["lamda est"]["optimizer"] + data["lamda est"]["activations"]


def test_estimate_bad_sequence_length_is_a_message():
    result = run_cli("estimate", "default", "--seq", "100000")
    assert result.returncode == 2 and "exceeds the model's maximum of 512 positions" in result.stderr


@pytest.mark.heavy
def test_stop_resume_and_export_through_the_command_line(tmp_path):
    run_folder, merged = tmp_path / "run", tmp_path / "merged"
    trained = run_cli("train", "--method", "lamda", "--rank", "4", "--max-steps", "3", "--eval-interval", "3",
                      "--output", str(run_folder))
    assert trained.returncode == 0, trained.stderr
    stopped = run_cli("stop", str(run_folder))  # finished: nothing to stop, a message and status 2
    assert stopped.returncode == 2 and stopped.stderr.startswith("error:") and "nothing to stop" in stopped.stderr
    resumed = run_cli("resume", str(tmp_path / "missing"))
    assert resumed.returncode == 2 and "not a run folder" in resumed.stderr and "Traceback" not in resumed.stderr
    exported = run_cli("export", str(run_folder), "--merged", str(merged))
    assert exported.returncode == 0, exported.stderr
    assert (merged / "config.json").is_file() and (merged / "model.safetensors").is_file()


def test_train_refuses_a_config_typo_before_creating_the_run(tmp_path):
    result = run_cli("train", "--lr", "-1", "--output", str(tmp_path / "run"))
    assert result.returncode == 2 and "learning_rate must be positive" in result.stderr
    assert not (tmp_path / "run").exists()


def test_every_subcommand_has_help(capsys):
    result = subprocess.run([sys.executable, "-m", "lamda_core.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("usage: lamda")
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"matrices", "spectrum", "allocate", "estimate", "train", "resume", "stop", "runs", "export",
            "doctor"} <= set(commands)
    for name in commands:
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0 and capsys.readouterr().out.startswith(f"usage: lamda {name}"), name


def test_train_refuses_an_impossible_rank_or_bad_data_before_creating_the_run(tmp_path):
    result = run_cli("train", "--rank", "500", "--output", str(tmp_path / "run"))
    assert result.returncode == 2 and "rank 500 > 384" in result.stderr
    data = tmp_path / "d.csv"
    data.write_text("review,score\ngood,1\nbad,0\n")
    result = run_cli("train", "--data", str(data), "--output", str(tmp_path / "run"))
    assert result.returncode == 2 and "its columns are ['review', 'score']" in result.stderr
    assert not (tmp_path / "run").exists()


def test_train_on_a_headerless_file_says_how_it_read_it(tmp_path):
    data = tmp_path / "reviews.tsv"
    data.write_text("".join(f"{text}\t{label}\n" for text, label in [("a warm film", 1), ("dull", 0)] * 10))
    result = run_cli("train", "--data", str(data), "--max-steps", "2", "--eval-interval", "2",
                     "--output", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert "note: reviews.tsv: no header line; read as two columns, column 1 the text" in result.stdout


def test_resume_of_a_tampered_run_is_refused_and_changes_nothing(tmp_path):
    folder = tmp_path / "run"
    trained = run_cli("train", "--source", "tiny-gpt2", "--task", "causal-lm", "--data", "demo-corpus", "--rank", "4",
                      "--max-steps", "3", "--checkpoint-interval", "2", "--output", str(folder))
    assert trained.returncode == 0, trained.stderr
    status = folder / "status.json"
    status.write_text(status.read_text().replace('"finished"', '"failed"'))
    config = folder / "run_config.json"
    config.write_text(config.read_text().replace('"seed": 0', '"seed": 7'))
    before = status.read_text()
    result = run_cli("resume", str(folder))
    assert result.returncode == 2 and "changed after checkpoint step-000002" in result.stderr
    assert status.read_text() == before


def test_doctor_reports_every_check():
    result = run_cli("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    names = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("ok")]
    assert names == ["python", "packages", "threads", "memory", "disk", "embedded", "embedded", "gpu"]
    assert "MiniLM loads (22.7 M parameters)" in result.stdout and "all checks passed" in result.stdout
    assert "SmolLM2-135M-Instruct (embedded) ready" in result.stdout


def test_doctor_says_what_to_do_when_the_runs_disk_is_full(monkeypatch, tmp_path):
    import shutil
    from collections import namedtuple

    from lamda_core import doctor

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * 2**30, 10 * 2**30 - 2**20, 2**20))
    check = next(c for c in doctor.run_checks(tmp_path / "runs") if c.name == "disk")
    assert not check.ok and "0.0 GiB free" in check.detail and "free disk space" in check.advice


def test_train_fits_a_defaulted_rank_to_the_model_and_names_the_largest_rank_that_works(tmp_path):
    """The Tiny Llama's key and value projections are 32 wide: LaMDA's default rank 40 is capped
    to 32 with a note; a typed rank 40 is refused with the rank that works."""
    result = run_cli("train", "--source", "tiny-llama", "--max-steps", "1", "--eval-interval", "1",
                     "--output", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert "note: lamda's default rank 40 is larger than" in result.stdout and "this run uses rank 32" in result.stdout
    result = run_cli("train", "--source", "tiny-llama", "--rank", "40", "--output", str(tmp_path / "typed"))
    assert result.returncode == 2 and "the largest rank every targeted matrix allows is 32" in result.stderr
    assert not (tmp_path / "typed").exists()
