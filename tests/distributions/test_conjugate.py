"""BetaBinomial, DirichletMultinomial, GammaPoisson against scipy, enumeration and sampling."""

import itertools

import numpy as np
import pytest
import scipy.stats
import torch

import ember.distributions as dist
from ember.distributions import BetaBinomial, DirichletMultinomial, GammaPoisson


def _check_moments(samples, mean, variance, n_se=4.5):
    """Sample mean and variance within ``n_se`` standard errors of the analytic ones."""
    x = samples.double()
    n = x.shape[0]
    mean, variance = mean.double(), variance.double()
    assert ((x.mean(0) - mean).abs() <= n_se * (variance / n).sqrt()).all()
    m4 = ((x - mean) ** 4).mean(0)
    se_var = ((m4 - variance**2) / n).sqrt()
    assert ((x.var(0) - variance).abs() <= n_se * se_var + 1e-9).all()


# ---------------------------------------------------------------- BetaBinomial


@pytest.mark.parametrize("a,b,n", [(2.0, 3.0, 10), (0.5, 0.7, 7), (5.0, 1.0, 0), (1.3, 9.0, 25)])
def test_beta_binomial_scipy(a, b, n):
    d = BetaBinomial(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64), n)
    k = d.enumerate_support()
    expected = scipy.stats.betabinom.logpmf(k.numpy(), n, a, b)
    assert np.allclose(d.log_prob(k).numpy(), expected, atol=1e-10)
    assert abs(d.log_prob(k).exp().sum().item() - 1) < 1e-10
    assert abs(d.mean.item() - scipy.stats.betabinom.mean(n, a, b)) < 1e-10
    assert abs(d.variance.item() - scipy.stats.betabinom.var(n, a, b)) < 1e-10


def test_beta_binomial_batched_sampling_moments():
    torch.manual_seed(0)
    d = BetaBinomial(torch.tensor([2.0, 0.5, 8.0]), torch.tensor([3.0, 0.5, 1.0]), 12)
    x = d.sample((20000,))
    assert x.shape == (20000, 3)
    assert ((x >= 0) & (x <= 12) & (x == x.round())).all()
    _check_moments(x, d.mean, d.variance)


def test_beta_binomial_enumerate_and_expand():
    d = BetaBinomial(torch.ones(2, 1), torch.ones(2, 1), torch.tensor(3.0))
    assert d.enumerate_support().shape == (4, 2, 1)
    assert d.enumerate_support(expand=False).shape == (4, 1, 1)
    e = d.expand((5, 2, 3))
    assert isinstance(e, BetaBinomial) and e.batch_shape == (5, 2, 3)
    assert e.sample().shape == (5, 2, 3)
    # uniform prior, n = 3: every count has mass 1/4
    assert torch.allclose(d.log_prob(torch.tensor(2.0)).exp(), torch.full((2, 1), 0.25))
    # as torch's Binomial and Pyro: NotImplementedError for a batch of different supports
    with pytest.raises(NotImplementedError, match="total_count"):
        BetaBinomial(torch.ones(2), torch.ones(2), torch.tensor([2.0, 3.0])).enumerate_support()


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(concentration1=-1.0, concentration0=1.0), "concentration1"),
        (dict(concentration1=1.0, concentration0=0.0), "concentration0"),
        (dict(concentration1=1.0, concentration0=1.0, total_count=2.5), "total_count"),
        (dict(concentration1=1.0, concentration0=1.0, total_count=-1.0), "total_count"),
    ],
)
def test_beta_binomial_bad_parameters(kwargs, name):
    kwargs = {k: torch.tensor(v) for k, v in kwargs.items()}
    with pytest.raises(ValueError, match=name):
        BetaBinomial(**kwargs, validate_args=True)


def test_beta_binomial_validates_values():
    d = BetaBinomial(torch.tensor(1.0), torch.tensor(1.0), 4, validate_args=True)
    with pytest.raises(ValueError):
        d.log_prob(torch.tensor(5.0))


# --------------------------------------------------------- DirichletMultinomial


def _compositions(n, k):
    for cut in itertools.combinations(range(n + k - 1), k - 1):
        bounds = (-1,) + cut + (n + k - 1,)
        yield [bounds[i + 1] - bounds[i] - 1 for i in range(k)]


@pytest.mark.parametrize("is_sparse", [False, True])
def test_dirichlet_multinomial_scipy_and_normalization(is_sparse):
    alpha = torch.tensor([0.5, 2.0, 1.5], dtype=torch.float64)
    n = 6
    d = DirichletMultinomial(alpha, n, is_sparse=is_sparse)
    values = torch.tensor(list(_compositions(n, 3)), dtype=torch.float64)
    assert values.shape[0] == 28  # C(8, 2)
    lp = d.log_prob(values)
    expected = scipy.stats.dirichlet_multinomial.logpmf(values.numpy(), alpha.numpy(), n)
    assert np.allclose(lp.numpy(), expected, atol=1e-10)
    assert abs(lp.exp().sum().item() - 1) < 1e-10


