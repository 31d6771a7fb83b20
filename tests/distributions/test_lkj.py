"""LKJCorrCholesky: normalization (d = 2, 3 by quadrature, any d by the C-vine formula),
agreement with torch's LKJCholesky, and the law of the sampled correlations."""

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch

import ember.distributions as dist
from ember.distributions import LKJCorrCholesky


@pytest.mark.parametrize("eta", [0.6, 1.0, 2.5])
def test_d2_integrates_to_one(eta):
    # For d = 2 the only free entry of L is L[1, 0] = r, the correlation itself.
    # quad probes r within rounding of +-1, where L[1, 1] underflows: skip support checks
    d = LKJCorrCholesky(2, torch.tensor(eta, dtype=torch.float64), validate_args=False)

    def density_over_weight(r):
        r = min(max(r, -1 + 1e-15), 1 - 1e-15)
        one_minus_r2 = (1 - r) * (1 + r)
        L = torch.tensor([[1.0, 0.0], [r, math.sqrt(one_minus_r2)]], dtype=torch.float64)
        return float(d.log_prob(L).exp()) / one_minus_r2 ** (eta - 1)

    # quad's algebraic weight (1 + r)^(eta - 1) (1 - r)^(eta - 1) absorbs the endpoint behaviour
    total, _ = scipy.integrate.quad(density_over_weight, -1, 1, weight="alg", wvar=(eta - 1,) * 2)
    assert abs(total - 1) < 1e-8


def test_d3_integrates_to_one_over_correlations():
    # Integrate p_C(C) = p_L(chol C) / |dC/dL| over the three correlations, with
    # |dC/dL| = L11 for d = 3, on a midpoint grid of the cube (outside the elliptope: 0).
    eta = 2.0  # the density vanishes on the boundary, so the midpoint rule converges fast
    d = LKJCorrCholesky(3, torch.tensor(eta, dtype=torch.float64), validate_args=False)
    m = 100
    h = 2.0 / m
    grid = -1 + h * (torch.arange(m, dtype=torch.float64) + 0.5)
    c10, c20, c21 = torch.meshgrid(grid, grid, grid, indexing="ij")
    l11 = (1 - c10**2).sqrt()
    l21 = (c21 - c20 * c10) / l11
    rest = 1 - c20**2 - l21**2
    inside = rest > 0
    L = torch.zeros(c10.shape + (3, 3), dtype=torch.float64)
    L[..., 0, 0] = 1
    L[..., 1, 0], L[..., 1, 1] = c10, l11
    L[..., 2, 0], L[..., 2, 1] = c20, l21
    L[..., 2, 2] = rest.clamp_min(1e-300).sqrt()
    density = d.log_prob(L).exp() / l11
    total = (density * inside).sum().item() * h**3
    assert abs(total - 1) < 3e-3


def _cvine_log_normalizer(d, eta):
    """log of the integral of det(C)^(eta - 1) over d x d correlation matrices (LKJ 2009)."""
    total = 0.0
    for k in range(1, d):
        b = eta + (d - 1 - k) / 2
        log_beta = 2 * math.lgamma(b) - math.lgamma(2 * b)
        total += (d - k) * ((2 * b - 1) * math.log(2) + log_beta)
    return total


@pytest.mark.parametrize("d", [2, 3, 4, 7])
@pytest.mark.parametrize("eta", [0.3, 1.0, 4.0])
def test_log_prob_at_identity_is_minus_cvine_normalizer(d, eta):
    lkj = LKJCorrCholesky(d, torch.tensor(eta, dtype=torch.float64))
    lp = lkj.log_prob(torch.eye(d, dtype=torch.float64)).item()
    assert abs(lp + _cvine_log_normalizer(d, eta)) < 1e-9


def test_d2_matches_beta_density():
    # r = 2 B - 1 with B ~ Beta(eta, eta) when d = 2.
    eta = 1.7
    r = torch.linspace(-0.95, 0.95, 21, dtype=torch.float64)
    L = torch.zeros(21, 2, 2, dtype=torch.float64)
    L[:, 0, 0], L[:, 1, 0], L[:, 1, 1] = 1, r, (1 - r**2).sqrt()
    lp = LKJCorrCholesky(2, torch.tensor(eta, dtype=torch.float64)).log_prob(L)
    expected = scipy.stats.beta.logpdf((r.numpy() + 1) / 2, eta, eta) - math.log(2)
    assert np.allclose(lp.numpy(), expected, atol=1e-10)


