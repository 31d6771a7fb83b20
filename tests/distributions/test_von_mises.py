"""VonMises and VonMises3D: densities against scipy and quadrature, and their samplers."""

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch

import ember.distributions as dist
from ember.distributions import VonMises, VonMises3D

# ------------------------------------------------------------------- VonMises


def test_overrides_generated_wrapper():
    assert dist.VonMises is VonMises
    assert not VonMises.has_rsample


@pytest.mark.parametrize("kappa", [0.01, 0.7, 4.0, 60.0, 700.0])
def test_log_prob_scipy(kappa):
    loc = 0.4
    d = VonMises(torch.tensor(loc, dtype=torch.float64), torch.tensor(kappa, dtype=torch.float64))
    x = torch.linspace(-math.pi, math.pi, 41, dtype=torch.float64)
    expected = scipy.stats.vonmises.logpdf(x.numpy(), kappa, loc=loc)
    assert np.allclose(d.log_prob(x).numpy(), expected, atol=1e-8)
    # angles are read modulo 2 pi
    assert torch.allclose(d.log_prob(x + 4 * math.pi), d.log_prob(x))


def test_log_prob_stable_for_huge_concentration():
    d = VonMises(torch.tensor(0.0), torch.tensor(1e5))
    lp = d.log_prob(torch.tensor([0.0, 1e-3]))
    assert torch.isfinite(lp).all()
    # Laplace limit: log_prob(loc) -> log(sqrt(kappa / (2 pi)))
    assert abs(lp[0].item() - 0.5 * math.log(1e5 / (2 * math.pi))) < 1e-3


@pytest.mark.parametrize("kappa", [0.05, 1.0, 25.0])
def test_integrates_to_one(kappa):
    d = VonMises(torch.tensor(1.0, dtype=torch.float64), torch.tensor(kappa, dtype=torch.float64))

    def density(t):
        return float(d.log_prob(torch.tensor(t, dtype=torch.float64)).exp())

    total, _ = scipy.integrate.quad(density, -math.pi, math.pi, points=[1.0], limit=200)
    assert abs(total - 1) < 1e-8


@pytest.mark.parametrize("kappa", [1e-9, 0.3, 2.0, 30.0, 3000.0])
def test_sampling_circular_moments(kappa):
    torch.manual_seed(0)
    loc = torch.tensor([-3.0, 0.5, 3.0])
    d = VonMises(loc, torch.tensor(kappa))
    n = 20000
    x = d.sample((n,))
    assert x.shape == (n, 3) and x.dtype == torch.float32
    assert (x.abs() <= math.pi + 1e-6).all()
    cos, sin = torch.cos(x - loc).double(), torch.sin(x - loc).double()
    # E[cos(x - loc)] = I1/I0 = 1 - circular variance, E[sin(x - loc)] = 0
    mean_resultant = 1 - d.variance.double()
    se_cos = (cos.var(0) / n).sqrt() + 1e-12
    se_sin = (sin.var(0) / n).sqrt() + 1e-12
    assert ((cos.mean(0) - mean_resultant).abs() < 4.5 * se_cos).all()
    assert (sin.mean(0).abs() < 4.5 * se_sin).all()
    # circular variance against scipy's I1/I0
    expected = 1 - scipy.special.i1e(kappa) / scipy.special.i0e(kappa)
    assert abs(d.variance[0].item() - expected) < 1e-6
    assert torch.equal(d.mean, loc)


def test_sampling_matches_scipy_cdf():
    torch.manual_seed(1)
    x = VonMises(torch.tensor(0.0), torch.tensor(2.0)).sample((5000,))
    ks = scipy.stats.kstest(x.numpy(), scipy.stats.vonmises(2.0).cdf)
    assert ks.pvalue > 1e-4


def test_von_mises_expand_and_bad_parameters():
    d = VonMises(torch.zeros(2, 1), torch.ones(3))
    assert d.batch_shape == (2, 3)
    e = d.expand((4, 2, 3))
    assert isinstance(e, VonMises) and e.sample().shape == (4, 2, 3)
    with pytest.raises(ValueError, match="concentration"):
        VonMises(torch.tensor(0.0), torch.tensor(-1.0), validate_args=True)
    with pytest.raises(ValueError, match="loc"):
        VonMises(torch.tensor(float("nan")), torch.tensor(1.0), validate_args=True)


# ----------------------------------------------------------------- VonMises3D


def _sphere_quadrature(n_t=200, n_phi=64):
    """Gauss-Legendre in t = cos(theta) and the trapezoid rule in phi (exact for periodic)."""
    t, wt = np.polynomial.legendre.leggauss(n_t)
    phi = 2 * np.pi * np.arange(n_phi) / n_phi
    T, P = np.meshgrid(t, phi, indexing="ij")
    s = np.sqrt(1 - T**2)
    points = np.stack([s * np.cos(P), s * np.sin(P), T], -1).reshape(-1, 3)
    weights = (wt[:, None] * np.full(n_phi, 2 * np.pi / n_phi)[None, :]).reshape(-1)
    return torch.tensor(points), torch.tensor(weights)


