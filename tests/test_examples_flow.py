"""examples/flow_2d.py runs end to end with a tiny step count and answers --help.

The end-to-end run goes through a subprocess (the script as a user runs it);
the argument checks call the script's ``main`` in-process, which is faster.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "flow_2d.py"
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def _load_example():
    spec = importlib.util.spec_from_file_location("flow_2d_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120, env=ENV
    )


def test_flow_example_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _load_example().main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--steps" in out and "--out" in out and "--flows" in out


def test_flow_example_tiny_run(tmp_path):
    proc = _run(
        "--steps", "3", "--flows", "iaf", "radial", "--num-data", "200", "--out", str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for text in ["best Gaussian", "true density", "iaf flow", "radial flow", "vs Gaussian"]:
        assert text in out, out
    # every reported log-likelihood is a finite number
    rows = [ln.split() for ln in out.splitlines() if "flow " in ln and "vs Gaussian" in ln]
    assert len(rows) == 2 and all(float(r[2]) == float(r[2]) for r in rows)
    png = tmp_path / "flow_2d_density.png"
    if importlib.util.find_spec("matplotlib") is not None:
        assert png.exists() and png.stat().st_size > 1000
        assert "density plot written" in out
    else:
        assert "matplotlib is not installed" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--steps", "-1"], "--steps must be >= 0"),
        (["--flows", "maf"], "invalid choice: 'maf'"),
    ],
)
def test_flow_example_rejects_bad_arguments(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        _load_example().main(argv)
    assert exit_info.value.code != 0
    assert message in capsys.readouterr().err
