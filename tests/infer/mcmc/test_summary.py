"""MCMC summaries and diagnostics against direct computations."""

import math

import numpy as np
import pytest
import torch

from ember.infer.mcmc.summary import (
    diagnostics,
    diagnostics_from_stats,
    print_summary,
    select_samples,
    summary,
)
from ember.ops.stats import effective_sample_size, gelman_rubin, hpdi, split_gelman_rubin
from ember.ops.streaming import CountMeanVarianceStats


def draws():
    g = torch.Generator().manual_seed(0)
    return {
        "mu": torch.randn(3, 200, generator=g, dtype=torch.double) + 1.5,
        "theta": torch.randn(3, 200, 2, 2, generator=g, dtype=torch.double).exp(),
    }


def test_summary_values():
    samples = draws()
    out = summary(samples, prob=0.8)
    assert list(out) == ["mu", "theta"]
    assert list(out["mu"]) == ["mean", "std", "median", "10.0%", "90.0%", "n_eff", "r_hat"]
    for name, value in samples.items():
        flat = value.reshape((-1,) + value.shape[2:]).numpy()
        row = out[name]
        np.testing.assert_allclose(row["mean"].numpy(), flat.mean(0))
        np.testing.assert_allclose(row["std"].numpy(), flat.std(0, ddof=1))
        # 600 draws: torch's median is the lower of the two middle values
        np.testing.assert_allclose(row["median"].numpy(), np.sort(flat, 0)[299])
        interval = hpdi(torch.from_numpy(flat), 0.8)
        torch.testing.assert_close(row["10.0%"], interval[0])
        torch.testing.assert_close(row["90.0%"], interval[1])
        torch.testing.assert_close(row["n_eff"], effective_sample_size(value))
        torch.testing.assert_close(row["r_hat"], split_gelman_rubin(value))
        assert row["mean"].shape == value.shape[2:]


def test_summary_default_prob_names_and_single_chain():
    samples = draws()
    single = summary({"mu": samples["mu"][0]}, group_by_chain=False)["mu"]
    grouped = summary({"mu": samples["mu"][:1]})["mu"]
    assert "5.0%" in single and "95.0%" in single
    for key in single:
        torch.testing.assert_close(single[key], grouped[key])


def test_iid_draws_diagnostics():
    torch.manual_seed(1)
    chains, n = 4, 1000
    x = torch.randn(chains, n, dtype=torch.double)
    row = summary({"x": x})["x"]
    assert abs(row["r_hat"].item() - 1) < 0.01
    assert abs(row["n_eff"].item() / (chains * n) - 1) < 0.1
    assert abs(row["mean"].item()) < 4 / math.sqrt(chains * n)
    # the 90% HPD interval of N(0, 1) is +-1.645
    assert row["95.0%"].item() - row["5.0%"].item() == pytest.approx(2 * 1.645, abs=0.1)


def test_diagnostics_and_nan_for_too_few_draws():
    samples = draws()
    d = diagnostics(samples)
    torch.testing.assert_close(d["theta"]["r_hat"], split_gelman_rubin(samples["theta"]))
    with pytest.warns(UserWarning, match="site 'short'"):
        d = diagnostics({"short": torch.randn(2, 1)})
    assert math.isnan(d["short"]["n_eff"].item())


def test_diagnostics_from_streaming_stats_equal_gelman_rubin():
    x = draws()["theta"]
    statistics = {}
    for chain in range(x.shape[0]):
        s = CountMeanVarianceStats()
        for draw in x[chain]:
            s.update(draw)
        statistics[(chain, "theta")] = s.get()
    r_hat = diagnostics_from_stats(statistics, x.shape[1], x.shape[0])["theta"]["r_hat"]
    torch.testing.assert_close(r_hat, gelman_rubin(x))


def test_print_summary_table(capsys):
    samples = draws()
    print_summary(samples, prob=0.9)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ""
    assert lines[1].split() == ["mean", "std", "median", "5.0%", "95.0%", "n_eff", "r_hat"]
    labels = [line.split()[0] for line in lines[2:-1]]
    assert labels == ["mu", "theta[0,0]", "theta[0,1]", "theta[1,0]", "theta[1,1]"]
    table = summary(samples, prob=0.9)
    row = [float(v) for v in lines[4].split()[1:]]  # theta[0,1]
    expected = [round(float(v[0, 1]), 2) for v in table["theta"].values()]
    assert row == pytest.approx(expected, abs=0.0051)
    # all rows are right-aligned to one width
    assert len({len(line) for line in lines[1:-1]}) == 1


def test_select_samples():
    samples = draws()
    flat = select_samples(samples)
    assert flat["theta"].shape == (600, 2, 2)
    torch.manual_seed(0)
    picked = select_samples(samples, num_samples=7)
    assert picked["mu"].shape == (7,) and picked["theta"].shape == (7, 2, 2)
    # the same draw indices for every site
    idx = [(flat["mu"] == v).nonzero().item() for v in picked["mu"]]
    torch.testing.assert_close(picked["theta"], flat["theta"][idx])
    by_chain = select_samples(samples, num_samples=5, group_by_chain=True)
    assert by_chain["theta"].shape == (3, 5, 2, 2)


def test_bad_input():
    with pytest.raises(ValueError, match=r"samples\['x'\] has shape \(5,\)"):
        summary({"x": torch.randn(5)})
    with pytest.raises(TypeError, match="must be a dict"):
        summary([torch.randn(2, 5)])
    with pytest.raises(ValueError, match="prob must be in"):
        summary({"x": torch.randn(2, 5)}, prob=1.5)
