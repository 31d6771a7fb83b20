"""iter_discrete_traces, Monte Carlo settings of config_enumerate, compute_marginals."""

import itertools
import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.infer import TraceEnum_ELBO, config_enumerate
from ember.infer.enum import (
    get_importance_trace,
    iter_discrete_escape,
    iter_discrete_extend,
    iter_discrete_traces,
)


@pytest.fixture(autouse=True)
def clean_param_store():
    ember.clear_param_store()
    yield
    ember.clear_param_store()


@pytest.mark.parametrize("graph_type", ["flat", "dense"])
def test_iter_discrete_traces_visits_every_joint_value_once(graph_type):
    @config_enumerate(default="sequential")
    def model():
        x = ember.sample("x", dist.Bernoulli(0.3))
        y = ember.sample("y", dist.Categorical(torch.tensor([0.1, 0.2, 0.7])))
        ember.sample("w", dist.Normal(0.0, 1.0))  # sampled in every run
        return x, y

    traces = list(iter_discrete_traces(graph_type, model))
    values = sorted((int(t.nodes["x"]["value"]), int(t.nodes["y"]["value"])) for t in traces)
    assert values == sorted(itertools.product(range(2), range(3)))
    for t in traces:
        assert [n for n, s in t.nodes.items() if s["type"] == "sample"] == ["x", "y", "w"]
        assert t.nodes["y"]["infer"]["_enum_total"] == 3
    # the probabilities of the runs' discrete values sum to one
    total = sum(
        math.exp(t.nodes["x"]["fn"].log_prob(t.nodes["x"]["value"]).item())
        * math.exp(t.nodes["y"]["fn"].log_prob(t.nodes["y"]["value"]).item())
        for t in traces
    )
    assert total == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("expand", [False, True])
def test_iter_discrete_traces_of_a_batched_site_share_one_value(expand):
    @config_enumerate(default="sequential", expand=expand)
    def model():
        with ember.plate("p", 4):
            return ember.sample("z", dist.Categorical(torch.ones(3) / 3))

    traces = list(iter_discrete_traces("flat", model))
    assert len(traces) == 3
    shape = (4,) if expand else (1,)
    for t in traces:
        z = t.nodes["z"]["value"]
        assert z.shape == shape and torch.all(z == z[0])
    assert sorted(int(t.nodes["z"]["value"][0]) for t in traces) == [0, 1, 2]


def test_escape_and_extend_helpers():
    from ember.poutine.runtime import new_message

    msg = new_message("sample", "k", dist.Bernoulli(0.5))
    assert not iter_discrete_escape(poutine.Trace(), msg)
    msg["infer"] = {"enumerate": "sequential"}
    assert iter_discrete_escape(poutine.Trace(), msg)
    extended = list(iter_discrete_extend(poutine.Trace(), msg))
    assert [float(t.nodes["k"]["value"]) for t in extended] == [0.0, 1.0]
    assert iter_discrete_escape(extended[0], msg) is False
    bad = new_message("sample", "c", dist.Normal(0.0, 1.0))
    bad["infer"] = {"enumerate": "sequential"}
    with pytest.raises(ValueError, match="site 'c'.*no enumerable support"):
        list(iter_discrete_extend(poutine.Trace(), bad))


def test_get_importance_trace_is_exported():
    def model():
        ember.sample("z", dist.Normal(0.0, 1.0))

    model_trace, guide_trace = get_importance_trace("flat", 0, model, model, (), {})
    assert "z" in model_trace.nodes and "log_prob" in model_trace.nodes["z"]


def test_num_samples_without_parallel_default_leaves_sites_sampled():
    @config_enumerate(default=None, num_samples=7)
    def guide():
        return ember.sample("z", dist.Normal(0.0, 1.0))

    trace = poutine.trace(guide).get_trace()
    infer = trace.nodes["z"]["infer"]
    assert infer["enumerate"] is None and infer["num_samples"] == 7 and infer["tmc"] == "diagonal"
    # not enumerated: one draw
    enumerated = poutine.trace(poutine.enum(guide, first_available_dim=-1)).get_trace()
    assert enumerated.nodes["z"]["value"].shape == ()


def test_monte_carlo_draws_are_reparameterized_when_possible():
    loc = torch.tensor(0.5, requires_grad=True)

    @config_enumerate(num_samples=5)
    def guide():
        return ember.sample("z", dist.Normal(loc, 1.0))

    z = poutine.enum(guide, first_available_dim=-1)()
    assert z.shape == (5,) and z.requires_grad