def test_dirichlet_multinomial_gammaln_formula_batched():
    from scipy.special import gammaln

    torch.manual_seed(0)
    alpha = torch.rand(4, 5, dtype=torch.float64) * 3 + 0.1
    counts = torch.tensor([[3, 0, 0, 1, 0], [0, 0, 0, 0, 4], [1, 1, 1, 1, 0], [2, 0, 2, 0, 0]])
    x = counts.double()
    a, xn = alpha.numpy(), x.numpy()
    n = xn.sum(-1)
    expected = (
        gammaln(n + 1)
        + gammaln(a.sum(-1))
        - gammaln(n + a.sum(-1))
        + (gammaln(xn + a) - gammaln(a) - gammaln(xn + 1)).sum(-1)
    )
    for is_sparse in (False, True):
        d = DirichletMultinomial(alpha, torch.tensor(4.0, dtype=torch.float64), is_sparse=is_sparse)
        assert np.allclose(d.log_prob(x).numpy(), expected, atol=1e-10)


def test_dirichlet_multinomial_sampling_moments():
    torch.manual_seed(1)
    d = DirichletMultinomial(
        torch.tensor([[1.0, 2.0, 3.0], [0.3, 0.3, 5.0]]), torch.tensor([10.0, 4.0])
    )
    assert d.batch_shape == (2,) and d.event_shape == (3,)
    x = d.sample((20000,))
    assert x.shape == (20000, 2, 3)
    assert torch.equal(x.sum(-1), torch.tensor([10.0, 4.0]).expand(20000, 2))
    _check_moments(x, d.mean, d.variance)
    assert torch.allclose(d.mean.sum(-1), torch.tensor([10.0, 4.0]))


def test_dirichlet_multinomial_expand_and_shapes():
    d = DirichletMultinomial(torch.ones(3), total_count=torch.tensor([2.0, 5.0]))
    assert d.batch_shape == (2,) and d.event_shape == (3,)
    e = d.expand((4, 2))
    assert isinstance(e, DirichletMultinomial) and e.batch_shape == (4, 2)
    assert e.sample().shape == (4, 2, 3)
    assert DirichletMultinomial.infer_shapes(concentration=(2, 3), total_count=(5, 1)) == (
        (5, 2),
        (3,),
    )


def test_dirichlet_multinomial_bad_parameters():
    with pytest.raises(ValueError, match="concentration"):
        DirichletMultinomial(torch.tensor([1.0, -1.0]), 3, validate_args=True)
    with pytest.raises(ValueError, match="total_count"):
        DirichletMultinomial(torch.tensor([1.0, 1.0]), 2.5, validate_args=True)
    with pytest.raises(ValueError, match="concentration"):
        DirichletMultinomial(torch.tensor(1.0), 3)


# ---------------------------------------------------------------- GammaPoisson


@pytest.mark.parametrize("a,b", [(3.0, 2.0), (0.4, 0.1), (20.0, 5.0)])
def test_gamma_poisson_scipy_and_truncated_normalization(a, b):
    d = GammaPoisson(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64))
    k = torch.arange(0.0, 3000.0, dtype=torch.float64)
    lp = d.log_prob(k)
    expected = scipy.stats.nbinom.logpmf(k.numpy(), a, b / (1 + b))
    assert np.allclose(lp.numpy(), expected, atol=1e-9)
    tail = scipy.stats.nbinom.sf(k[-1].item(), a, b / (1 + b))
    assert abs(lp.exp().sum().item() + tail - 1) < 1e-10
    assert tail < 1e-10


def test_gamma_poisson_equals_negative_binomial():
    conc = torch.tensor([0.5, 3.0, 10.0])
    rate = torch.tensor([0.2, 2.0, 7.0])
    gp = GammaPoisson(conc, rate)
    nb = dist.NegativeBinomial(total_count=conc, probs=(1 / (1 + rate)))
    k = torch.arange(30.0).unsqueeze(-1)
    assert torch.allclose(gp.log_prob(k), nb.log_prob(k), atol=1e-5)
    assert torch.allclose(gp.mean, nb.mean) and torch.allclose(gp.variance, nb.variance)


def test_gamma_poisson_sampling_and_expand():
    torch.manual_seed(2)
    d = GammaPoisson(torch.tensor([3.0, 0.5]), torch.tensor([2.0, 0.25]))
    x = d.sample((20000,))
    assert x.shape == (20000, 2)
    _check_moments(x, d.mean, d.variance)
    e = d.expand((3, 2))
    assert isinstance(e, GammaPoisson) and e.sample().shape == (3, 2)
    with pytest.raises(ValueError, match="rate"):
        GammaPoisson(torch.tensor(1.0), torch.tensor(-2.0), validate_args=True)
    with pytest.raises(ValueError, match="concentration"):
        GammaPoisson(torch.tensor(0.0), torch.tensor(2.0), validate_args=True)


def test_dtypes_follow_parameters():
    f64 = dict(dtype=torch.float64)
    bb = BetaBinomial(torch.ones(2, **f64), torch.ones(2, **f64), 5)
    dm = DirichletMultinomial(torch.ones(2, 3, **f64), 4)
    gp = GammaPoisson(torch.ones(2, **f64), torch.ones(2, **f64))
    for d in (bb, dm, gp):
        x = d.sample((3,))
        assert x.dtype == torch.float64 and d.log_prob(x).dtype == torch.float64
