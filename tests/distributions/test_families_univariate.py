"""Univariate continuous families: density against scipy or quadrature, moments,
goodness of fit of samples, shapes, and pathwise gradients."""

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch

import ember.distributions as dist
from ember.distributions.testing.gof import auto_goodness_of_fit

D = torch.float64


def t(x):
    return torch.tensor(x, dtype=D)


# (name, constructor taking float64 tensors, parameter values, scipy frozen dist or None)
CASES = [
    ("SoftLaplace", dist.SoftLaplace, (0.3, 1.7), None),
    ("AsymmetricLaplace", dist.AsymmetricLaplace, (0.3, 1.5, 2.0), None),
    ("AsymmetricLaplace_left", dist.AsymmetricLaplace, (-1.0, 0.5, 0.4), None),
    ("SoftAsymmetricLaplace", dist.SoftAsymmetricLaplace, (0.3, 1.5, 2.0, 0.7), None),
    ("SoftAsymmetricLaplace_sharp", dist.SoftAsymmetricLaplace, (0.0, 1.0, 0.5, 0.05), None),
    ("Logistic", dist.Logistic, (0.5, 1.5), scipy.stats.logistic(0.5, 1.5)),
    ("SkewLogistic", dist.SkewLogistic, (0.5, 1.5, 2.5), scipy.stats.genlogistic(2.5, 0.5, 1.5)),
    (
        "AffineBeta",
        dist.AffineBeta,
        (2.4, 3.6, -1.0, 2.0),
        scipy.stats.beta(2.4, 3.6, loc=-1.0, scale=2.0),
    ),
    ("Stable_sym", dist.Stable, (1.5, 0.0, 2.0, -2.0), None),
    ("Stable_skew", dist.Stable, (0.8, -0.7, 1.0, 0.5), None),
]
IDS = [c[0] for c in CASES]


def make(case, shape=()):
    _, cls, params, _ = case
    return cls(*(t(p).expand(shape) for p in params))


def density(d):
    return lambda x: float(d.log_prob(t(x)).exp())


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_density_against_scipy_or_normalized(case):
    d = make(case)
    ref = case[3]
    xs = np.linspace(-3.0, 3.0, 13)
    if ref is not None:
        inside = ref.pdf(xs) > 0
        lp = d.log_prob(t(xs[inside])).numpy()
        np.testing.assert_allclose(lp, ref.logpdf(xs[inside]), rtol=1e-7, atol=1e-9)
    elif not isinstance(d, dist.Stable):  # (the Stable is compared with scipy below)
        lo, hi = -np.inf, np.inf
        total, err = scipy.integrate.quad(density(d), lo, hi, limit=400)
        assert total == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    "case", [c for c in CASES if c[3] is None and c[1] is not dist.Stable], ids=lambda c: c[0]
)
def test_moments_by_quadrature(case):
    d = make(case)
    f = density(d)
    mean = scipy.integrate.quad(lambda x: x * f(x), -np.inf, np.inf, limit=400)[0]
    var = scipy.integrate.quad(lambda x: (x - mean) ** 2 * f(x), -np.inf, np.inf, limit=400)[0]
    assert float(d.mean) == pytest.approx(mean, abs=1e-6)
    assert float(d.variance) == pytest.approx(var, rel=1e-6)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_samples_fit_density(case):
    torch.manual_seed(0)
    d = make(case)
    x = d.sample((4000,))
    probs = d.log_prob(x).exp()
    assert auto_goodness_of_fit(x, probs) > 1e-3


def test_stable_matches_scipy_s0():
    scipy.stats.levy_stable.parameterization = "S0"
    xs = np.array([-10.0, -2.0, -0.3, 0.0, 0.5, 3.0, 10.0])
    for a, b in [(1.5, 0.0), (0.5, 0.0), (1.5, 0.5), (0.8, -0.7), (2.0, 0.0)]:
        d = dist.Stable(t(a), t(b), t(2.0), t(-2.0))
        ref = scipy.stats.levy_stable.logpdf(xs, a, b, loc=-2.0, scale=2.0)
        np.testing.assert_allclose(d.log_prob(t(xs)).numpy(), ref, rtol=1e-6, atol=1e-6)


def test_stable_s_coords_shift_the_location():
    scipy.stats.levy_stable.parameterization = "S1"
    xs = np.array([-2.0, 0.0, 1.0])
    d = dist.Stable(t(1.5), t(0.5), t(2.0), t(1.0), coords="S")
    ref = scipy.stats.levy_stable.logpdf(xs, 1.5, 0.5, loc=1.0, scale=2.0)
    scipy.stats.levy_stable.parameterization = "S0"
    np.testing.assert_allclose(d.log_prob(t(xs)).numpy(), ref, rtol=1e-6)


def test_stable_mean_in_both_coords():
    torch.manual_seed(2)
    for coords in ("S0", "S"):
        d = dist.Stable(t(1.8), t(0.6), t(0.5), t(1.0), coords=coords)
        x = d.sample((200000,))
        # the variance is infinite: compare medians of means of blocks instead of a z-score
        blocks = x.reshape(100, -1).mean(-1)
        assert float(blocks.median()) == pytest.approx(float(d.mean), abs=0.05)


