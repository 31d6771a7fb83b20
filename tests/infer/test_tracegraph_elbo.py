"""TraceGraph_ELBO: unbiased, Rao-Blackwellized score-function gradients, baselines."""

import itertools
import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember.infer import Trace_ELBO, TraceGraph_ELBO

DATA = torch.tensor([1.5, -0.3, 0.8, 2.1, 0.0, 1.1])
PRIOR = 0.3


def plate_model():
    with ember.plate("data", len(DATA)):
        z = ember.sample("z", dist.Bernoulli(PRIOR))
        ember.sample("x", dist.Normal(2.0 * z, 1.0), obs=DATA)


def make_plate_guide(p, baseline=None):
    def guide():
        with ember.plate("data", len(DATA)):
            infer = {} if baseline is None else {"baseline": baseline}
            ember.sample("z", dist.Bernoulli(p), infer=infer)

    return guide


def exact_plate_elbo(p):
    total = 0.0
    for z in (0.0, 1.0):
        zt = torch.full_like(DATA, z)
        q = dist.Bernoulli(p).log_prob(zt)
        joint = dist.Bernoulli(PRIOR).log_prob(zt) + dist.Normal(2.0 * zt, 1.0).log_prob(DATA)
        total = total + (q.exp() * (joint - q)).sum()
    return total


def _grad_samples(elbo, guide_fn, p, runs, model=plate_model):
    grads = []
    for _ in range(runs):
        p.grad = None
        elbo.loss_and_grads(model, guide_fn(p))
        grads.append(p.grad.clone())
    return torch.stack(grads)


def _exact_grad(exact_fn, p):
    p.grad = None
    (-exact_fn(p)).backward()
    g = p.grad.clone()
    p.grad = None
    return g


def test_plate_gradient_unbiased():
    ember.set_rng_seed(0)
    p = torch.tensor([0.2, 0.5, 0.6, 0.8, 0.4, 0.5], requires_grad=True)
    expected = _exact_grad(exact_plate_elbo, p)
    elbo = TraceGraph_ELBO(num_particles=200, vectorize_particles=True, max_plate_nesting=1)
    grads = _grad_samples(elbo, make_plate_guide, p, 30)
    mean, se = grads.mean(0), grads.std(0) / math.sqrt(grads.shape[0])
    assert ((mean - expected).abs() < 4 * se + 1e-6).all(), (mean, expected, se)


def test_lower_variance_than_trace_elbo():
    ember.set_rng_seed(1)
    p = torch.tensor([0.2, 0.5, 0.6, 0.8, 0.4, 0.5], requires_grad=True)
    kw = dict(num_particles=1, max_plate_nesting=1)
    var_graph = _grad_samples(TraceGraph_ELBO(**kw), make_plate_guide, p, 400).var(0).sum()
    var_trace = _grad_samples(Trace_ELBO(**kw), make_plate_guide, p, 400).var(0).sum()
    # Rao-Blackwellization drops the other 5 data points' costs from each site's term
    assert var_graph < 0.5 * var_trace, (var_graph, var_trace)


@pytest.mark.parametrize(
    "baseline",
    [
        {"use_decaying_avg_baseline": True, "baseline_beta": 0.9},
        {"baseline_value": torch.full((6,), -2.0)},
    ],
)
def test_baselines_keep_gradient_unbiased(baseline):
    ember.set_rng_seed(2)
    p = torch.tensor([0.2, 0.5, 0.6, 0.8, 0.4, 0.5], requires_grad=True)
    expected = _exact_grad(exact_plate_elbo, p)
    elbo = TraceGraph_ELBO(num_particles=1, max_plate_nesting=1)
    grads = _grad_samples(elbo, lambda q: make_plate_guide(q, baseline), p, 1500)
    mean, se = grads.mean(0), grads.std(0) / math.sqrt(grads.shape[0])
    assert ((mean - expected).abs() < 4 * se + 1e-6).all(), (mean, expected, se)


def test_decaying_average_baseline_reduces_variance():
    ember.set_rng_seed(3)
    p = torch.tensor([0.2, 0.5, 0.6, 0.8, 0.4, 0.5], requires_grad=True)
    elbo = TraceGraph_ELBO(max_plate_nesting=1)
    plain = _grad_samples(elbo, make_plate_guide, p, 600).var(0).sum()
    avg = {"use_decaying_avg_baseline": True, "baseline_beta": 0.95}
    elbo = TraceGraph_ELBO(max_plate_nesting=1)
    with_baseline = _grad_samples(elbo, lambda q: make_plate_guide(q, avg), p, 600)
    assert with_baseline[100:].var(0).sum() < plain


