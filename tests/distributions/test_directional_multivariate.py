"""Densities and draws of the multivariate and directional families, against scipy,
closed forms and quadrature on a grid."""

import math

import pytest
import scipy.stats
import torch

import ember
import ember.distributions as dist


def torus_grid(n=400):
    """Midpoints of an n x n grid over [-pi, pi)^2 and the area of a cell."""
    edges = torch.linspace(-math.pi, math.pi, n + 1, dtype=torch.float64)
    mid = (edges[1:] + edges[:-1]) / 2
    phi, psi = torch.meshgrid(mid, mid, indexing="ij")
    return torch.stack([phi, psi], -1).reshape(-1, 2), (2 * math.pi / n) ** 2


# --- MultivariateStudentT -----------------------------------------------------------------


def test_multivariate_student_t_density_matches_scipy():
    torch.manual_seed(0)
    df = torch.tensor(4.5, dtype=torch.float64)
    loc = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    tril = torch.tensor([[1.0, 0.0, 0.0], [0.3, 0.8, 0.0], [-0.2, 0.4, 1.5]], dtype=torch.float64)
    d = dist.MultivariateStudentT(df, loc, tril)
    x = torch.randn(10, 3, dtype=torch.float64) * 2
    expected = scipy.stats.multivariate_t(loc.numpy(), (tril @ tril.T).numpy(), df=4.5).logpdf(
        x.numpy()
    )
    assert torch.allclose(d.log_prob(x), torch.as_tensor(expected), atol=1e-10)


def test_multivariate_student_t_draws_have_its_mean_and_covariance():
    ember.set_rng_seed(0)
    df, loc = torch.tensor(7.0), torch.tensor([1.0, -2.0])
    tril = torch.tensor([[1.0, 0.0], [0.6, 0.5]])
    x = dist.MultivariateStudentT(df, loc, tril).sample((200_000,))
    cov = df / (df - 2) * tril @ tril.T
    # the mean's standard error is sqrt(diag(cov) / n)
    se = (cov.diagonal() / 200_000).sqrt()
    assert ((x.mean(0) - loc).abs() < 5 * se).all()
    assert torch.allclose(torch.cov(x.T), cov, rtol=0.05)


def test_multivariate_student_t_batches_and_expands():
    d = dist.MultivariateStudentT(torch.tensor([3.0, 5.0]), torch.zeros(2, 3), torch.eye(3))
    assert d.batch_shape == (2,) and d.event_shape == (3,)
    e = d.expand((4, 2))
    assert e.sample().shape == (4, 2, 3)
    assert e.log_prob(torch.zeros(3)).shape == (4, 2)


# --- SineBivariateVonMises ----------------------------------------------------------------


@pytest.mark.parametrize("correlation", [0.0, 0.7, -1.5])
def test_sine_bivariate_von_mises_normalizes_on_the_torus(correlation):
    d = dist.SineBivariateVonMises(
        torch.tensor(0.3, dtype=torch.float64),
        torch.tensor(-1.0, dtype=torch.float64),
        torch.tensor(2.0, dtype=torch.float64),
        torch.tensor(1.5, dtype=torch.float64),
        torch.tensor(correlation, dtype=torch.float64),
    )
    grid, area = torus_grid()
    total = d.log_prob(grid).exp().sum() * area
    assert total.item() == pytest.approx(1.0, abs=1e-6)


def test_sine_bivariate_von_mises_draws_match_quadrature_moments():
    ember.set_rng_seed(0)
    params = dict(
        phi_loc=torch.tensor(0.3),
        psi_loc=torch.tensor(-1.0),
        phi_concentration=torch.tensor(2.0),
        psi_concentration=torch.tensor(1.5),
        correlation=torch.tensor(0.7),
    )
    d = dist.SineBivariateVonMises(**params)
    x = d.sample((100_000,))
    assert x.shape == (100_000, 2)
    grid, area = torus_grid()
    d64 = dist.SineBivariateVonMises(**{k: v.double() for k, v in params.items()})
    w = d64.log_prob(grid).exp() * area
    for f in (torch.cos, torch.sin):
        for i in range(2):
            exact = (w * f(grid[:, i])).sum().item()
            drawn = f(x[:, i].double())
            se = drawn.std().item() / math.sqrt(len(drawn))
            assert drawn.mean().item() == pytest.approx(exact, abs=5 * se)


# --- SineSkewed ---------------------------------------------------------------------------


def torus_base(dtype=torch.float64):
    loc = torch.tensor([0.5, -2.0], dtype=dtype)
    conc = torch.tensor([1.0, 3.0], dtype=dtype)
    return dist.VonMises(loc, conc).to_event(1)


def test_sine_skewed_normalizes_and_skews_as_its_formula():
    skew = torch.tensor([0.4, -0.3], dtype=torch.float64)
    d = dist.SineSkewed(torus_base(), skew)
    grid, area = torus_grid()
    lp = d.log_prob(grid)
    assert (lp.exp().sum() * area).item() == pytest.approx(1.0, abs=1e-6)
    # density = base density * (1 + sum skew * sin(x - loc))
    base = torus_base().log_prob(grid)
    factor = 1 + (skew * torch.sin(grid - torch.tensor([0.5, -2.0]))).sum(-1)
    assert torch.allclose(lp, base + factor.log(), atol=1e-10)