def test_stable_samples_match_scipy_cdf():
    scipy.stats.levy_stable.parameterization = "S0"
    torch.manual_seed(1)
    n = 20000
    for a, b in [(1.5, 0.5), (1.0, 0.3), (0.7, -0.4)]:
        x = dist.Stable(t(a), t(b), t(2.0), t(-1.0)).sample((n,))
        for q in (-3.0, -1.0, 0.5):
            p = scipy.stats.levy_stable.cdf(q, a, b, loc=-1.0, scale=2.0)
            se = math.sqrt(p * (1 - p) / n)
            assert float((x < q).double().mean()) == pytest.approx(p, abs=5 * se)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_shapes_expand_to_event_mask(case):
    d = make(case, (3,))
    assert d.batch_shape == (3,) and d.event_shape == ()
    e = d.expand((2, 3))
    assert type(e) is type(d) and e.batch_shape == (2, 3)
    x = e.sample((4,))
    assert x.shape == (4, 2, 3)
    assert torch.allclose(e.log_prob(x), d.log_prob(x))
    ev = e.to_event(1)
    assert ev.event_shape == (3,) and ev.log_prob(x).shape == (4, 2)
    m = e.mask(torch.tensor([True, False, True]))
    assert (m.log_prob(x)[..., 1] == 0).all()
    assert torch.equal(m.log_prob(x)[..., 0], e.log_prob(x)[..., 0])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_validation_rejects_bad_parameters(case):
    _, cls, params, _ = case
    bad = list(params)
    bad[1] = -1.0  # the second parameter is positive (or a concentration) in every case
    if cls is dist.Stable:
        bad[0] = 2.5
    with pytest.raises(ValueError):
        cls(*(t(p) for p in bad), validate_args=True)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_pathwise_gradient_matches_finite_differences(case):
    _, cls, params, _ = case
    if not cls.has_rsample:
        pytest.skip("not reparameterized")
    # Beta draws come from a rejection sampler with implicit gradients in the
    # concentrations; a same-seed finite difference only applies to loc and scale there.
    first = 2 if cls is dist.AffineBeta else 0
    for i in range(first, len(params)):
        theta = [t(p) for p in params]
        theta[i] = theta[i].clone().requires_grad_()
        torch.manual_seed(3)
        x = cls(*theta).rsample((50,))
        (grad,) = torch.autograd.grad(x.sum(), [theta[i]])
        h = 1e-6
        moved = []
        for sign in (1, -1):
            p = [v.detach() for v in theta]
            p[i] = p[i] + sign * h
            torch.manual_seed(3)
            moved.append(cls(*p).rsample((50,)).sum())
        fd = (moved[0] - moved[1]) / (2 * h)
        assert float(grad) == pytest.approx(float(fd), rel=1e-4, abs=1e-5), f"parameter {i}"


def test_soft_asymmetric_laplace_tends_to_asymmetric_laplace():
    x = t([-2.0, -0.5, 0.7, 3.0])
    hard = dist.AsymmetricLaplace(t(0.2), t(1.3), t(1.7)).log_prob(x)
    soft = dist.SoftAsymmetricLaplace(t(0.2), t(1.3), t(1.7), t(1e-4)).log_prob(x)
    assert torch.allclose(hard, soft, atol=1e-3)


def test_logistic_and_soft_laplace_cdf_icdf_roundtrip():
    u = t([0.01, 0.3, 0.5, 0.9])
    for d in [dist.Logistic(t(1.0), t(2.0)), dist.SoftLaplace(t(1.0), t(2.0))]:
        assert torch.allclose(d.cdf(d.icdf(u)), u)
    d = dist.SkewLogistic(t(1.0), t(2.0), t(0.3))
    assert torch.allclose(d.cdf(d.icdf(u)), u)


def test_folded_normal_is_half_normal_and_folds_any_base():
    x = t([0.1, 0.5, 2.0])
    d = dist.FoldedDistribution(dist.Normal(t(0.0), t(1.5)))
    ref = scipy.stats.halfnorm(scale=1.5).logpdf(x.numpy())
    np.testing.assert_allclose(d.log_prob(x).numpy(), ref, rtol=1e-10)
    d = dist.FoldedDistribution(dist.Normal(t(0.7), t(1.2)))
    ref = scipy.stats.foldnorm(0.7 / 1.2, scale=1.2).logpdf(x.numpy())
    np.testing.assert_allclose(d.log_prob(x).numpy(), ref, rtol=1e-10)
    torch.manual_seed(0)
    y = d.sample((4000,))
    assert (y >= 0).all()
    assert auto_goodness_of_fit(y, d.log_prob(y).exp()) > 1e-3
    with pytest.raises(ValueError, match="univariate"):
        dist.FoldedDistribution(dist.MultivariateNormal(torch.zeros(2), torch.eye(2)))


def test_affine_beta_support_and_moments():
    d = dist.AffineBeta(t(2.0), t(3.0), t(-1.0), t(4.0))
    assert float(d.low) == -1.0 and float(d.high) == 3.0
    ref = scipy.stats.beta(2.0, 3.0, loc=-1.0, scale=4.0)
    assert float(d.mean) == pytest.approx(ref.mean())
    assert float(d.variance) == pytest.approx(ref.var())
    x = d.rsample((1000,))
    assert ((x > -1.0) & (x < 3.0)).all()