@pytest.mark.parametrize("kappa", [1e-6, 0.05, 1.0, 8.0, 40.0])
def test_3d_integrates_to_one_on_the_sphere(kappa):
    points, weights = _sphere_quadrature()
    direction = torch.tensor([0.3, -0.5, 0.8124], dtype=torch.float64)
    direction = direction / direction.norm()
    # a generic direction: the grid is not aligned with the mode
    d = VonMises3D(kappa * direction)
    total = (d.log_prob(points).exp() * weights).sum().item()
    assert abs(total - 1) < 1e-8


@pytest.mark.parametrize("kappa", [0.05, 1.0, 8.0, 300.0])
def test_3d_log_prob_scipy(kappa):
    torch.manual_seed(0)
    mu = torch.tensor([1.0, 2.0, -2.0], dtype=torch.float64) / 3
    x = torch.randn(10, 3, dtype=torch.float64)
    x = x / x.norm(dim=-1, keepdim=True)
    x[0] = mu
    lp = VonMises3D(kappa * mu).log_prob(x)
    expected = scipy.stats.vonmises_fisher(mu.numpy(), kappa).logpdf(x.numpy())
    assert np.allclose(lp.numpy(), expected, atol=1e-8)


def test_3d_log_prob_stable_at_extremes():
    z = torch.tensor([0.0, 0.0, 1.0])
    # kappa = 0: uniform on the sphere
    lp0 = VonMises3D(torch.zeros(3)).log_prob(z)
    assert abs(lp0.item() + math.log(4 * math.pi)) < 1e-6
    # huge kappa in float32: log(kappa / (2 pi)) at the mode
    for kappa in (1e4, 1e7):
        lp = VonMises3D(kappa * z).log_prob(z)
        assert torch.isfinite(lp)
        assert abs(lp.item() - math.log(kappa / (2 * math.pi))) < 1e-5 * max(1, math.log(kappa))
    # gradients are finite at kappa = 0 too
    c = torch.zeros(3, requires_grad=True)
    VonMises3D(c).log_prob(z).backward()
    assert torch.isfinite(c.grad).all()


@pytest.mark.parametrize("kappa", [0.0, 0.5, 5.0, 500.0])
def test_3d_sampling_moments(kappa):
    torch.manual_seed(3)
    mu = torch.tensor([[2.0, -1.0, 2.0], [0.0, 1.0, 0.0]]) / torch.tensor([[3.0], [1.0]])
    d = VonMises3D(kappa * mu)
    n = 20000
    x = d.sample((n,))
    assert x.shape == (n, 2, 3)
    assert torch.allclose(x.norm(dim=-1), torch.ones(n, 2), atol=1e-5)
    xd = x.double()
    se = (xd.var(0) / n).sqrt() + 1e-9
    assert ((xd.mean(0) - d.mean.double()).abs() < 4.5 * se).all()
    # w = mu . x has density proportional to exp(kappa w) on [-1, 1]; compare its law
    if 0 < kappa < 100:
        w = (x * mu).sum(-1)[:, 0].double().numpy()
        cdf = lambda t: np.expm1(kappa * (t + 1)) / np.expm1(2 * kappa)  # noqa: E731
        assert scipy.stats.kstest(w, cdf).pvalue > 1e-4


def test_3d_mean_closed_form():
    mu = torch.tensor([0.0, 0.6, 0.8], dtype=torch.float64)
    for kappa in (1e-5, 0.5, 3.0, 50.0):
        expected = (1 / math.tanh(kappa) - 1 / kappa) * mu
        assert torch.allclose(VonMises3D(kappa * mu).mean, expected, atol=1e-9)


def test_3d_shapes_and_bad_input():
    d = VonMises3D(torch.ones(4, 1, 3))
    assert d.batch_shape == (4, 1) and d.event_shape == (3,)
    e = d.expand((4, 5))
    assert isinstance(e, VonMises3D) and e.sample((2,)).shape == (2, 4, 5, 3)
    assert VonMises3D.infer_shapes(concentration=(4, 3)) == ((4,), (3,))
    with pytest.raises(ValueError, match="concentration"):
        VonMises3D(torch.ones(2))
    with pytest.raises(ValueError):
        VonMises3D(torch.ones(3), validate_args=True).log_prob(torch.ones(3))


def test_module_paths_and_dtypes():
    from ember.distributions.von_mises_3d import VonMises3D as from_module

    assert from_module is VonMises3D
    d = VonMises(torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    assert d.sample((3,)).dtype == torch.float64
    d3 = VonMises3D(torch.ones(2, 3, dtype=torch.float64))
    x = d3.sample((3,))
    assert x.dtype == torch.float64 and d3.log_prob(x).dtype == torch.float64
