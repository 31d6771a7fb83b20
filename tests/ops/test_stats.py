"""ember.ops.stats against direct definitions (brute-force loops in numpy), closed
forms and scipy."""

import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

from ember.ops.stats import (
    autocorrelation,
    autocovariance,
    crps_empirical,
    cummin,
    effective_sample_size,
    energy_score_empirical,
    fit_generalized_pareto,
    gelman_rubin,
    hpdi,
    pi,
    quantile,
    resample,
    split_gelman_rubin,
    waic,
    weighed_quantile,
)


def ar1(n, phi, chains=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(chains, n, generator=g, dtype=torch.double)
    x = torch.empty(chains, n, dtype=torch.double)
    x[:, 0] = eps[:, 0] / math.sqrt(1 - phi**2)  # stationary start
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + eps[:, t]
    return x


def brute_autocorrelation(x):
    x = np.asarray(x, dtype=float)
    n = len(x)
    c = x - x.mean()
    var = (c * c).mean()
    return np.array([(c[: n - k] * c[k:]).sum() / (n - k) / var for k in range(n)])


def brute_ess(draws):
    """Stan's ESS written out with explicit loops over chains and lags."""
    draws = np.asarray(draws, dtype=float)
    m, n = draws.shape
    acov = np.empty((m, n))
    for c in range(m):
        d = draws[c] - draws[c].mean()
        for k in range(n):
            acov[c, k] = (d[: n - k] * d[k:]).sum() / (n - k)  # as autocovariance()
    w = draws.var(axis=1, ddof=1).mean()
    var_plus = (n - 1) / n * w + (draws.mean(axis=1).var(ddof=1) if m > 1 else 0.0)
    if m == 1:
        w = var_plus
    rho = [1.0] + [1 - (w - acov[:, k].mean()) / var_plus for k in range(1, n)]
    pairs = [rho[2 * t] + rho[2 * t + 1] for t in range(n // 2)]
    tau = 2 * pairs[0] - 1
    running = math.inf
    for p in pairs[1:]:
        running = min(running, max(p, 0.0))
        tau += 2 * running
    return m * n / tau


def test_autocorrelation_matches_definition():
    x = torch.randn(37, dtype=torch.double)
    np.testing.assert_allclose(autocorrelation(x).numpy(), brute_autocorrelation(x), atol=1e-10)
    v = x.var(unbiased=False)
    np.testing.assert_allclose(
        autocovariance(x).numpy(), brute_autocorrelation(x) * v.item(), atol=1e-10
    )


def test_autocorrelation_ar1_closed_form():
    phi, n = 0.7, 20000
    x = ar1(n, phi)[0]
    rho = autocorrelation(x)[:6]
    exact = torch.tensor([phi**k for k in range(6)], dtype=torch.double)
    # Bartlett: var(rho_k) ~ (1 + phi^2) / (1 - phi^2) / n for the AR(1)
    se = math.sqrt((1 + phi**2) / (1 - phi**2) / n)
    assert (rho - exact).abs().max() < 5 * se


def test_autocorrelation_dims_and_constant():
    x = torch.randn(3, 4, 9)
    x[1, 2] = 2.5
    y = autocorrelation(x, dim=-1)
    assert y.shape == x.shape
    assert (y[1, 2] == 1).all()
    np.testing.assert_allclose(y[0, 1].numpy(), brute_autocorrelation(x[0, 1]), atol=1e-5)
    np.testing.assert_allclose(
        autocorrelation(x.transpose(0, 2), dim=0).numpy(), y.transpose(0, 2).numpy(), atol=1e-6
    )


def test_cummin():
    x = torch.tensor([3.0, 1.0, 2.0, 0.5, 4.0])
    assert cummin(x).tolist() == [3.0, 1.0, 1.0, 0.5, 0.5]


def test_gelman_rubin_formula():
    x = torch.randn(3, 50, dtype=torch.double) + torch.tensor([[0.0], [0.3], [-0.2]])
    d = x.numpy()
    n = d.shape[1]
    w = d.var(axis=1, ddof=1).mean()
    b_over_n = d.mean(axis=1).var(ddof=1)
    expected = math.sqrt(((n - 1) / n * w + b_over_n) / w)
    assert gelman_rubin(x).item() == pytest.approx(expected, rel=1e-12)


def test_split_gelman_rubin_is_gelman_rubin_of_halves():
    x = torch.randn(2, 11)  # odd length: the middle draw is dropped
    halves = torch.stack([x[0, :5], x[0, 6:], x[1, :5], x[1, 6:]])
    assert split_gelman_rubin(x).item() == pytest.approx(gelman_rubin(halves).item(), rel=1e-6)
    # a single drifting chain is flagged
    drift = torch.linspace(0, 10, 200).unsqueeze(0) + 0.1 * torch.randn(1, 200)
    assert split_gelman_rubin(drift).item() > 2


def test_rhat_near_one_for_mixed_chains():
    torch.manual_seed(0)
    x = torch.randn(4, 2000)
    assert abs(gelman_rubin(x).item() - 1) < 0.01
    assert abs(split_gelman_rubin(x).item() - 1) < 0.01


@pytest.mark.parametrize("shape", [(1, 40), (3, 41), (4, 100)])
def test_ess_matches_brute_force(shape):
    x = ar1(shape[1], 0.5, chains=shape[0], seed=1)
    assert effective_sample_size(x).item() == pytest.approx(brute_ess(x.numpy()), rel=1e-9)


def test_ess_iid_and_ar1():
    n, chains = 5000, 4
    torch.manual_seed(1)
    iid = torch.randn(chains, n, dtype=torch.double)
    ess = effective_sample_size(iid).item()
    assert abs(ess / (n * chains) - 1) < 0.1
    phi = 0.8
    x = ar1(n, phi, chains=chains, seed=2)
    expected = n * chains * (1 - phi) / (1 + phi)
    assert abs(effective_sample_size(x).item() / expected - 1) < 0.2


def test_diagnostics_dims():
    x = torch.randn(4, 60, 3, 2)
    for fn in (gelman_rubin, split_gelman_rubin, effective_sample_size):
        y = fn(x)
        assert y.shape == (3, 2)
        moved = x.permute(2, 1, 3, 0)  # (3, 60, 2, 4)
        torch.testing.assert_close(fn(moved, chain_dim=-1, sample_dim=1), y)


def test_diagnostics_bad_input():
    with pytest.raises(ValueError, match="chain dim and a sample dim"):
        effective_sample_size(torch.randn(10))
    with pytest.raises(ValueError, match="at least 2 chains"):
        gelman_rubin(torch.randn(1, 10))
    with pytest.raises(ValueError, match="must differ"):
        gelman_rubin(torch.randn(3, 10), chain_dim=1, sample_dim=-1)


@pytest.mark.parametrize("probs", [0.3, [0.0, 0.25, 0.5, 0.99, 1.0]])
def test_quantile_matches_numpy(probs):
    x = torch.randn(13, 4, dtype=torch.double)
    expected = np.quantile(x.numpy(), probs, axis=0)
    np.testing.assert_allclose(quantile(x, probs).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(
        quantile(x.T, probs, dim=1).numpy(),
        np.moveaxis(np.atleast_2d(expected), 0, 1) if np.ndim(probs) else expected,
        rtol=1e-12,
    )


def test_pi_is_central_quantiles():
    x = torch.randn(101)
    torch.testing.assert_close(pi(x, 0.9), quantile(x, [0.05, 0.95]))


def test_hpdi_brute_force():
    x = torch.randn(57, 3).exp()
    prob = 0.7
    out = hpdi(x, prob)
    assert out.shape == (2, 3)
    s = np.sort(x.numpy(), axis=0)
    k = int(prob * 57)
    for j in range(3):
        widths = [s[i + k, j] - s[i, j] for i in range(57 - k)]
        i = int(np.argmin(widths))
        assert out[:, j].tolist() == pytest.approx([s[i, j], s[i + k, j]])


def test_hpdi_known_distributions():
    torch.manual_seed(3)
    n = 100000
    # Exponential(1): the HPD interval of mass p is [0, -log(1 - p)]
    x = torch.empty(n, dtype=torch.double).exponential_()
    lo, hi = hpdi(x, 0.5).tolist()
    assert lo == pytest.approx(0.0, abs=1e-3)
    assert hi == pytest.approx(math.log(2), abs=0.02)
    # symmetric unimodal: the central interval
    # symmetric unimodal: the central interval. Its width is pinned down well; its
    # position is not (the width is flat to first order in a shift), so it gets a
    # looser tolerance.
    z = torch.randn(n, dtype=torch.double)
    lo, hi = hpdi(z, 0.8).tolist()
    assert hi - lo == pytest.approx(2 * sps.norm.ppf(0.9), abs=0.02)
    assert (lo + hi) / 2 == pytest.approx(0.0, abs=0.15)


def test_weighed_quantile_hand_computed():
    # sorted values 10, 40, 50 with weights .4, .1, .5: rescaled cumulative weights
    # 0, 1/6, 1; p = 0.2 lies 1/25 of the way from 40 to 50; p = 0.8 is 19/25 of it.
    x = torch.tensor([[10.0, 50.0, 40.0]])
    out = weighed_quantile(x, [0.2, 0.8], torch.tensor([0.4, 0.5, 0.1]).log(), dim=-1)
    torch.testing.assert_close(out, torch.tensor([[40.4, 47.6]]))


def test_weighed_quantile_dim_zero_is_columnwise():
    x = torch.randn(7, 3, dtype=torch.double)
    log_w = torch.randn(7, dtype=torch.double)
    probs = [0.2, 0.5, 0.9]
    out = weighed_quantile(x, probs, log_w, dim=0)
    assert out.shape == (3, 3)
    for j in range(3):
        torch.testing.assert_close(out[:, j], weighed_quantile(x[:, j], probs, log_w))


def test_weighed_quantile_importance_weights():
    torch.manual_seed(0)
    n = 200000
    x = torch.randn(n, dtype=torch.double)
    # N(0, 1) samples weighted by N(0, 1) density target N(0, 1/2)
    log_w = -0.5 * x**2
    probs = [0.1, 0.5, 0.9]
    out = weighed_quantile(x, probs, log_w)
    expected = sps.norm(0, math.sqrt(0.5)).ppf(probs)
    np.testing.assert_allclose(out.numpy(), expected, atol=0.01)


def test_weighed_quantile_bad_weights():
    with pytest.raises(ValueError, match="log_weights must be 1-d with 3"):
        weighed_quantile(torch.randn(3), [0.5], torch.zeros(4))


def test_resample():
    x = torch.arange(100.0)
    y = resample(x, 60)
    assert y.unique().numel() == 60
    z = resample(x.reshape(10, 10), 30, dim=1, replacement=True)
    assert z.shape == (10, 30)
    assert ((z - z[:1]) == torch.arange(10.0).unsqueeze(-1) * 10).all()  # same columns
    with pytest.raises(ValueError, match="replacement=True"):
        resample(x, 101)


def test_waic_matches_definition():
    ll = torch.randn(30, 5, dtype=torch.double) - 2
    log_w = torch.randn(30, dtype=torch.double)
    w = np.exp(log_w.numpy() - log_w.numpy().max())
    w /= w.sum()
    lik = np.exp(ll.numpy())
    lpd = np.log((w[:, None] * lik).sum(0))
    mean = (w[:, None] * ll.numpy()).sum(0)
    p = (w[:, None] * (ll.numpy() - mean) ** 2).sum(0) * 30 / 29
    w_pw, p_pw = waic(ll, log_w, pointwise=True)
    np.testing.assert_allclose(p_pw.numpy(), p, rtol=1e-10)
    np.testing.assert_allclose(w_pw.numpy(), -2 * (lpd - p), rtol=1e-10)
    tot_w, tot_p = waic(ll.T, log_w, dim=1)
    assert tot_w.item() == pytest.approx(w_pw.sum().item())
    assert tot_p.item() == pytest.approx(p.sum())


@pytest.mark.parametrize("k, sigma", [(0.2, 0.8), (0.5, 1.3), (-0.1, 1.0)])
def test_fit_generalized_pareto(k, sigma):
    n = 20000
    x = sps.genpareto.rvs(c=k, scale=sigma, size=n, random_state=np.random.RandomState(5))
    fit_k, fit_sigma = fit_generalized_pareto(torch.tensor(x))
    ml_k, _, ml_sigma = sps.genpareto.fit(x, floc=0)
    # the empirical-Bayes fit and the maximum likelihood fit agree far within the
    # sampling error of either (se(k) ~ (1 + k) / sqrt(n))
    se = (1 + abs(k)) / math.sqrt(n)
    assert abs(fit_k - ml_k) < se
    assert abs(fit_k - k) < 4 * se
    assert abs(fit_sigma / ml_sigma - 1) < 2 * se
    with pytest.raises(ValueError, match="1-dimensional"):
        fit_generalized_pareto(torch.ones(3, 3))


@pytest.mark.parametrize("num_samples", [1, 2, 7])
def test_crps_and_energy_score_brute_force(num_samples):
    truth = torch.randn(3, 2, dtype=torch.double)
    pred = truth + torch.randn(num_samples, 3, 2, dtype=torch.double)
    p, t = pred.numpy(), truth.numpy()
    expected = np.abs(p - t).mean(0) - 0.5 * np.abs(p[:, None] - p[None]).mean((0, 1))
    np.testing.assert_allclose(crps_empirical(pred, truth).numpy(), expected, atol=1e-12)
    # univariate energy score is the CRPS
    es = energy_score_empirical(pred.movedim(0, -1).unsqueeze(-1), truth.unsqueeze(-1))
    np.testing.assert_allclose(es.numpy(), expected, atol=1e-12)


def test_energy_score_multivariate_brute_force_and_batches():
    pred = torch.randn(2, 9, 4, dtype=torch.double)
    truth = torch.randn(2, 4, dtype=torch.double)
    p, t = pred.numpy(), truth.numpy()
    expected = np.linalg.norm(p - t[:, None], axis=-1).mean(-1) - 0.5 * np.linalg.norm(
        p[:, :, None] - p[:, None], axis=-1
    ).mean((-1, -2))
    np.testing.assert_allclose(energy_score_empirical(pred, truth).numpy(), expected)
    for size in (1, 4, 9, 20):
        np.testing.assert_allclose(
            energy_score_empirical(pred, truth, pred_batch_size=size).numpy(), expected
        )
    with pytest.raises(ValueError, match="at most one extra dim"):
        energy_score_empirical(torch.randn(2, 3, 4, 5), torch.randn(5))
    with pytest.raises(ValueError, match="one extra sample dim"):
        crps_empirical(torch.randn(4, 3), torch.randn(2))