def test_agrees_with_torch_lkj_cholesky_wrapper():
    torch.manual_seed(0)
    eta = torch.tensor([0.5, 1.0, 3.0])
    for d in (2, 4, 6):
        theirs = dist.LKJCholesky(d, eta)
        assert isinstance(theirs, dist.TorchDistributionMixin)
        L = theirs.sample((5,))
        assert L.shape == (5, 3, d, d)
        ours = LKJCorrCholesky(d, eta)
        assert torch.allclose(ours.log_prob(L), theirs.log_prob(L), atol=1e-4)


@pytest.mark.parametrize("d,eta", [(2, 0.8), (4, 1.0), (5, 3.0)])
def test_sampled_correlations_have_the_lkj_marginal(d, eta):
    # Every off-diagonal correlation is 2 B - 1, B ~ Beta(b, b), b = eta + (d - 2) / 2.
    torch.manual_seed(d)
    lkj = LKJCorrCholesky(d, torch.tensor(eta, dtype=torch.float64))
    n = 4000
    L = lkj.sample((n,))
    assert L.shape == (n, d, d)
    assert dist.constraints.corr_cholesky.check(L).all()
    C = L @ L.mT
    i, j = torch.tril_indices(d, d, -1)
    r = C[:, i, j]
    b = eta + (d - 2) / 2
    second_moment = 1 / (2 * b + 1)
    # E[r^4] for r = 2B - 1: 3 / ((2b + 1)(2b + 3))
    fourth = 3 / ((2 * b + 1) * (2 * b + 3))
    se_mean = math.sqrt(second_moment / n)
    se_sq = math.sqrt((fourth - second_moment**2) / n)
    assert (r.mean(0).abs() < 4.5 * se_mean).all()
    assert ((r**2).mean(0) - second_moment).abs().max() < 4.5 * se_sq
    ks = scipy.stats.kstest(((r[:, 0] + 1) / 2).numpy(), scipy.stats.beta(b, b).cdf)
    assert ks.pvalue > 1e-4


def test_shapes_expand_and_bad_parameters():
    lkj = LKJCorrCholesky(3, torch.ones(2, 1))
    assert lkj.batch_shape == (2, 1) and lkj.event_shape == (3, 3)
    e = lkj.expand((4, 2, 5))
    assert isinstance(e, LKJCorrCholesky) and e.sample().shape == (4, 2, 5, 3, 3)
    assert LKJCorrCholesky(2, 1.5).batch_shape == ()
    assert LKJCorrCholesky.infer_shapes(d=3, eta=(4,)) == ((4,), (3, 3))
    with pytest.raises(ValueError, match="eta"):
        LKJCorrCholesky(3, torch.tensor(-1.0), validate_args=True)
    with pytest.raises(ValueError, match="d must"):
        LKJCorrCholesky(1, torch.tensor(1.0))
    with pytest.raises(ValueError):
        LKJCorrCholesky(2, torch.tensor(1.0), validate_args=True).log_prob(torch.ones(2, 2))


def test_seed_usage_as_scale_tril_of_a_multivariate_normal():
    # scale_tril = diag(sqrt(theta)) @ Omega, with Omega ~ LKJCorrCholesky
    torch.manual_seed(5)
    theta = torch.tensor([1.0, 4.0, 9.0])
    omega = LKJCorrCholesky(3, torch.tensor(2.0)).sample()
    scale_tril = torch.mm(torch.diag(theta.sqrt()), omega)
    mvn = dist.MultivariateNormal(torch.zeros(3), scale_tril=scale_tril)
    assert torch.allclose(mvn.covariance_matrix.diagonal(), theta, rtol=1e-5)
    assert mvn.sample((4,)).shape == (4, 3)


def test_dtype_follows_eta():
    lkj = LKJCorrCholesky(4, torch.tensor([1.0, 2.0], dtype=torch.float64))
    L = lkj.sample((3,))
    assert L.dtype == torch.float64 and lkj.log_prob(L).dtype == torch.float64
