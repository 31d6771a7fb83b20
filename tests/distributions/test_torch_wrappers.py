"""Every wrapper in ember.distributions.torch against an independent oracle.

Each case gives random parameters with batch dims, a log-density oracle
(scipy.stats or a closed form), analytic moments, and optionally which
parameters to check reparameterized gradients for.
"""

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import pytest
import scipy.integrate
import scipy.special as sp
import scipy.stats as st
import torch

import ember.distributions as dist
import ember.distributions.torch as ember_torch
from ember import settings

DT = torch.float64
B = (2, 3)  # batch shape of univariate cases
N_MOMENT = 4000
Z = 5.0  # z-score bound of the statistical checks


def U(lo, hi, shape=B, seed=0):
    g = torch.Generator().manual_seed(seed + int(1000 * lo) + int(100 * hi))
    return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=DT)


def simplex(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(shape, generator=g, dtype=DT) + 0.2
    return p / p.sum(-1, keepdim=True)


def spd(batch, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(batch + (k, k), generator=g, dtype=DT)
    return a @ a.mT + k * torch.eye(k, dtype=DT)


@dataclass
class Case:
    name: str
    params: Callable[[], dict]
    build: Callable[[dict], object]
    logp: Callable[[dict, np.ndarray], np.ndarray]  # numpy params, value -> batch-shaped array
    moments: Optional[Callable[[dict], tuple]] = None  # numpy params -> (mean, var)
    grad_params: tuple = ()  # parameters whose d E[x] / d param is checked
    infer: bool = True  # whether infer_shapes can be called with the param shapes
    extra: dict = field(default_factory=dict)


def np_params(params):
    return {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in params.items()}


def kw(cls_name):
    return lambda p: getattr(ember_torch, cls_name)(**p)


def scipy_moments(make):
    def moments(p):
        d = make(p)
        return d.mean(), d.var()

    return moments


def per_batch(fn, p, x, batch, ndim_event):
    """Apply a single-event oracle over a batch, looping in Python."""
    out = np.empty(x.shape[: x.ndim - ndim_event])
    for idx in np.ndindex(*out.shape):
        bidx = idx[len(idx) - len(batch) :]
        out[idx] = fn(
            {k: (v[bidx] if isinstance(v, np.ndarray) and v.ndim > 0 else v) for k, v in p.items()},
            x[idx],
        )
    return out


def cb_log_norm(lam):
    lam = np.asarray(lam, dtype=float)
    return np.log(2 * np.arctanh(1 - 2 * lam) / (1 - 2 * lam))


def quad_moments(pdf, lo, hi):
    """Mean and variance of a 1-d density by quadrature."""
    m1 = scipy.integrate.quad(lambda x: x * pdf(x), lo, hi, limit=200)[0]
    m2 = scipy.integrate.quad(lambda x: x * x * pdf(x), lo, hi, limit=200)[0]
    return m1, m2 - m1 * m1


def cb_moments(p):
    lam = p["probs"]
    mean = np.empty_like(lam)
    var = np.empty_like(lam)
    for idx in np.ndindex(*lam.shape):
        c = math.exp(cb_log_norm(lam[idx]))
        pdf = lambda x, c=c, lam=lam[idx]: c * lam**x * (1 - lam) ** (1 - x)
        mean[idx], var[idx] = quad_moments(pdf, 0, 1)
    return mean, var


def relaxed_bernoulli_logp(t, prob, x):
    a = prob / (1 - prob)
    return (
        np.log(t)
        + np.log(a)
        - (t + 1) * (np.log(x) + np.log1p(-x))
        - 2 * np.log(a * x ** (-t) + (1 - x) ** (-t))
    )


def relaxed_bernoulli_moments(p):
    t, probs = p["temperature"], p["probs"]
    mean, var = np.empty_like(probs), np.empty_like(probs)
    for idx in np.ndindex(*probs.shape):
        pdf = lambda x, q=probs[idx]: np.exp(relaxed_bernoulli_logp(t, q, x))
        mean[idx], var[idx] = quad_moments(pdf, 0, 1)
    return mean, var


def lkj_moments(p):
    """dim 2: L = [[1, 0], [r, sqrt(1 - r^2)]] with (r + 1) / 2 ~ Beta(eta, eta)."""
    eta = p["concentration"]
    zero = np.zeros_like(eta)
    var_r = 1 / (2 * eta + 1)
    mean_s = 2 * np.exp(sp.betaln(eta + 0.5, eta + 0.5) - sp.betaln(eta, eta))
    mean = np.stack([np.stack([zero + 1, zero], -1), np.stack([zero, mean_s], -1)], -2)
    var = np.stack([np.stack([zero, zero], -1), np.stack([var_r, 1 - var_r - mean_s**2], -1)], -2)
    return mean, var


def vonmises_moments(p):
    """Moments of the sample on [-pi, pi), by quadrature."""
    mean, var = np.empty(B), np.empty(B)
    for idx in np.ndindex(*B):
        pdf = lambda x, k=p["concentration"][idx], m=p["loc"][idx]: st.vonmises.pdf(x, k, m)
        mean[idx], var[idx] = quad_moments(pdf, -np.pi, np.pi)
    return mean, var


def kumaraswamy_moments(p):
    a, b = p["concentration1"], p["concentration0"]
    m1 = b * sp.beta(1 + 1 / a, b)
    m2 = b * sp.beta(1 + 2 / a, b)
    return m1, m2 - m1 * m1


def categorical_moments(p):
    probs = p["probs"]
    k = np.arange(probs.shape[-1])
    m1 = (probs * k).sum(-1)
    return m1, (probs * k * k).sum(-1) - m1 * m1


def concrete_logp(t, probs, x):
    n = probs.shape[-1]
    return (
        sp.gammaln(n)
        + (n - 1) * np.log(t)
        + (np.log(probs) - (t + 1) * np.log(x)).sum(-1)
        - n * sp.logsumexp(np.log(probs) - t * np.log(x), axis=-1)
    )


def stick_breaking_inverse(x):
    """torch's LogisticNormal is a Normal pushed through stick breaking:
    x_i = z_i * (1 - x_0 - ... - x_{i-1}),  z_i = sigmoid(y_i - log(K - i)).
    Returns y and log |dx/dy|."""
    k = x.shape[-1] - 1
    remaining = 1 - np.concatenate([np.zeros_like(x[..., :1]), np.cumsum(x[..., :-2], -1)], -1)
    z = x[..., :-1] / remaining
    y = sp.logit(z) + np.log(k - np.arange(k))
    return y, np.log(remaining * z * (1 - z)).sum(-1)


def logistic_normal_logp(p, x):
    y, log_jac = stick_breaking_inverse(x)
    return st.norm(p["loc"], p["scale"]).logpdf(y).sum(-1) - log_jac


def mixture_logp(p, x):
    comp = st.norm(p["loc"], p["scale"]).logpdf(x[..., None]) + np.log(p["weights"])
    return sp.logsumexp(comp, axis=-1)


def mixture_moments(p):
    w, mu, s = p["weights"], p["loc"], p["scale"]
    m1 = (w * mu).sum(-1)
    return m1, (w * (s * s + mu * mu)).sum(-1) - m1 * m1


def wishart_moments(p):
    df, cov = p["df"], p["covariance_matrix"]
    diag = np.diagonal(cov, axis1=-2, axis2=-1)
    return df[..., None, None] * cov, df[..., None, None] * (
        cov * cov + diag[..., :, None] * diag[..., None, :]
    )


CASES = [
    Case(
        "Bernoulli",
        lambda: dict(probs=U(0.1, 0.9)),
        kw("Bernoulli"),
        lambda p, x: st.bernoulli(p["probs"]).logpmf(x),
        scipy_moments(lambda p: st.bernoulli(p["probs"])),
    ),
    Case(
        "Beta",
        lambda: dict(concentration1=U(1, 4), concentration0=U(1.5, 5)),
        kw("Beta"),
        lambda p, x: st.beta(p["concentration1"], p["concentration0"]).logpdf(x),
        scipy_moments(lambda p: st.beta(p["concentration1"], p["concentration0"])),
        ("concentration1", "concentration0"),
    ),
    Case(
        "Binomial",
        lambda: dict(
            total_count=torch.tensor([[5.0, 10, 20], [1, 7, 30]], dtype=DT), probs=U(0.1, 0.9)
        ),
        kw("Binomial"),
        lambda p, x: st.binom(p["total_count"], p["probs"]).logpmf(x),
        scipy_moments(lambda p: st.binom(p["total_count"], p["probs"])),
    ),
    Case(
        "Categorical",
        lambda: dict(probs=simplex(B + (4,))),
        kw("Categorical"),
        lambda p, x: np.log(
            np.take_along_axis(
                np.broadcast_to(p["probs"], x.shape + (4,)), x[..., None].astype(int), -1
            )[..., 0]
        ),
        categorical_moments,
    ),
    Case(
        "Cauchy",
        lambda: dict(loc=U(-1, 1), scale=U(0.5, 2)),
        kw("Cauchy"),
        lambda p, x: st.cauchy(p["loc"], p["scale"]).logpdf(x),
        None,
        ("loc", "scale"),
        # E[1 / (X + i)] = 1 / (loc + i (scale + 1)): the Cauchy law is the Poisson kernel
        extra=dict(
            f=lambda x: x / (1 + x * x),
            expect=lambda p: p["loc"] / (p["loc"] ** 2 + (p["scale"] + 1) ** 2),
        ),
    ),
    Case(
        "Chi2",
        lambda: dict(df=U(2, 6)),
        kw("Chi2"),
        lambda p, x: st.chi2(p["df"]).logpdf(x),
        scipy_moments(lambda p: st.chi2(p["df"])),
        ("df",),
    ),
    Case(
        "ContinuousBernoulli",
        lambda: dict(probs=U(0.1, 0.9)),
        kw("ContinuousBernoulli"),
        lambda p, x: (
            cb_log_norm(p["probs"]) + x * np.log(p["probs"]) + (1 - x) * np.log1p(-p["probs"])
        ),
        cb_moments,
        ("probs",),
    ),
    Case(
        "Dirichlet",
        lambda: dict(concentration=U(0.5, 3, (2, 3), seed=1)),
        kw("Dirichlet"),
        lambda p, x: per_batch(
            lambda q, v: st.dirichlet(q["concentration"]).logpdf(v), p, x, (2,), 1
        ),
        lambda p: (
            p["concentration"] / p["concentration"].sum(-1, keepdims=True),
            p["concentration"]
            * (p["concentration"].sum(-1, keepdims=True) - p["concentration"])
            / (
                p["concentration"].sum(-1, keepdims=True) ** 2
                * (p["concentration"].sum(-1, keepdims=True) + 1)
            ),
        ),
        ("concentration",),
    ),
    Case(
        "Exponential",
        lambda: dict(rate=U(0.5, 3)),
        kw("Exponential"),
        lambda p, x: st.expon(scale=1 / p["rate"]).logpdf(x),
        scipy_moments(lambda p: st.expon(scale=1 / p["rate"])),
        ("rate",),
    ),
    Case(
        "FisherSnedecor",
        lambda: dict(df1=U(3, 8), df2=U(12, 20)),
        kw("FisherSnedecor"),
        lambda p, x: st.f(p["df1"], p["df2"]).logpdf(x),
        scipy_moments(lambda p: st.f(p["df1"], p["df2"])),
        ("df1", "df2"),
    ),
    Case(
        "Gamma",
        lambda: dict(concentration=U(0.5, 4), rate=U(0.5, 3)),
        kw("Gamma"),
        lambda p, x: st.gamma(p["concentration"], scale=1 / p["rate"]).logpdf(x),
        scipy_moments(lambda p: st.gamma(p["concentration"], scale=1 / p["rate"])),
        ("concentration", "rate"),
    ),
    Case(
        "GeneralizedPareto",
        lambda: dict(loc=U(-1, 1), scale=U(0.5, 2), concentration=U(-0.2, 0.2)),
        kw("GeneralizedPareto"),
        lambda p, x: st.genpareto(p["concentration"], p["loc"], p["scale"]).logpdf(x),
        scipy_moments(lambda p: st.genpareto(p["concentration"], p["loc"], p["scale"])),
        ("loc", "scale", "concentration"),
    ),
    Case(
        "Geometric",
        lambda: dict(probs=U(0.2, 0.8)),
        kw("Geometric"),
        lambda p, x: st.geom(p["probs"]).logpmf(x + 1),
        scipy_moments(lambda p: st.geom(p["probs"], loc=-1)),
    ),
    Case(
        "Gumbel",
        lambda: dict(loc=U(-1, 1), scale=U(0.5, 2)),
        kw("Gumbel"),
        lambda p, x: st.gumbel_r(p["loc"], p["scale"]).logpdf(x),
        scipy_moments(lambda p: st.gumbel_r(p["loc"], p["scale"])),
        ("loc", "scale"),
    ),
    Case(
        "HalfCauchy",
        lambda: dict(scale=U(0.5, 2)),
        kw("HalfCauchy"),
        lambda p, x: st.halfcauchy(scale=p["scale"]).logpdf(x),
        None,
        ("scale",),
        extra=dict(f=lambda x: 1 / (1 + x * x), expect=lambda p: 1 / (p["scale"] + 1)),
    ),
    Case(
        "HalfNormal",
        lambda: dict(scale=U(0.5, 2)),
        kw("HalfNormal"),
        lambda p, x: st.halfnorm(scale=p["scale"]).logpdf(x),
        scipy_moments(lambda p: st.halfnorm(scale=p["scale"])),
        ("scale",),
    ),
    Case(
        "Independent",
        lambda: dict(loc=U(-1, 1), scale=U(0.5, 2)),
        lambda p: dist.Independent(dist.Normal(p["loc"], p["scale"]), 1),
        lambda p, x: st.norm(p["loc"], p["scale"]).logpdf(x).sum(-1),
        lambda p: (p["loc"], p["scale"] ** 2),
        ("loc", "scale"),
        infer=False,
    ),
    Case(
        "InverseGamma",
        lambda: dict(concentration=U(5, 8), rate=U(0.5, 3)),
        kw("InverseGamma"),
        lambda p, x: st.invgamma(p["concentration"], scale=p["rate"]).logpdf(x),
        scipy_moments(lambda p: st.invgamma(p["concentration"], scale=p["rate"])),
        ("concentration", "rate"),
    ),
    Case(
        "Kumaraswamy",
        lambda: dict(concentration1=U(1, 3), concentration0=U(1, 3)),
        kw("Kumaraswamy"),
        lambda p, x: (
            np.log(p["concentration1"] * p["concentration0"])
            + (p["concentration1"] - 1) * np.log(x)
            + (p["concentration0"] - 1) * np.log1p(-(x ** p["concentration1"]))
        ),
        kumaraswamy_moments,
        ("concentration1", "concentration0"),
    ),
    Case(
        "LKJCholesky",
        lambda: dict(dim=2, concentration=U(0.5, 3)),
        kw("LKJCholesky"),
        lambda p, x: (
            st.beta(p["concentration"], p["concentration"]).logpdf((x[..., 1, 0] + 1) / 2)
            - np.log(2)
        ),
        lkj_moments,
        infer=False,
    ),
    Case(
        "Laplace",
        lambda: dict(loc=U(-1, 1), scale=U(0.5, 2)),
        kw("Laplace"),
        lambda p, x: st.laplace(p["loc"], p["scale"]).logpdf(x),
        scipy_moments(lambda p: st.laplace(p["loc"], p["scale"])),
        ("loc", "scale"),
    ),
    Case(
        "LogNormal",
        lambda: dict(loc=U(-0.5, 0.5), scale=U(0.2, 0.6)),
        kw("LogNormal"),
        lambda p, x: st.lognorm(p["scale"], scale=np.exp(p["loc"])).logpdf(x),
        scipy_moments(lambda p: st.lognorm(p["scale"], scale=np.exp(p["loc"]))),
        ("loc", "scale"),
    ),
    Case(
        "LogisticNormal",
        lambda: dict(loc=U(-1, 1, (2, 3)), scale=U(0.5, 1.5, (2, 3))),
        kw("LogisticNormal"),
        logistic_normal_logp,
        # the inverse stick-breaking map gives back Normal(loc, scale) draws
        extra=dict(
            stat=lambda x: stick_breaking_inverse(x)[0],
            stat_moments=lambda p: (p["loc"], p["scale"] ** 2),
        ),
    ),
    Case(
        "LowRankMultivariateNormal",
        lambda: dict(
            loc=U(-1, 1, (2, 3)), cov_factor=U(-1, 1, (2, 3, 2)), cov_diag=U(0.5, 2, (2, 3))
        ),
        kw("LowRankMultivariateNormal"),
        lambda p, x: per_batch(
            lambda q, v: st.multivariate_normal(
                q["loc"], q["cov_factor"] @ q["cov_factor"].T + np.diag(q["cov_diag"])
            ).logpdf(v),
            p,
            x,
            (2,),
            1,
        ),
        lambda p: (p["loc"], (p["cov_factor"] ** 2).sum(-1) + p["cov_diag"]),
        ("loc", "cov_factor", "cov_diag"),
        # E[x^2] = loc^2 + (W W^T + D)_ii depends on every parameter
        extra=dict(
            f=lambda x: x * x,
            expect=lambda p: p["loc"] ** 2 + (p["cov_factor"] ** 2).sum(-1) + p["cov_diag"],
        ),
    ),
    Case(
        "MixtureSameFamily",
        lambda: dict(
            weights=simplex(B + (2,)), loc=U(-2, 2, B + (2,)), scale=U(0.5, 1.5, B + (2,))
        ),
        lambda p: dist.MixtureSameFamily(
            dist.Categorical(p["weights"]), dist.Normal(p["loc"], p["scale"])
        ),
        mixture_logp,
        mixture_moments,
        infer=False,
    ),
    Case(
        "Multinomial",
        lambda: dict(total_count=7, probs=simplex((2, 4), seed=2)),
        kw("Multinomial"),
        lambda p, x: per_batch(lambda q, v: st.multinomial(7, q["probs"]).logpmf(v), p, x, (2,), 1),
        lambda p: (7 * p["probs"], 7 * p["probs"] * (1 - p["probs"])),
    ),
    Case(
        "MultivariateNormal",
        lambda: dict(loc=U(-1, 1, (2, 3)), covariance_matrix=spd((2,), 3)),
        kw("MultivariateNormal"),
        lambda p, x: per_batch(
            lambda q, v: st.multivariate_normal(q["loc"], q["covariance_matrix"]).logpdf(v),
            p,
            x,
            (2,),
            1,
        ),
        lambda p: (p["loc"], np.diagonal(p["covariance_matrix"], axis1=-2, axis2=-1)),
        ("loc",),
    ),
    Case(
        "NegativeBinomial",
        lambda: dict(total_count=U(1, 5), probs=U(0.2, 0.7)),
        kw("NegativeBinomial"),
        lambda p, x: st.nbinom(p["total_count"], 1 - p["probs"]).logpmf(x),
        scipy_moments(lambda p: st.nbinom(p["total_count"], 1 - p["probs"])),
    ),
    Case(
        "Normal",
        lambda: dict(loc=U(-1, 1), scale=U(0.5, 2)),
        kw("Normal"),
        lambda p, x: st.norm(p["loc"], p["scale"]).logpdf(x),
        scipy_moments(lambda p: st.norm(p["loc"], p["scale"])),
        ("loc", "scale"),
    ),
    Case(
        "OneHotCategorical",
        lambda: dict(probs=simplex((2, 4), seed=3)),
        kw("OneHotCategorical"),
        lambda p, x: np.log((np.broadcast_to(p["probs"], x.shape) * x).sum(-1)),
        lambda p: (p["probs"], p["probs"] * (1 - p["probs"])),
    ),
    Case(
        "OneHotCategoricalStraightThrough",
        lambda: dict(probs=simplex((2, 4), seed=4)),
        kw("OneHotCategoricalStraightThrough"),
        lambda p, x: np.log((np.broadcast_to(p["probs"], x.shape) * x).sum(-1)),
        lambda p: (p["probs"], p["probs"] * (1 - p["probs"])),
    ),
    Case(
        "Pareto",
        lambda: dict(scale=U(0.5, 2), alpha=U(5, 8)),
        kw("Pareto"),
        lambda p, x: st.pareto(p["alpha"], scale=p["scale"]).logpdf(x),
        scipy_moments(lambda p: st.pareto(p["alpha"], scale=p["scale"])),
        ("scale", "alpha"),
    ),
    Case(
        "Poisson",
        lambda: dict(rate=U(0.5, 5)),
        kw("Poisson"),
        lambda p, x: st.poisson(p["rate"]).logpmf(x),
        scipy_moments(lambda p: st.poisson(p["rate"])),
    ),
    Case(
        "RelaxedBernoulli",
        lambda: dict(temperature=torch.tensor(0.7, dtype=DT), probs=U(0.2, 0.8)),
        kw("RelaxedBernoulli"),
        lambda p, x: relaxed_bernoulli_logp(p["temperature"], p["probs"], x),
        relaxed_bernoulli_moments,
        ("probs",),
    ),
    Case(
        "RelaxedOneHotCategorical",
        lambda: dict(temperature=torch.tensor(0.8, dtype=DT), probs=simplex((2, 3), seed=5)),
        kw("RelaxedOneHotCategorical"),
        lambda p, x: concrete_logp(p["temperature"], p["probs"], x),
        # the argmax of a Concrete draw is exactly Categorical(probs)
        extra=dict(
            stat=lambda x: np.eye(x.shape[-1])[x.argmax(-1)],
            stat_moments=lambda p: (p["probs"], p["probs"] * (1 - p["probs"])),
        ),
    ),
    Case(
        "StudentT",
        lambda: dict(df=U(6, 10), loc=U(-1, 1), scale=U(0.5, 2)),
        kw("StudentT"),
        lambda p, x: st.t(p["df"], p["loc"], p["scale"]).logpdf(x),
        scipy_moments(lambda p: st.t(p["df"], p["loc"], p["scale"])),
        ("loc", "scale", "df"),
    ),
    Case(
        "TransformedDistribution",
        lambda: dict(loc=U(-1, 1), scale=U(0.5, 2)),
        lambda p: dist.TransformedDistribution(
            dist.Normal(p["loc"], p["scale"]), [torch.distributions.AffineTransform(1.0, -2.0)]
        ),
        lambda p, x: st.norm(1 - 2 * p["loc"], 2 * p["scale"]).logpdf(x),
        lambda p: (1 - 2 * p["loc"], 4 * p["scale"] ** 2),
        ("loc", "scale"),
        infer=False,
    ),
    Case(
        "Uniform",
        lambda: dict(low=U(-2, -1), high=U(0, 2)),
        kw("Uniform"),
        lambda p, x: st.uniform(p["low"], p["high"] - p["low"]).logpdf(x),
        scipy_moments(lambda p: st.uniform(p["low"], p["high"] - p["low"])),
        ("low", "high"),
    ),
    Case(
        "VonMises",
        lambda: dict(loc=U(-1, 1), concentration=U(0.5, 3)),
        kw("VonMises"),
        lambda p, x: st.vonmises(p["concentration"], p["loc"]).logpdf(x),
        vonmises_moments,
    ),
    Case(
        "Weibull",
        lambda: dict(scale=U(0.5, 2), concentration=U(1, 3)),
        kw("Weibull"),
        lambda p, x: st.weibull_min(p["concentration"], scale=p["scale"]).logpdf(x),
        scipy_moments(lambda p: st.weibull_min(p["concentration"], scale=p["scale"])),
        ("scale", "concentration"),
    ),
    Case(
        "Wishart",
        lambda: dict(df=U(4, 6, (2,)), covariance_matrix=spd((2,), 2, seed=6)),
        kw("Wishart"),
        lambda p, x: per_batch(
            lambda q, v: st.wishart(q["df"], q["covariance_matrix"]).logpdf(v), p, x, (2,), 2
        ),
        wishart_moments,
        ("df",),
    ),
]
CASE_IDS = [c.name for c in CASES]


def test_table_covers_every_class():
    covered = {c.name for c in CASES}
    assert set(ember_torch.__all__) == covered


@pytest.fixture(params=CASES, ids=CASE_IDS)
def case(request):
    return request.param


def test_log_prob_matches_oracle(case):
    torch.manual_seed(0)
    p = case.params()
    d = case.build(p)
    x = d.sample((5,))
    actual = d.log_prob(x)
    assert actual.shape == (5,) + d.batch_shape
    expected = case.logp(np_params(p), x.detach().numpy())
    np.testing.assert_allclose(actual.detach().numpy(), expected, rtol=1e-6, atol=1e-6)


def test_shape_contract(case):
    torch.manual_seed(1)
    d = case.build(case.params())
    for sample_shape in [(), (4,), (2, 1)]:
        x = d.sample(sample_shape)
        assert (
            x.shape
            == d.shape(sample_shape)
            == (torch.Size(sample_shape) + d.batch_shape + d.event_shape)
        )
        assert d.log_prob(x).shape == torch.Size(sample_shape) + d.batch_shape
    assert d().shape == d.shape()


def test_sample_moments(case):
    if case.moments is None and "expect" in case.extra:  # heavy tails: check E[f(x)]
        torch.manual_seed(2)
        p = case.params()
        fx = case.extra["f"](case.build(p).sample((N_MOMENT,))).numpy()
        expected = case.extra["expect"](np_params(p))
        se = fx.std(0) / np.sqrt(N_MOMENT)
        assert (np.abs(fx.mean(0) - expected) <= Z * se).all()
        return
    torch.manual_seed(2)
    p = case.params()
    d = case.build(p)
    x = d.sample((N_MOMENT,)).detach().numpy()
    if case.moments is None:  # moments of a statistic with known law instead
        x = case.extra["stat"](x)
        mean, var = case.extra["stat_moments"](np_params(p))
    else:
        mean, var = case.moments(np_params(p))
    mean = np.broadcast_to(mean, x.shape[1:])
    var = np.broadcast_to(var, x.shape[1:])
    sample_mean = x.mean(0)
    se_mean = np.sqrt(var / N_MOMENT)
    assert (np.abs(sample_mean - mean) <= Z * se_mean + 1e-12).all(), (sample_mean, mean)
    dev2 = (x - mean) ** 2
    se_var = dev2.std(0) / np.sqrt(N_MOMENT)
    assert (np.abs(dev2.mean(0) - var) <= Z * se_var + 1e-12).all(), (dev2.mean(0), var)


def _oracle_expectation(case, p, shape):
    """E[f(x)] of shape ``batch + event`` from a closed form."""
    expect = case.extra.get("expect") or (lambda q: case.moments(q)[0])
    return np.broadcast_to(expect(p), shape)


@pytest.mark.parametrize("case", [c for c in CASES if c.grad_params], ids=lambda c: c.name)
def test_reparameterized_gradient(case):
    """d E[f(x)] / d theta by rsample with per-sample parameters, vs finite differences."""
    f_t = case.extra.get("f", lambda x: x)
    n = 3000
    torch.manual_seed(3)
    p = case.params()
    d0 = case.build(p)
    assert d0.has_rsample
    shape = tuple(d0.shape())
    weights = torch.linspace(0.5, 1.5, math.prod(shape), dtype=DT).reshape(shape)
    for name in case.grad_params:
        # each sample gets its own copy of the parameter, so one backward gives
        # per-sample derivatives and hence a standard error
        theta = p[name].expand((n,) + p[name].shape).clone().requires_grad_()
        q = dict(p)
        q[name] = theta
        x = case.build(q).rsample()
        (weights * f_t(x)).sum().backward()
        per_sample = theta.grad.numpy()  # (n,) + param shape: d sum(w f(x)) / d theta
        est, se = per_sample.mean(0), per_sample.std(0) / math.sqrt(n)
        # finite differences of the oracle's E[sum_event f(x)]
        h = 1e-5
        fd = np.zeros(p[name].shape)
        base = np_params(p)
        for idx in np.ndindex(*p[name].shape):
            vals = []
            for sign in (+1, -1):
                shifted = dict(base)
                arr = base[name].copy()
                arr[idx] += sign * h
                shifted[name] = arr
                e = _oracle_expectation(case, shifted, shape)
                vals.append((weights.numpy() * e).sum())
            fd[idx] = (vals[0] - vals[1]) / (2 * h)
        assert np.all(np.abs(est - fd) <= Z * se + 1e-6), (name, est, fd, se)


@pytest.mark.parametrize("case", [c for c in CASES if c.infer], ids=lambda c: c.name)
def test_infer_shapes(case):
    p = case.params()
    d = case.build(p)
    shapes = {k: tuple(v.shape) for k, v in p.items() if isinstance(v, torch.Tensor)}
    assert getattr(ember_torch, case.name).infer_shapes(**shapes) == (d.batch_shape, d.event_shape)


@pytest.mark.parametrize(
    "cls, shapes",
    [
        ("Normal", dict(loc=(3, 1), scale=(4,))),
        ("MultivariateNormal", dict(loc=(5, 1, 3), scale_tril=(4, 3, 3))),
        ("LowRankMultivariateNormal", dict(loc=(3,), cov_factor=(2, 1, 3, 2), cov_diag=(5, 3))),
        ("Dirichlet", dict(concentration=(6, 2, 4))),
        ("Multinomial", dict(logits=(2, 5))),
        ("OneHotCategorical", dict(probs=(7, 3))),
        ("Wishart", dict(df=(2, 1), covariance_matrix=(3, 4, 4))),
    ],
)
def test_infer_shapes_broadcasts(cls, shapes):
    cls = getattr(dist, cls)
    torch.manual_seed(0)
    args = {}
    for k, s in shapes.items():
        if k in ("scale_tril",):
            args[k] = torch.eye(s[-1]).expand(s)
        elif k == "covariance_matrix":
            args[k] = torch.eye(s[-1]).expand(s) * 2
        elif k in ("cov_diag", "concentration", "df", "probs", "scale"):
            args[k] = torch.rand(s) + 3
        else:
            args[k] = torch.randn(s)
    if cls is dist.Multinomial:
        args["total_count"] = 3
    d = cls(**args)
    assert cls.infer_shapes(**shapes) == (d.batch_shape, d.event_shape)


def test_lkj_cholesky_infer_shapes():
    d = ember_torch.LKJCholesky(4, torch.ones(2, 3))
    assert ember_torch.LKJCholesky.infer_shapes(dim=4, concentration=(2, 3)) == (
        d.batch_shape,
        d.event_shape,
    )


def test_infer_shapes_errors():
    with pytest.raises(ValueError, match="event sizes disagree"):
        dist.MultivariateNormal.infer_shapes(loc=(3,), covariance_matrix=(4, 4))
    with pytest.raises(ValueError, match="unknown parameter 'foo'"):
        dist.Normal.infer_shapes(foo=(2,))


# --- bad input with validation on ------------------------------------------------------


@pytest.mark.parametrize(
    "make, param, constraint",
    [
        (lambda: dist.Normal(0.0, torch.tensor([1.0, -1.0])), "scale", "GreaterThan"),
        (lambda: dist.Beta(torch.tensor(-1.0), 1.0), "concentration1", "GreaterThan"),
        (lambda: dist.Bernoulli(probs=torch.tensor(1.5)), "probs", "Interval"),
        (
            lambda: dist.Dirichlet(torch.tensor([1.0, 0.0])),
            "concentration",
            "IndependentConstraint",
        ),
        (lambda: dist.Poisson(torch.tensor(-2.0), is_sparse=True), "rate", "GreaterThanEq"),
        (lambda: dist.LogNormal(0.0, -1.0), "scale", "GreaterThan"),
        (lambda: dist.Uniform(1.0, 0.0), "low", "LessThan"),
        (lambda: dist.RelaxedBernoulli(-1.0, probs=0.3), "temperature", "GreaterThan"),
        (lambda: dist.ContinuousBernoulli(probs=1.5), "probs", "Interval"),
        (lambda: dist.FisherSnedecor(-1.0, 2.0), "df1", "GreaterThan"),
        (lambda: ember_torch.InverseGamma(3.0, -1.0), "rate", "GreaterThan"),
        (lambda: ember_torch.LKJCholesky(3, -1.0), "concentration", "GreaterThan"),
        (lambda: dist.StudentT(-1.0), "df", "GreaterThan"),
        (
            lambda: dist.LowRankMultivariateNormal(
                torch.zeros(2), torch.ones(2, 1), -torch.ones(2)
            ),
            "cov_diag",
            "IndependentConstraint",
        ),
        (
            lambda: dist.MultivariateNormal(torch.zeros(2), -torch.eye(2)),
            "covariance_matrix",
            "Positive",
        ),
        (lambda: dist.Multinomial(3, probs=torch.tensor([0.5, -0.1])), "probs", "Simplex"),
    ],
)
def test_invalid_parameter_raises(make, param, constraint):
    with pytest.raises(ValueError, match=rf"parameter {param} .*{constraint}"):
        make()


def test_invalid_parameter_names_the_outer_distribution():
    with pytest.raises(ValueError, match="(?s)distribution StudentT.*hint"):
        dist.StudentT(torch.tensor([3.0, -1.0]))
    with pytest.raises(ValueError, match="distribution Beta"):
        dist.Beta(1.0, torch.tensor([2.0, 0.0]))


@pytest.mark.parametrize(
    "d, value",
    [
        (dist.Normal(0.0, 1.0), torch.tensor(float("nan"))),
        (dist.Exponential(1.0), torch.tensor(-1.0)),
        (dist.Binomial(5, probs=0.5), torch.tensor(6.0)),
        (dist.Categorical(torch.ones(3)), torch.tensor(3)),
        (dist.Poisson(torch.tensor(1.0), is_sparse=True), torch.tensor(0.5)),
        (dist.Geometric(probs=0.3), torch.tensor(-1.0)),
        (dist.Uniform(0.0, 1.0), torch.tensor(2.0)),
        (dist.Dirichlet(torch.ones(3)), torch.tensor([0.5, 0.6, 0.1])),
    ],
)
def test_value_outside_support_raises(d, value):
    with pytest.raises(ValueError, match="support"):
        d.log_prob(value)


# --- class-specific enhancements ----------------------------------------------------------


def test_python_numbers_everywhere():
    for d in [
        dist.Normal(0.0, 1.0),
        dist.Beta(2.0, 5.0),
        dist.Gamma(2.0, 1.0),
        dist.Binomial(10, probs=0.3),
        dist.Geometric(logits=0.3),
        dist.Poisson(3.0, is_sparse=True),
        dist.Uniform(0.0, 2.0),
        dist.LogNormal(0.0, 1.0),
        dist.RelaxedBernoulli(0.5, logits=0.1),
        dist.StudentT(3.0),
        ember_torch.VonMises(0.0, 1.0),
    ]:
        x = d.sample((3,))
        assert d.log_prob(x).shape == (3,)


@pytest.mark.parametrize("tol", [1e-1, 1e-3, 1e-5])
def test_binomial_stirling_log_prob_within_tol(tol):
    n = torch.tensor([0.0, 1, 7, 50, 1000, 123456], dtype=DT)
    k = torch.floor(n * 0.37)
    exact = dist.Binomial(n, probs=torch.tensor(0.3, dtype=DT)).log_prob(k)
    old = dist.Binomial.approx_log_prob_tol
    try:
        dist.Binomial.approx_log_prob_tol = tol
        approx = dist.Binomial(n, probs=torch.tensor(0.3, dtype=DT)).log_prob(k)
    finally:
        dist.Binomial.approx_log_prob_tol = old
    assert (approx - exact).abs().max() < tol


def test_binomial_log_prob_extreme_logits():
    d = dist.Binomial(10, logits=torch.tensor([-200.0, 200.0, 0.0]))
    lp = d.log_prob(torch.tensor([0.0, 10.0, 5.0]))
    assert torch.isfinite(lp).all()
    assert torch.allclose(lp[:2], torch.zeros(2), atol=1e-6)
    assert torch.allclose(lp[2], torch.tensor(st.binom(10, 0.5).logpmf(5), dtype=lp.dtype))
    assert dist.Binomial(10, logits=torch.tensor(200.0)).log_prob(torch.tensor(3.0)) < -500


@pytest.mark.parametrize("n, p", [(1e8, 0.001), (1e7, 0.3), (5e6, 0.999), (2e6, 1e-6)])
def test_binomial_approx_sample_moments(n, p):
    torch.manual_seed(4)
    m = 20000
    d = dist.Binomial(torch.tensor(n, dtype=DT), probs=torch.tensor(p, dtype=DT))
    old = dist.Binomial.approx_sample_thresh
    try:
        dist.Binomial.approx_sample_thresh = 1e6
        x = d.sample((m,))
    finally:
        dist.Binomial.approx_sample_thresh = old
    assert ((x >= 0) & (x <= n) & (x == x.round())).all()
    mean, var = n * p, n * p * (1 - p)
    assert abs(x.mean().item() - mean) < Z * math.sqrt(var / m)
    # the variance of the sample variance is about 2 var^2 / m for near-normal counts
    se_var = ((x - mean) ** 2).std().item() / math.sqrt(m)
    assert abs(((x - mean) ** 2).mean().item() - var) < Z * se_var


@pytest.mark.parametrize("n, p", [(2e6, 6e-6), (1e7, 0.3), (300.0, 0.02), (400.0, 0.5)])
def test_binomial_approx_sample_cdf(n, p):
    """The approximate draws follow the exact Binomial CDF at its quantiles."""
    torch.manual_seed(8)
    m = 20000
    d = dist.Binomial(torch.tensor(n, dtype=DT), probs=torch.tensor(p, dtype=DT))
    with settings.context(binomial_approx_sample_thresh=100.0):
        x = d.sample((m,)).numpy()
    exact = st.binom(n, p)
    for level in (0.05, 0.25, 0.5, 0.75, 0.95):
        k = exact.ppf(level)
        cdf = exact.cdf(k)
        assert abs((x <= k).mean() - cdf) < Z * math.sqrt(cdf * (1 - cdf) / m), (k, level)


def test_binomial_approx_mixed_threshold():
    torch.manual_seed(5)
    d = dist.Binomial(torch.tensor([10.0, 1e7]), probs=torch.tensor([0.5, 0.5]))
    old = dist.Binomial.approx_sample_thresh
    try:
        dist.Binomial.approx_sample_thresh = 1000
        x = d.sample((2000,))
    finally:
        dist.Binomial.approx_sample_thresh = old
    assert x.shape == (2000, 2)
    assert (x[:, 0] <= 10).all()
    assert abs(x[:, 0].mean() - 5) < Z * math.sqrt(2.5 / 2000)
    assert abs(x[:, 1].mean() - 5e6) < Z * math.sqrt(2.5e6 / 2000)


def test_categorical_enumerate_fast_path_matches_gather():
    torch.manual_seed(6)
    d = dist.Categorical(logits=torch.randn(2, 3, 5))
    for expand in (False, True):
        values = d.enumerate_support(expand=expand)
        fast = d.log_prob(values)
        plain = d.log_prob(values.clone())  # untagged: uses gather
        assert not hasattr(values.clone(), "_ember_categorical_support")
        assert fast.shape == plain.shape == (5, 2, 3)
        assert torch.equal(fast, plain)
    # a tag re-applied after an enumeration handler reshapes the support
    values = d.enumerate_support(expand=False).reshape(5, 1, 1, 1)
    values._ember_categorical_support = id(d)
    assert torch.equal(d.log_prob(values), d.log_prob(values.clone()))
    # a stale tag from another distribution is ignored
    other = dist.Categorical(logits=torch.randn(4))
    stale = other.enumerate_support()
    assert torch.equal(
        d.log_prob(stale.reshape(4, 1, 1)), d.log_prob(stale.reshape(4, 1, 1).clone())
    )


def test_geometric_stable_log_prob():
    k = torch.tensor([0.0, 3.0, 100.0], dtype=DT)
    for logits in [-60.0, -5.0, 0.0, 5.0, 40.0]:
        lp = dist.Geometric(logits=torch.tensor(logits, dtype=DT)).log_prob(k)
        prob = sp.expit(logits)
        expected = k.numpy() * -np.logaddexp(0, logits) - np.logaddexp(0, -logits)
        np.testing.assert_allclose(lp.numpy(), expected, rtol=1e-10)
        assert np.isfinite(expected).all() and prob >= 0
    tiny = dist.Geometric(probs=torch.tensor(1e-30, dtype=DT)).log_prob(torch.tensor(2.0, dtype=DT))
    assert torch.allclose(tiny, torch.tensor(math.log(1e-30), dtype=DT))
    one = dist.Geometric(probs=torch.tensor(1.0)).log_prob(torch.tensor(0.0))
    assert one == 0


def test_lognormal_base_is_ember_normal():
    d = dist.LogNormal(torch.zeros(3), 1.0)
    assert type(d.base_dist) is dist.Normal
    e = d.expand((2, 3))
    assert type(e) is dist.LogNormal and type(e.base_dist) is dist.Normal
    assert e.batch_shape == (2, 3)


def test_poisson_sparse_matches_dense_and_grad():
    torch.manual_seed(7)
    rate = (torch.rand(10, 1) + 0.01).requires_grad_()
    counts = torch.zeros(10, 50)
    counts[3, 7] = 2
    counts[9, 0] = 5
    sparse = dist.Poisson(rate, is_sparse=True)
    dense = dist.Poisson(rate)
    lp_s, lp_d = sparse.log_prob(counts), dense.log_prob(counts)
    assert torch.allclose(lp_s, lp_d)
    (g_s,) = torch.autograd.grad(lp_s.sum(), rate)
    (g_d,) = torch.autograd.grad(lp_d.sum(), rate)
    assert torch.allclose(g_s, g_d)
    e = sparse.expand((3, 10, 50))
    assert e.is_sparse and type(e) is dist.Poisson
    assert torch.allclose(e.log_prob(counts), lp_d.expand(3, 10, 50))
    assert torch.allclose(sparse.log_prob(torch.zeros(10, 50)), -rate.expand(10, 50))


def test_uniform_support_is_unbroadcast():
    d = dist.Uniform(torch.tensor(0.0), torch.tensor([1.0, 2.0])).expand((3, 2))
    assert d.support.lower_bound.shape == ()
    assert d.support.upper_bound.shape == (2,)
    assert type(d) is dist.Uniform
    t = dist.biject_to(d.support)
    y = t(torch.randn(3, 2))
    assert ((y > 0) & (y < torch.tensor([1.0, 2.0]))).all()


def test_generated_constructor_rejects_extra_positional_arguments():
    import ember.distributions as edist

    assert edist.StudentT(3.0, 0.0, 1.0, False).df.item() == 3.0  # validate_args by position
    with pytest.raises(TypeError, match="StudentT.*takes 4 positional arguments.*5 were given"):
        edist.StudentT(3.0, 0.0, 1.0, None, 5)
