"""With a subsampled plate the ELBO estimate stays unbiased for the full-data ELBO."""

import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember.infer import Trace_ELBO, TraceGraph_ELBO

DATA = torch.linspace(-1.0, 2.0, 20)
M, S = 0.4, 0.3


def model(subsample_size=None):
    mu = ember.sample("mu", dist.Normal(0.0, 1.0))
    with ember.plate("data", len(DATA), subsample_size=subsample_size) as idx:
        ember.sample("x", dist.Normal(mu, 1.0), obs=DATA[idx])


def guide(subsample_size=None):
    ember.sample("mu", dist.Normal(M, S))


def full_elbo():
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    e_prior = -half_log_2pi - 0.5 * (M**2 + S**2)
    e_lik = sum(-half_log_2pi - 0.5 * ((x - M) ** 2 + S**2) for x in DATA.tolist())
    entropy = 0.5 * math.log(2 * math.pi * math.e * S**2)
    return e_prior + e_lik + entropy


@pytest.mark.parametrize("elbo_cls", [Trace_ELBO, TraceGraph_ELBO])
def test_subsampled_elbo_is_unbiased(elbo_cls):
    ember.set_rng_seed(0)
    # 10 particles per pass share one subsample; the passes are independent
    elbo = elbo_cls(num_particles=10, vectorize_particles=True, max_plate_nesting=1)
    estimates = torch.tensor([elbo.loss(model, guide, 5) for _ in range(300)])
    mean, se = estimates.mean(), estimates.std() / math.sqrt(len(estimates))
    assert abs(mean.item() + full_elbo()) < 4 * se.item()
    # and the subsampled estimate really is noisier than the full-data one
    full = torch.tensor([elbo.loss(model, guide) for _ in range(100)])
    assert full.std() < estimates.std()
    assert abs(full.mean().item() + full_elbo()) < 4 * full.std().item() / math.sqrt(100)


def test_subsampled_local_latents_scale():
    # local latents in a subsampled plate: the scaled estimate is unbiased too
    ember.set_rng_seed(1)
    n, k = 12, 3
    locs = torch.linspace(-1.0, 1.0, n)

    def local_model():
        with ember.plate("data", n, subsample_size=k) as idx:
            z = ember.sample("z", dist.Normal(0.0, 1.0))
            ember.sample("x", dist.Normal(z, 1.0), obs=locs[idx])

    def local_guide():
        with ember.plate("data", n, subsample_size=k) as idx:
            ember.sample("z", dist.Normal(locs[idx] * 0.5, 0.8))

    half_log_2pi = 0.5 * math.log(2 * math.pi)
    exact = 0.0
    for x in locs.tolist():
        m, s = 0.5 * x, 0.8
        exact += (
            -half_log_2pi
            - 0.5 * (m**2 + s**2)
            - half_log_2pi
            - 0.5 * ((x - m) ** 2 + s**2)
            + 0.5 * math.log(2 * math.pi * math.e * s**2)
        )
    elbo = Trace_ELBO(num_particles=10, vectorize_particles=True, max_plate_nesting=1)
    estimates = torch.tensor([elbo.loss(local_model, local_guide) for _ in range(300)])
    mean, se = estimates.mean(), estimates.std() / math.sqrt(len(estimates))
    assert abs(mean.item() + exact) < 4 * se.item()


# Discrete local latents in a subsampled plate: the score-function gradient
# (scaled cost, unscaled score) is unbiased for the full-data gradient.
XS = torch.tensor([1.5, -0.3, 0.8, 2.1, 0.0, 1.1])


def discrete_model():
    with ember.plate("data", len(XS), subsample_size=2) as idx:
        z = ember.sample("z", dist.Bernoulli(0.3))
        ember.sample("x", dist.Normal(2.0 * z, 1.0), obs=XS[idx])


def make_discrete_guide(p):
    def guide():
        with ember.plate("data", len(XS), subsample_size=2) as idx:
            ember.sample("z", dist.Bernoulli(p[idx]))

    return guide


def exact_discrete_elbo(p):
    total = 0.0
    for z in (0.0, 1.0):
        zt = torch.full_like(XS, z)
        q = dist.Bernoulli(p).log_prob(zt)
        joint = dist.Bernoulli(0.3).log_prob(zt) + dist.Normal(2.0 * zt, 1.0).log_prob(XS)
        total = total + (q.exp() * (joint - q)).sum()
    return total


@pytest.mark.parametrize("elbo_cls", [Trace_ELBO, TraceGraph_ELBO])
def test_subsampled_score_function_gradient_is_unbiased(elbo_cls):
    ember.set_rng_seed(2)
    p = torch.tensor([0.2, 0.5, 0.6, 0.8, 0.4, 0.5], requires_grad=True)
    (-exact_discrete_elbo(p)).backward()
    expected = p.grad.clone()
    elbo = elbo_cls(num_particles=20, vectorize_particles=True, max_plate_nesting=1)
    grads = []
    for _ in range(300):
        p.grad = None
        elbo.loss_and_grads(discrete_model, make_discrete_guide(p))
        grads.append(p.grad.clone())
    grads = torch.stack(grads)
    mean, se = grads.mean(0), grads.std(0) / math.sqrt(len(grads))
    assert ((mean - expected).abs() < 4 * se + 1e-6).all(), (mean, expected, se)