# ----------------------------------------------------------------------------- marginals
def test_compute_marginals_of_one_hot_categorical_sites():
    probs = torch.tensor([0.2, 0.5, 0.3])
    locs = torch.tensor([-1.0, 0.0, 2.0])
    x = torch.tensor(1.5)

    @config_enumerate
    def model():
        z = ember.sample("z", dist.OneHotCategorical(probs))
        ember.sample("x", dist.Normal((z * locs).sum(-1), 1.0), obs=x)

    marginals = TraceEnum_ELBO(max_plate_nesting=0).compute_marginals(model, lambda: None)
    assert isinstance(marginals["z"], dist.OneHotCategorical)
    joint = probs * dist.Normal(locs, 1.0).log_prob(x).exp()
    assert torch.allclose(marginals["z"].probs, joint / joint.sum(), atol=1e-6)


def test_compute_marginals_refuses_what_it_does_not_compute():
    @config_enumerate
    def model():
        ember.sample("w", dist.Bernoulli(0.1))
        ember.sample("z", dist.Bernoulli(0.4))

    @config_enumerate
    def guide():
        ember.sample("w", dist.Bernoulli(0.4))

    with pytest.raises(NotImplementedError, match="compute_marginals.*guide enumeration"):
        TraceEnum_ELBO(max_plate_nesting=0).compute_marginals(model, guide)
    with pytest.raises(NotImplementedError, match="compute_marginals.*particles"):
        TraceEnum_ELBO(max_plate_nesting=0, num_particles=2).compute_marginals(model, guide)

    def seq_model():
        ember.sample("z", dist.Bernoulli(0.4), infer={"enumerate": "sequential"})

    with pytest.raises(NotImplementedError, match="sequential"):
        TraceEnum_ELBO(max_plate_nesting=0).compute_marginals(seq_model, lambda: None)


# ----------------------------------------------------------------------------- posterior draws
def test_sample_posterior_draws_dependent_sites_from_their_joint_posterior():
    # x, y independent a priori, coupled by an observation of z ~ Bernoulli(table[x, y]);
    # each of n plate elements is an independent copy: frequencies against the exact joint
    n = 20000
    prior_x, prior_y = [0.3, 0.7], [0.6, 0.4]
    table = [[0.9, 0.2], [0.3, 0.8]]

    @config_enumerate
    def model():
        with ember.plate("n", n):
            x = ember.sample("x", dist.Categorical(torch.tensor(prior_x)))
            y = ember.sample("y", dist.Categorical(torch.tensor(prior_y)))
            ember.sample("z", dist.Bernoulli(torch.tensor(table)[x, y]), obs=torch.ones(n))
            return x, y

    ember.set_rng_seed(0)
    x, y = TraceEnum_ELBO(max_plate_nesting=1).sample_posterior(model, lambda: None)
    assert x.shape == (n,) and y.shape == (n,) and x.dtype == torch.long
    joint = [[prior_x[a] * prior_y[b] * table[a][b] for b in range(2)] for a in range(2)]
    norm = sum(map(sum, joint))
    for a, b in itertools.product(range(2), range(2)):
        p = joint[a][b] / norm
        freq = ((x == a) & (y == b)).double().mean().item()
        assert abs(freq - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_sample_posterior_of_a_global_site_given_plated_data():
    locs = torch.tensor([-1.0, 1.5])
    data = torch.tensor([1.2, 0.8, 2.0, -0.3])

    @config_enumerate
    def model():
        z = ember.sample("z", dist.Categorical(torch.tensor([0.5, 0.5])))
        with ember.plate("data", 4):
            ember.sample("x", dist.Normal(locs[z], 1.0), obs=data)
        return z

    log_post = dist.Normal(locs[:, None], 1.0).log_prob(data).sum(-1)
    p1 = torch.softmax(log_post, 0)[1].item()
    ember.set_rng_seed(1)
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    draws = torch.stack([elbo.sample_posterior(model, lambda: None) for _ in range(400)])
    assert draws.shape == (400,)
    assert abs(draws.double().mean().item() - p1) < 4 * math.sqrt(p1 * (1 - p1) / 400) + 1e-9


def test_sample_posterior_refuses_what_it_does_not_compute():
    @config_enumerate
    def model():
        ember.sample("w", dist.Bernoulli(0.1))

    @config_enumerate
    def guide():
        ember.sample("w", dist.Bernoulli(0.4))

    with pytest.raises(NotImplementedError, match="sample_posterior.*guide enumeration"):
        TraceEnum_ELBO(max_plate_nesting=0).sample_posterior(model, guide)
    with pytest.raises(NotImplementedError, match="sample_posterior.*particles"):
        TraceEnum_ELBO(max_plate_nesting=0, num_particles=3).sample_posterior(model, guide)
