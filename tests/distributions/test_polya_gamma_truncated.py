"""TruncatedPolyaGamma: density against the Polya-Gamma series and its Laplace transform,
normalization and mean by quadrature, sampler moments, shapes and pickling."""

import io
import math
import pickle

import numpy as np
import pytest
import scipy.integrate
import torch

import ember.distributions as dist

D = torch.float64


def series_density(x, terms=400):
    """PG(1, 0) density from the small-x series with many terms (float64 numpy)."""
    n = np.arange(terms)
    odd = 2 * n + 1
    x = np.asarray(x, dtype=float)[..., None]
    vals = (-1.0) ** n * odd / np.sqrt(2 * np.pi * x**3) * np.exp(-(odd**2) / (8 * x))
    return vals.sum(-1)


def make(shape=()):
    return dist.TruncatedPolyaGamma(torch.zeros((), dtype=D)).expand(shape)


def density(d):
    return lambda x: float(d.log_prob(torch.tensor(x, dtype=D)).exp())


def test_density_matches_long_series_up_to_the_truncation_mass():
    d = make()
    xs = np.array([0.02, 0.05, 0.1, 0.159, 0.16, 0.161, 0.25, 0.5, 1.0, 2.0, 2.49])
    ref = np.log(series_density(xs)) - d.log_normalizer()
    np.testing.assert_allclose(d.log_prob(torch.tensor(xs, dtype=D)).numpy(), ref, rtol=1e-10)


def test_normalized_and_laplace_transform_by_quadrature():
    d = make()
    f = density(d)
    t = d.truncation_point
    total = scipy.integrate.quad(f, 0, t, points=[0.16], limit=200)[0]
    assert total == pytest.approx(1.0, abs=1e-9)
    # E[exp(-s X)] of PG(1, 0) is 1 / cosh(sqrt(s / 2)); the truncation removes < 6e-6
    for s in [0.5, 2.0, 10.0]:
        lt = scipy.integrate.quad(lambda x, s=s: math.exp(-s * x) * f(x), 0, t, points=[0.16])[0]
        assert lt == pytest.approx(1 / math.cosh(math.sqrt(s / 2)), abs=1e-5)
    mean = scipy.integrate.quad(lambda x: x * f(x), 0, t, points=[0.16], limit=200)[0]
    assert float(d.mean) == pytest.approx(mean, abs=1e-10)
    assert float(d.mean) == pytest.approx(0.25, abs=2e-5)
    second = scipy.integrate.quad(lambda x: x * x * f(x), 0, t, points=[0.16], limit=200)[0]
    assert float(d.variance) == pytest.approx(second - mean**2, abs=1e-10)
    assert float(d.variance) == pytest.approx(1 / 24, abs=1e-4)  # PG(1, 0)'s, nearly


def test_log_normalizer_is_the_mass_below_the_truncation_point():
    tail = scipy.integrate.quad(
        lambda x: series_density(x), dist.TruncatedPolyaGamma.truncation_point, np.inf
    )[0]
    assert math.exp(dist.TruncatedPolyaGamma.log_normalizer()) == pytest.approx(1 - tail, abs=1e-12)


def test_sampler_mean_and_variance():
    torch.manual_seed(0)
    n = 200000
    x = make().sample((n,))
    assert ((x > 0) & (x <= 2.5)).all()
    # PG(1, 0) has mean 1/4 and variance 1/24; the sampler keeps the mean exactly and
    # drops the variance of the replaced tail, sum_{k>8} 1 / (4 pi^4 (k - 1/2)^4)
    tail_var = sum(1 / (4 * math.pi**4 * (k - 0.5) ** 4) for k in range(9, 100000))
    var = 1 / 24 - tail_var
    assert float(x.mean()) == pytest.approx(0.25, abs=4 * math.sqrt(var / n))
    # standard error of the sample variance from the sample's fourth central moment
    m4 = float(((x - x.mean()) ** 4).mean())
    assert float(x.var()) == pytest.approx(var, abs=4 * math.sqrt((m4 - var**2) / n))


@pytest.mark.parametrize("shape", [(), (3,), (2, 1)])
def test_shapes_expand_to_event_mask(shape):
    d = make(shape)
    assert d.batch_shape == shape and d.event_shape == ()
    x = d.sample((5,))
    assert x.shape == (5,) + shape and x.dtype == D
    assert d.log_prob(x).shape == (5,) + shape
    assert d.mean.shape == shape
    # no parameters: the density is elementwise in a value of any shape
    grid = torch.linspace(0.05, 2.0, 7, dtype=D)
    assert torch.equal(d.log_prob(grid.expand(4, 7)), make().log_prob(grid).expand(4, 7))
    e = make((2, 3))
    assert e.to_event(2).log_prob(e.sample((4,))).shape == (4,)
    m = e.mask(torch.tensor([True, False, True]))
    assert (m.log_prob(e.sample())[..., 1] == 0).all()


def test_validation_and_prototype():
    d = dist.TruncatedPolyaGamma(torch.ones(2, dtype=torch.float32), validate_args=True)
    assert d.batch_shape == () and d.sample().dtype == torch.float32
    with pytest.raises(ValueError):
        d.log_prob(torch.tensor(3.0))
    with pytest.raises(TypeError, match="prototype"):
        dist.TruncatedPolyaGamma("float")


def test_pickle_roundtrip():
    d = make((2,))
    buf = io.BytesIO()
    torch.save(d, buf, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    buf.seek(0)
    back = torch.load(buf, weights_only=False)
    assert type(back) is dist.TruncatedPolyaGamma and back.batch_shape == (2,)
    x = torch.tensor([0.3, 1.2], dtype=D)
    assert torch.equal(back.log_prob(x), d.log_prob(x))
