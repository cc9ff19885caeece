"""The README's Python example runs verbatim and does what its comments say."""
import re
from pathlib import Path


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
