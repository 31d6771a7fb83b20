"""Automatic guides against exact posteriors.

Bayesian linear regression with known noise on the diabetes data (Efron et al.
2004, bundled in ``ember/data``) has a Gaussian posterior in closed form:
precision ``P = X'X / sigma^2 + I / tau^2``, mean ``P^-1 X'y / sigma^2``. A
multivariate normal guide can equal it, so AutoMultivariateNormal must recover
it and the Laplace approximation must be exact; the mean-field optimum
(AutoNormal) has the exact means and variances ``1 / P_ii``. Eight schools is
checked against the exact posterior by quadrature (as in the demo).
"""

import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember.demo.datasets import load_diabetes, load_eight_schools
from ember.demo.eight_schools import exact_posterior
from ember.demo.eight_schools import model as eight_schools_model
from ember.infer import SVI, Predictive, Trace_ELBO
from ember.infer.autoguide import (
    AutoLaplaceApproximation,
    AutoMultivariateNormal,
    AutoNormal,
)
from ember.optim import ClippedAdam

SIGMA = 0.7  # the noise sd of the standardized target (the least-squares residual sd is 0.69)
TAU = 1.0  # the prior sd of the intercept and the weights


@pytest.fixture(scope="module")
def regression():
    d = load_diabetes(torch.float64)
    X = d["data"]
    X = (X - X.mean(0)) / X.std(0)
    y = d["target"]
    y = (y - y.mean()) / y.std()
    n, k = X.shape
    design = torch.cat([torch.ones(n, 1, dtype=X.dtype), X], 1)
    precision = design.T @ design / SIGMA**2 + torch.eye(k + 1, dtype=X.dtype) / TAU**2
    cov = torch.linalg.inv(precision)
    mean = cov @ design.T @ y / SIGMA**2
    # the evidence: y ~ N(0, sigma^2 I + tau^2 design design')
    marginal = SIGMA**2 * torch.eye(n, dtype=X.dtype) + TAU**2 * design @ design.T
    log_evidence = torch.distributions.MultivariateNormal(torch.zeros(n, dtype=X.dtype), marginal)
    return {
        "X": X,
        "y": y,
        "mean": mean,
        "cov": cov,
        "precision": precision,
        "log_evidence": log_evidence.log_prob(y),
    }


def regression_model(X, y):
    b = ember.sample("b", dist.Normal(X.new_tensor(0.0), TAU))
    w = ember.sample("w", dist.Normal(X.new_tensor(0.0), TAU).expand([X.shape[1]]).to_event(1))
    with ember.plate("data", X.shape[0]):
        ember.sample("y", dist.Normal(b + (X * w).sum(-1), SIGMA), obs=y)


def fit(guide, data, steps, lr, num_particles):
    ember.set_rng_seed(0)
    optim = ClippedAdam({"lr": lr, "lrd": 0.01 ** (1 / steps)})
    elbo = Trace_ELBO(num_particles=num_particles, vectorize_particles=True)
    svi = SVI(regression_model, guide, optim, elbo)
    for _ in range(steps):
        svi.step(data["X"], data["y"])


def test_the_exact_posterior_makes_the_elbo_the_evidence(regression):
    """With the guide set to the closed-form posterior, log p(y, z) - log q(z) is the log
    evidence for every draw z: the guide's density and the packing of the sites are exact."""
    ember.clear_param_store()
    guide = AutoMultivariateNormal(regression_model)
    guide(regression["X"], regression["y"])
    chol = torch.linalg.cholesky(regression["cov"])
    scale = chol.diagonal()
    with torch.no_grad():
        guide.loc.copy_(regression["mean"])
    guide.scale = scale
    guide.scale_tril = chol / scale[:, None]
    assert torch.allclose(guide.get_posterior().covariance_matrix, regression["cov"])
    elbo = Trace_ELBO(num_particles=20, vectorize_particles=True)
    loss = elbo.loss(regression_model, guide, regression["X"], regression["y"])
    assert loss == pytest.approx(-regression["log_evidence"].item(), abs=1e-6)


@pytest.mark.slow
def test_multivariate_normal_recovers_the_posterior(regression):
    ember.clear_param_store()
    guide = AutoMultivariateNormal(regression_model)
    fit(guide, regression, steps=6000, lr=0.03, num_particles=64)
    q = guide.get_posterior()
    sd = regression["cov"].diagonal().sqrt()
    assert ((q.loc.detach() - regression["mean"]) / sd).abs().max() < 0.05
    # each covariance entry within 5 % of sd_i sd_j
    error = (q.covariance_matrix.detach() - regression["cov"]).abs() / (sd[:, None] * sd[None, :])
    assert error.max() < 0.05


@pytest.mark.slow
def test_laplace_approximation_is_the_posterior(regression):
    ember.clear_param_store()
    guide = AutoLaplaceApproximation(regression_model)
    fit(guide, regression, steps=3000, lr=0.03, num_particles=1)
    sd = regression["cov"].diagonal().sqrt()
    assert ((guide.loc.detach() - regression["mean"]) / sd).abs().max() < 1e-6
    laplace = guide.laplace_approximation(regression["X"], regression["y"])
    posterior = laplace.get_posterior()
    assert torch.allclose(posterior.covariance_matrix, regression["cov"], rtol=1e-8, atol=1e-12)
    assert torch.allclose(posterior.loc, regression["mean"], atol=1e-6 * sd.min())


@pytest.mark.slow
def test_autonormal_reaches_the_mean_field_optimum(regression):
    ember.clear_param_store()
    guide = AutoNormal(regression_model)
    fit(guide, regression, steps=3000, lr=0.03, num_particles=32)
    sd = regression["cov"].diagonal().sqrt()
    loc = torch.cat([guide.locs.b.detach().reshape(1), guide.locs.w.detach()])
    scale = torch.cat([guide.scales.b.detach().reshape(1), guide.scales.w.detach()])
    assert ((loc - regression["mean"]) / sd).abs().max() < 0.05
    mean_field_sd = regression["precision"].diagonal().rsqrt()
    assert (scale / mean_field_sd - 1).abs().max() < 0.05
    # the mean-field sds are smaller than the marginal sds of the correlated weights
    assert (mean_field_sd[1:] < sd[1:]).all()


@pytest.mark.slow
def test_autonormal_on_eight_schools():
    d = load_eight_schools()
    sigma, y = d["stderr"], d["effect"]
    exact = exact_posterior(sigma, y)
    ember.clear_param_store()
    ember.set_rng_seed(0)
    guide = AutoNormal(eight_schools_model)
    steps = 1500
    optim = ClippedAdam({"lr": 0.05, "lrd": 0.1 ** (1 / steps)})
    svi = SVI(
        eight_schools_model, guide, optim, Trace_ELBO(num_particles=8, vectorize_particles=True)
    )
    for _ in range(steps):
        svi.step(sigma, y)
    num = 4000
    draws = Predictive(
        eight_schools_model,
        guide=guide,
        num_samples=num,
        parallel=True,
        return_sites=["mu", "tau", "theta"],
    )(sigma, y)
    # a mean-field guide misses the funnel between tau and the school effects: its means
    # are within these many exact sds (the Monte Carlo error of the draws is ~0.02 sd)
    tolerance = {"mu": 0.25, "tau": 0.4, "theta": 0.25}
    for name, tol in tolerance.items():
        mean = draws[name].reshape(num, -1).mean(0)
        exact_mean, exact_sd = exact[name][0], exact[name][1]
        assert ((mean - exact_mean) / exact_sd).abs().max() < tol, name
    assert math.isfinite(guide.median()["tau"].item())
