import subprocess
import sys


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "lamda_core.cli", *args], capture_output=True, text=True)


def test_matrices_lists_default_targets():
    result = run_cli("matrices", "default")
    assert result.returncode == 0, result.stderr
    assert "bert.encoder.layer.5.output.dense" in result.stdout
    assert "36 default targets: ffn_in x6, ffn_out x6, k x6, o x6, q x6, v x6" in result.stdout


def test_bad_source_is_a_message_not_a_traceback(tmp_path):
    result = run_cli("matrices", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: no such model folder") and "Traceback" not in result.stderr