def test_nn_baseline_is_trained():
    ember.clear_param_store()
    ember.set_rng_seed(4)
    net = torch.nn.Linear(1, 1)
    before = net.bias.detach().clone()
    p = torch.tensor(0.5, requires_grad=True)

    def model():
        z = ember.sample("z", dist.Bernoulli(0.3))
        ember.sample("x", dist.Normal(2.0 * z, 1.0), obs=torch.tensor(1.5))

    def guide():
        ember.module("baseline_net", net)
        baseline = {"nn_baseline": net, "nn_baseline_input": torch.ones(1)}
        ember.sample("z", dist.Bernoulli(p), infer={"baseline": baseline})

    TraceGraph_ELBO().loss_and_grads(model, guide)
    assert net.bias.grad is not None and net.bias.grad.abs().item() > 0
    assert torch.equal(net.bias.detach(), before)
    assert p.grad is not None


def test_bad_baseline_options():
    p = torch.tensor(0.5)

    def model():
        ember.sample("z", dist.Bernoulli(0.3))

    def guide(opts):
        return lambda: ember.sample("z", dist.Bernoulli(p), infer={"baseline": opts})

    with pytest.raises(ValueError, match="unknown baseline options"):
        TraceGraph_ELBO().loss(model, guide({"use_avg": True}))
    with pytest.raises(ValueError, match="nn_baseline_input"):
        TraceGraph_ELBO().loss(model, guide({"nn_baseline": torch.nn.Linear(1, 1)}))


# A chain of dependent discrete sites, with a sequential plate: the downstream
# structure matters, and the exact ELBO is a sum over all 2^4 assignments.
def chain_model():
    a = ember.sample("a", dist.Bernoulli(0.4))
    for i in ember.plate("seq", 2):
        b = ember.sample(f"b_{i}", dist.Bernoulli(0.2 + 0.6 * a))
        ember.sample(f"x_{i}", dist.Normal(b + a, 1.0), obs=torch.tensor(0.7 * (i + 1)))
    c = ember.sample("c", dist.Bernoulli(0.5))
    ember.sample("y", dist.Normal(c - a, 1.0), obs=torch.tensor(0.2))


def make_chain_guide(p):
    def guide():
        a = ember.sample("a", dist.Bernoulli(p[0]))
        for i in ember.plate("seq", 2):
            ember.sample(f"b_{i}", dist.Bernoulli(p[1 + i] * (0.5 + 0.5 * a)))
        ember.sample("c", dist.Bernoulli(p[3]))

    return guide


def exact_chain_elbo(p):
    total = 0.0
    for a, b0, b1, c in itertools.product((0.0, 1.0), repeat=4):
        a_, b0_, b1_, c_ = (torch.tensor(v) for v in (a, b0, b1, c))
        log_q = (
            dist.Bernoulli(p[0]).log_prob(a_)
            + dist.Bernoulli(p[1] * (0.5 + 0.5 * a_)).log_prob(b0_)
            + dist.Bernoulli(p[2] * (0.5 + 0.5 * a_)).log_prob(b1_)
            + dist.Bernoulli(p[3]).log_prob(c_)
        )
        log_p = (
            dist.Bernoulli(torch.tensor(0.4)).log_prob(a_)
            + dist.Bernoulli(0.2 + 0.6 * a_).log_prob(b0_)
            + dist.Normal(b0_ + a_, 1.0).log_prob(torch.tensor(0.7))
            + dist.Bernoulli(0.2 + 0.6 * a_).log_prob(b1_)
            + dist.Normal(b1_ + a_, 1.0).log_prob(torch.tensor(1.4))
            + dist.Bernoulli(torch.tensor(0.5)).log_prob(c_)
            + dist.Normal(c_ - a_, 1.0).log_prob(torch.tensor(0.2))
        )
        total = total + log_q.exp() * (log_p - log_q)
    return total


def test_dependent_sites_and_sequential_plate_gradient_unbiased():
    ember.set_rng_seed(5)
    p = torch.tensor([0.6, 0.7, 0.5, 0.3], requires_grad=True)
    expected = _exact_grad(exact_chain_elbo, p)
    elbo = TraceGraph_ELBO(num_particles=100, vectorize_particles=True, max_plate_nesting=0)
    grads = _grad_samples(elbo, make_chain_guide, p, 40, model=chain_model)
    mean, se = grads.mean(0), grads.std(0) / math.sqrt(grads.shape[0])
    assert ((mean - expected).abs() < 4 * se + 1e-6).all(), (mean, expected, se)


def test_loss_value_matches_trace_elbo_in_expectation():
    ember.set_rng_seed(6)
    p = torch.tensor([0.6, 0.7, 0.5, 0.3])
    elbo = TraceGraph_ELBO(num_particles=400, vectorize_particles=True, max_plate_nesting=0)
    est = torch.tensor([elbo.loss(chain_model, make_chain_guide(p)) for _ in range(10)])
    mean, se = est.mean(), est.std() / math.sqrt(len(est))
    assert abs(mean + exact_chain_elbo(p)) < 4 * se + 1e-6
