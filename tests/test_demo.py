"""`python -m ember demo --quick` runs, prints its tables and checks, writes plots."""

import re
import subprocess
import sys

import pytest

import ember.__main__ as cli
import ember.demo as demo
import ember.demo.common as common


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_output")
    proc = subprocess.run(
        [sys.executable, "-m", "ember", "demo", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, out


slow = pytest.mark.slow


@slow
def test_quick_demo_succeeds(quick_run):
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "FAILED" not in proc.stdout


@slow
def test_quick_demo_prints_every_model_and_its_table(quick_run):
    out = quick_run[0].stdout
    for title in [
        "Eight schools",
        "Gaussian mixture on iris",
        "Variational autoencoder",
        "Normalizing flow",
        "Sprinkler network",
    ]:
        assert f"== {title}" in out
    # the eight-schools posterior table: a header and one row per latent with 4 numbers
    assert re.search(r"latent\s+mean\s+sd\s+5%\s+95%", out)
    number = r"-?\d+\.\d+"
    for latent in ["mu", "tau"] + [f"theta\\[{s}\\]" for s in "ABCDEFGH"]:
        assert re.search(rf"^\s+{latent}\s+{number}\s+{number}\s+{number}\s+{number}$", out, re.M)
    assert "held-out" in out
    assert out.count("wall time") >= 5
    m = re.search(r"(\d+)/(\d+) checks passed", out)
    assert m and m.group(1) == m.group(2) and int(m.group(2)) >= 8


@slow
def test_quick_demo_plain_progress_lines_when_piped(quick_run):
    out = quick_run[0].stdout
    assert re.search(r"eight schools: step \d+/\d+  loss \S+  elapsed", out)
    assert "\r" not in out  # no progress-bar redraws in a pipe


@slow
def test_quick_demo_writes_plots(quick_run):
    proc, out_dir = quick_run
    pngs = sorted(p.name for p in out_dir.glob("*.png"))
    assert "eight_schools_posterior.png" in pngs and "flow_moons_density.png" in pngs
    assert len(pngs) >= 8
    assert str(out_dir.resolve()) in proc.stdout
    for p in out_dir.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_without_matplotlib_says_how_to_get_plots(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(demo, "pyplot", lambda: None)
    monkeypatch.setattr(common, "pyplot", lambda: None)
    status = demo.main(["--quick", "--only", "sprinkler", "--out", str(tmp_path / "x")])
    out = capsys.readouterr().out
    assert status == 0
    assert "pip install matplotlib" in out
    assert not (tmp_path / "x").exists()


def test_cli_usage_and_unknown_command(capsys):
    assert cli.main([]) == 2
    assert "python -m ember demo" in capsys.readouterr().out
    assert cli.main(["--help"]) == 0
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["demo", "--only", "nonexistent"])
