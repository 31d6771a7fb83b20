"""`python -m ember demo --quick` runs, prints its tables and checks, writes plots."""

import contextlib
import io
import math
import re
import sys

import pytest
import torch

import ember.__main__ as cli
import ember.demo as demo
import ember.demo.common as common
from ember.demo.datasets import load_eight_schools
from ember.demo.eight_schools import exact_posterior


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """``python -m ember demo --quick --out <tmp>``, run in this process (no second
    interpreter and torch import), its output captured as a pipe would see it."""
    out = tmp_path_factory.mktemp("demo_output")
    threads = torch.get_num_threads()
    buffer = io.StringIO()  # not a terminal: progress comes as plain lines
    try:
        with contextlib.redirect_stdout(buffer):
            status = cli.main(["demo", "--quick", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    return status, buffer.getvalue(), out


slow = pytest.mark.slow


@slow
def test_quick_demo_succeeds(quick_run):
    status, out, _ = quick_run
    assert status == 0, out[-4000:]
    assert "FAILED" not in out


@slow
def test_quick_demo_prints_every_model_and_its_table(quick_run):
    out = quick_run[1]
    for title in [
        "Eight schools",
        "Eight schools by NUTS: 4 chains against the exact posterior",
        "Gaussian mixture on iris",
        "Variational autoencoder",
        "Normalizing flow",
        "Sprinkler network",
        "Bayesian linear regression on the diabetes data",
    ]:
        assert f"== {title}" in out
    # the eight-schools posterior table: a header and one row per latent with the
    # fitted mean, sd, 5%, 95%, the exact mean and sd, and the range a mean must fall in
    assert re.search(r"latent\s+mean\s+sd\s+5%\s+95%\s+exact mean\s+exact sd\s+pass range", out)
    num = r"-?\d+\.\d+"
    for latent in ["mu", "tau"] + [f"theta\\[{s}\\]" for s in "ABCDEFGH"]:
        row = rf"^\s+{latent}(\s+{num}){{6}}\s+\[{num}, {num}\]$"
        assert re.search(row, out, re.M), latent
    assert "held-out" in out
    assert out.count("wall time") >= 5
    m = re.search(r"(\d+)/(\d+) checks passed", out)
    assert m and m.group(1) == m.group(2) and int(m.group(2)) >= 10


@slow
def test_quick_demo_plain_progress_lines_when_piped(quick_run):
    out = quick_run[1]
    assert re.search(r"eight schools: step \d+/\d+  loss \S+  elapsed", out)
    assert "\r" not in out  # no progress-bar redraws in a pipe


@slow
def test_quick_demo_writes_plots(quick_run):
    _, stdout, out_dir = quick_run
    pngs = sorted(p.name for p in out_dir.glob("*.png"))
    assert "eight_schools_posterior.png" in pngs and "flow_moons_density.png" in pngs
    assert len(pngs) >= 8
    assert str(out_dir.resolve()) in stdout
    for p in out_dir.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_exact_eight_schools_posterior_matches_importance_sampling():
    # independent check of the quadrature: draw (mu, tau) from the prior and weight
    # each draw by p(y | mu, tau) = prod_j N(y_j; mu, sigma_j^2 + tau^2)
    d = load_eight_schools(torch.float64)
    sigma, y = d["stderr"], d["effect"]
    exact = exact_posterior(sigma, y)
    g = torch.Generator().manual_seed(0)
    n = 100_000
    mu = 5.0 * torch.randn(n, generator=g, dtype=torch.float64)
    tau = 5.0 * torch.tan(torch.rand(n, generator=g, dtype=torch.float64) * math.pi / 2)
    var_y = sigma**2 + tau.unsqueeze(-1) ** 2
    w = torch.softmax(
        torch.distributions.Normal(mu.unsqueeze(-1), var_y.sqrt()).log_prob(y).sum(-1), 0
    )
    theta = (y * tau.unsqueeze(-1) ** 2 + mu.unsqueeze(-1) * sigma**2) / var_y  # E[theta | mu, tau]
    estimates = [(mu, exact["mu"][0])] + [(tau, exact["tau"][0])]
    estimates += [(theta[:, j], exact["theta"][0, j]) for j in range(8)]
    for f, reference in estimates:
        mean = (w * f).sum()
        se = (w**2 * (f - mean) ** 2).sum().sqrt()  # self-normalized importance sampling
        assert abs(float(mean - reference)) < 4 * float(se), (float(mean), float(reference))
    sd_mu = (w * (mu - (w * mu).sum()) ** 2).sum().sqrt()
    assert float(sd_mu) == pytest.approx(float(exact["mu"][1]), rel=0.02)
    # the published means for this model (Stan / PyMC case studies)
    assert round(float(exact["mu"][0]), 1) == 4.4 and round(float(exact["tau"][0]), 1) == 3.6
    # dtype follows the input
    assert exact_posterior(sigma.float(), y.float())["theta"].dtype == torch.float32
    with pytest.raises(ValueError, match="same length"):
        exact_posterior(sigma, y[:7])


def test_demo_without_matplotlib_installed(monkeypatch, capsys, tmp_path):
    # matplotlib made unimportable (None in sys.modules makes `import matplotlib`
    # raise ImportError), and the demo's cached pyplot forgotten
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(common, "_PYPLOT", None)
    assert common.pyplot() is None
    threads = torch.get_num_threads()
    out_dir = tmp_path / "plots"
    try:
        status = demo.main(
            ["--quick", "--only", "gmm_iris", "sprinkler", "--out", str(out_dir), "--no-progress"]
        )
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert status == 0, out[-3000:]
    assert "matplotlib is not installed" in out
    assert "pip install matplotlib" in out
    assert "4/4 checks passed" in out  # gmm_iris and sprinkler, two checks each
    assert "plots written" not in out
    assert not out_dir.exists()


def test_cli_usage_and_unknown_command(capsys):
    assert cli.main([]) == 2
    assert "python -m ember demo" in capsys.readouterr().out
    assert cli.main(["--help"]) == 0
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["demo", "--only", "nonexistent"])
