"""The built wheel carries its package data: installed without the editable link, the demo
datasets still load."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_and_loads_demo_data(tmp_path):
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(ROOT)], check=True, cwd=tmp_path)
    wheel = next(wheels.glob("lamda_studio-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, cwd=tmp_path)
    probe = ("import lamda_core, pathlib; from lamda_core.data.reading import load_classification; "
             "data = load_classification('demo-sentiment'); "
             "print(pathlib.Path(lamda_core.__file__).parent, len(data.train_texts), len(data.validation_texts))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                            env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    location, train, validation = result.stdout.split()
    assert Path(location) == target / "lamda_core"  # the installed copy, not the source tree
    assert (int(train), int(validation)) == (400, 100)
