"""vectorized_importance_weights, fit_generalized_pareto and psis_diagnostic: exact values."""

import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember.infer.importance import (
    fit_generalized_pareto,
    psis_diagnostic,
    vectorized_importance_weights,
)

DATA = torch.tensor([0.4, -1.1, 2.0])


def model():
    z = ember.sample("z", dist.Normal(0.0, 1.0))
    with ember.plate("data", len(DATA)):
        ember.sample("x", dist.Normal(z, 1.0), obs=DATA)


def exact_posterior_guide():
    # z | x ~ N(sum(x) / (n + 1), 1 / (n + 1))
    n = len(DATA)
    ember.sample("z", dist.Normal(DATA.sum() / (n + 1), (1.0 / (n + 1)) ** 0.5))


def log_evidence():
    n = len(DATA)
    cov = torch.eye(n) + torch.ones(n, n)  # x = z + noise
    return dist.MultivariateNormal(torch.zeros(n), cov).log_prob(DATA)


def test_weights_of_the_exact_posterior_are_the_evidence():
    ember.set_rng_seed(0)
    log_w, model_trace, guide_trace = vectorized_importance_weights(
        model, exact_posterior_guide, num_samples=7, max_plate_nesting=1
    )
    assert log_w.shape == (7,)
    torch.testing.assert_close(log_w, log_evidence().expand(7), rtol=1e-5, atol=1e-5)
    assert guide_trace.nodes["z"]["value"].shape == (7, 1)
    normalized, _, _ = vectorized_importance_weights(
        model, exact_posterior_guide, num_samples=4, max_plate_nesting=1, normalized=True
    )
    torch.testing.assert_close(normalized, torch.full((4,), -math.log(4.0)))
    one, _, _ = vectorized_importance_weights(
        model, exact_posterior_guide, num_samples=1, max_plate_nesting=1
    )
    assert one.shape == () and abs(one.item() - log_evidence().item()) < 1e-5


def test_weights_keep_their_gradient_and_estimate_the_elbo():
    # E_q[log w] is the ELBO: for q = N(m, s) its gradient in m is exact here
    ember.set_rng_seed(1)
    m = torch.tensor(0.3, requires_grad=True)

    def guide():
        ember.sample("z", dist.Normal(m, 0.5))

    n = 20000
    log_w, _, _ = vectorized_importance_weights(model, guide, num_samples=n, max_plate_nesting=1)
    log_w.mean().backward()
    # d/dm E[log p(z) + sum log p(x_i | z)] = -m + sum(x_i - m)
    expected = -m.item() + (DATA - m.item()).sum().item()
    # one sample's gradient is sum(x) - (len(x) + 1) * z with z = m + 0.5 * eps: its sd
    # is (len(x) + 1) * 0.5
    se = (len(DATA) + 1) * 0.5 / math.sqrt(n)
    assert abs(m.grad.item() - expected) < 4 * se


def test_vectorized_importance_weights_needs_max_plate_nesting():
    with pytest.raises(ValueError, match="max_plate_nesting"):
        vectorized_importance_weights(model, exact_posterior_guide, num_samples=3)


@pytest.mark.parametrize("k", [0.2, 0.5, 0.8])
def test_fit_generalized_pareto_recovers_the_shape(k):
    # exact GPD(k, sigma) samples by inversion: x = sigma * (u ** -k - 1) / k
    torch.manual_seed(0)
    n, sigma = 20000, 2.0
    u = torch.rand(n, dtype=torch.float64)
    x = sigma * (u ** (-k) - 1.0) / k
    k_hat, sigma_hat = fit_generalized_pareto(x)
    # the estimator's asymptotic sd is about (1 + k) / sqrt(n)
    se = (1.0 + k) / math.sqrt(n)
    assert abs(k_hat - k) < 4 * se
    assert abs(sigma_hat / sigma - 1.0) < 4 * 2.0 * (1.0 + k) / math.sqrt(n)


def test_fit_generalized_pareto_rejects_bad_input():
    with pytest.raises(ValueError, match="positive"):
        fit_generalized_pareto(torch.tensor([1.0, -1.0, 2.0]))
    with pytest.raises(ValueError, match="at least 2"):
        fit_generalized_pareto(torch.tensor([1.0]))


@pytest.mark.parametrize("rate", [0.4, 0.7])
def test_psis_diagnostic_of_an_exact_pareto_tail(rate):
    # proposal Exponential(1), target Exponential(rate): the weight
    # rate * exp((1 - rate) z) is exactly Pareto with k = 1 - rate
    def target():
        ember.sample("z", dist.Exponential(rate))

    def proposal():
        ember.sample("z", dist.Exponential(1.0))

    ember.set_rng_seed(2)
    num = 1_000_000
    k = psis_diagnostic(target, proposal, num_particles=num, max_simultaneous_particles=250_000)
    tail = math.ceil(min(0.2 * num, 3 * math.sqrt(num)))
    se = (1.0 + (1 - rate)) / math.sqrt(tail)
    assert abs(k - (1.0 - rate)) < 4 * se, (k, 1 - rate, se)


def test_psis_diagnostic_arguments():
    with pytest.raises(ValueError, match="divisible"):
        psis_diagnostic(
            model, exact_posterior_guide, num_particles=10, max_simultaneous_particles=3
        )
    with pytest.warns(UserWarning, match="Not enough tail samples"):
        assert psis_diagnostic(model, exact_posterior_guide, num_particles=20) == math.inf