def test_sine_skewed_draws_match_quadrature_moments():
    ember.set_rng_seed(0)
    skew = torch.tensor([0.4, -0.3])
    x = dist.SineSkewed(torus_base(torch.float32), skew).sample((100_000,)).double()
    grid, area = torus_grid()
    w = dist.SineSkewed(torus_base(), skew.double()).log_prob(grid).exp() * area
    for i in range(2):
        exact = (w * torch.sin(grid[:, i])).sum().item()
        drawn = torch.sin(x[:, i])
        se = drawn.std().item() / math.sqrt(len(drawn))
        assert drawn.mean().item() == pytest.approx(exact, abs=5 * se)


def test_sine_skewed_warns_when_the_skewness_weights_exceed_one():
    with pytest.warns(UserWarning, match="skewness"):
        dist.SineSkewed(torus_base(), torch.tensor([0.8, 0.5], dtype=torch.float64))
    with pytest.raises(ValueError, match="skewness"):  # each weight lies in [-1, 1]
        dist.SineSkewed(torus_base(), torch.tensor([1.5, 0.0], dtype=torch.float64))


# --- MixtureOfDiagNormalsSharedCovariance -------------------------------------------------


def test_mixture_of_diag_normals_shared_covariance_density_and_mean():
    locs = torch.tensor([[0.0, 1.0], [3.0, -1.0], [-2.0, 2.0]], dtype=torch.float64)
    scale = torch.tensor([0.5, 1.5], dtype=torch.float64)
    logits = torch.tensor([0.2, -0.5, 1.0], dtype=torch.float64)
    d = dist.MixtureOfDiagNormalsSharedCovariance(locs, scale, logits)
    x = torch.randn(20, 2, dtype=torch.float64) * 3
    comp = torch.distributions.Normal(locs, scale).log_prob(x.unsqueeze(-2)).sum(-1)
    expected = torch.logsumexp(comp + logits.log_softmax(-1), -1)
    assert torch.allclose(d.log_prob(x), expected, atol=1e-10)
    ember.set_rng_seed(0)
    draws = dist.MixtureOfDiagNormalsSharedCovariance(locs.float(), scale.float(), logits.float())
    y = draws.sample((200_000,)).double()
    mean = (logits.softmax(-1).unsqueeze(-1) * locs).sum(0)
    se = y.std(0) / math.sqrt(len(y))
    assert ((y.mean(0) - mean).abs() < 5 * se).all()


# --- StableWithLogProb --------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.97, 0.99, 1.0, 1.01, 1.03, 1.5])
def test_symmetric_stable_density_at_its_centre(alpha):
    # f(0) = Gamma(1 + 1/alpha) / pi for the standard symmetric stable (S0 = S1 here)
    d = dist.StableWithLogProb(torch.tensor(alpha, dtype=torch.float64), 0.0)
    exact = math.lgamma(1 + 1 / alpha) - math.log(math.pi)
    assert d.log_prob(torch.tensor(0.0, dtype=torch.float64)).item() == pytest.approx(
        exact, abs=2e-3
    )


@pytest.mark.parametrize("alpha", [0.5, 0.98, 1.0, 1.02, 1.5])  # (scipy fails within 0.01 of 1)
@pytest.mark.parametrize("beta", [0.5, -0.9])
def test_stable_density_matches_scipy_in_s0_coordinates(alpha, beta, monkeypatch):
    monkeypatch.setattr(scipy.stats.levy_stable, "parameterization", "S0")
    x = torch.linspace(-5, 5, 21, dtype=torch.float64)
    d = dist.StableWithLogProb(torch.tensor(alpha, dtype=torch.float64), beta)
    expected = scipy.stats.levy_stable.pdf(x.numpy(), alpha, beta)
    assert torch.allclose(d.log_prob(x).exp(), torch.as_tensor(expected), rtol=2e-3, atol=1e-5)


def test_stable_log_prob_reduces_to_normal_and_cauchy():
    x = torch.linspace(-4, 4, 17, dtype=torch.float64)
    scale, loc = torch.tensor(0.7, dtype=torch.float64), torch.tensor(0.3, dtype=torch.float64)
    two = dist.StableWithLogProb(torch.tensor(2.0, dtype=torch.float64), 0.0, scale, loc)
    normal = torch.distributions.Normal(loc, scale * math.sqrt(2))
    assert torch.allclose(two.log_prob(x), normal.log_prob(x), atol=1e-4)
    one = dist.StableWithLogProb(torch.tensor(1.0, dtype=torch.float64), 0.0, scale, loc)
    cauchy = torch.distributions.Cauchy(loc, scale)
    assert torch.allclose(one.log_prob(x), cauchy.log_prob(x), atol=1e-4)
