"""Every script in examples/ runs end to end with a tiny size, and answers --help."""

import runpy
import sys
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# script -> (tiny arguments, text its output must contain)
TINY = {
    "eight_schools_svi.py": (["--num-steps", "4", "--num-samples", "20"], ["theta[H]"]),
    "gmm_enumeration.py": (["--num-steps", "4"], ["weights:", "P(component)"]),
    "vae.py": (["--epochs", "1", "--batch-size", "300"], ["held-out ELBO/image"]),
    "tracegraph_baselines.py": (
        ["--num-steps", "2", "--variance-repeats", "3", "--warmup", "2", "--num-points", "40"],
        ["baseline nn", "true component means"],
    ),
    "importance_search.py": (["--num-samples", "200"], ["effective sample size"]),
    "masking_subsampling.py": (
        ["--num-points", "500", "--num-steps", "5", "--batch-size", "50"],
        ["observed labels"],
    ),
    "flow_2d.py": (["--num-steps", "3"], ["held-out log-likelihood"]),
    "svi_distributed.py": (["--steps", "3"], ["1 process(es), 3 steps: final loss"]),
    "mcmc_distributed.py": (["--samples", "50", "--warmup", "50"], ["1 chains on rank 0", "r_hat"]),
}


@pytest.fixture
def one_thread():
    # the examples are small, and the suite runs in parallel: one torch thread each
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _scripts():
    return sorted(p.name for p in EXAMPLES.glob("*.py"))


def test_every_example_has_a_tiny_run():
    missing = [s for s in _scripts() if s not in TINY]
    assert not missing, f"add tiny arguments for {missing} to TINY in tests/test_examples.py"


@pytest.mark.parametrize("script", _scripts())
def test_example_help(script, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out and "--" in out


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TINY))
def test_example_runs(script, tmp_path, capsys, monkeypatch, one_thread):
    # run in this process as ``python <script> <args>`` would: same __main__ path,
    # without paying for a fresh interpreter and torch import per script
    if not (EXAMPLES / script).exists():
        pytest.skip(f"{script} is not in examples/")
    args, expected = TINY[script]
    monkeypatch.chdir(tmp_path)  # anything a script writes lands in a temporary folder
    monkeypatch.setattr(sys, "argv", [script, *args])
    try:
        runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    except SystemExit as exit_info:  # a script may end with sys.exit(0)
        assert exit_info.code in (0, None), capsys.readouterr().err[-3000:]
    out = capsys.readouterr().out
    for text in expected:
        assert text in out, out[-2000:]
    if script == "importance_search.py":  # Search is exact: it matches the brute-force sum
        rows = [ln.split() for ln in out.splitlines() if ln.strip().startswith("k=")]
        assert len(rows) == 6
        for row in rows:  # "k=4  search 0.1667  brute force 0.1667"
            assert row[2] == row[5]
