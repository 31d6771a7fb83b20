"""AutoStructured and the dependency analysis it uses: exact densities, inferred
structure, recovery of a Gaussian posterior with correlations."""

import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.infer import SVI, Trace_ELBO
from ember.infer.autoguide import AutoStructured
from ember.infer.inspect import get_dependencies, is_sample_site
from ember.optim import ClippedAdam


@pytest.fixture(autouse=True)
def fresh_store():
    ember.clear_param_store()
    yield
    ember.clear_param_store()


# ------------------------------------------------------------- dependencies
def test_dependencies_of_a_collider_are_moralized():
    def model():
        a = ember.sample("a", dist.Normal(0.0, 1.0))
        b = ember.sample("b", dist.LogNormal(0.0, 1.0))
        c = ember.sample("c", dist.Normal(a, b))
        ember.sample("d", dist.Normal(c, 1.0), obs=torch.tensor(0.0))

    deps = get_dependencies(model)
    assert deps["prior_dependencies"] == {
        "a": {"a": set()},
        "b": {"b": set()},
        "c": {"c": set(), "a": set(), "b": set()},
        "d": {"d": set(), "c": set()},
    }
    assert deps["posterior_dependencies"] == {
        "a": {"a": set(), "b": set(), "c": set()},
        "b": {"b": set(), "c": set()},
        "c": {"c": set(), "d": set()},
    }


def test_dependencies_across_plates_and_through_deterministic_sites():
    def model():
        with ember.plate("p", 4):
            a = ember.sample("a", dist.Normal(0.0, 1.0))
        total = ember.deterministic("total", a.sum())
        with ember.plate("q", 2):
            ember.sample("x", dist.Normal(total, 1.0), obs=torch.zeros(2))

    deps = get_dependencies(model)
    assert deps["prior_dependencies"]["x"] == {"x": set(), "a": set()}
    # a's elements are coupled through their sum: a depends on itself across plate p
    assert deps["posterior_dependencies"]["a"] == {"a": {"p"}, "x": set()}
    trace = poutine.trace(model).get_trace()
    assert [n for n, s in trace.nodes.items() if is_sample_site(s)] == ["a", "x"]


# ------------------------------------------------------------------- density
def test_structured_density_is_the_implied_gaussian():
    def model():
        x = ember.sample("x", dist.Normal(0.0, 1.0))
        ember.sample("y", dist.LogNormal(x, 1.0))

    guide = AutoStructured(
        model,
        conditionals={"x": "normal", "y": "normal"},
        dependencies={"y": {"x": "linear"}},
    )
    guide()
    lx, ly, sx, sy, w = 0.3, -0.2, 0.7, 0.4, 1.5
    guide.locs.x = torch.tensor([lx])
    guide.locs.y = torch.tensor([ly])
    guide.scales.x = torch.tensor([sx])
    guide.scales.y = torch.tensor([sy])
    with torch.no_grad():
        guide.deps.y.x.weight.fill_(w)
    trace = poutine.trace(guide).get_trace()
    trace.compute_log_prob()
    x, y = trace.nodes["x"]["value"], trace.nodes["y"]["value"]
    # (x, log y) = (lx, ly) + [[sx, 0], [w sx, sy]] eps
    chol = torch.tensor([[sx, 0.0], [w * sx, sy]])
    joint = torch.distributions.MultivariateNormal(torch.tensor([lx, ly]), scale_tril=chol)
    expected = joint.log_prob(torch.stack([x, y.log()])) - y.log()
    assert torch.allclose(trace.log_prob_sum(), expected, atol=1e-5)


def test_mvn_and_delta_conditionals():
    def model():
        ember.sample("v", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
        ember.sample("p", dist.Beta(2.0, 2.0))

    guide = AutoStructured(model, conditionals={"v": "mvn", "p": "delta"}, dependencies={})
    guide()
    guide.locs.p = torch.tensor([0.4])
    tril = torch.tensor([[1.0, 0.0, 0.0], [0.5, 2.0, 0.0], [-0.3, 0.2, 0.5]])
    guide.scale_trils.v = tril
    guide.scales.v = torch.tensor([1.0, 0.5, 2.0])
    trace = poutine.trace(guide).get_trace()
    trace.compute_log_prob()
    v = trace.nodes["v"]["value"]
    assert torch.allclose(trace.nodes["p"]["value"], torch.sigmoid(torch.tensor([0.4]))[0])
    # v = loc + (tril eps) * scale, elementwise after the matrix product
    chol = torch.diag(guide.scales.v.detach()) @ tril
    q = torch.distributions.MultivariateNormal(guide.locs.v.detach(), scale_tril=chol)
    assert torch.allclose(trace.log_prob_sum(), q.log_prob(v), atol=1e-5)


def test_inferred_structure_follows_the_model_order():
    def model():
        a = ember.sample("a", dist.Normal(0.0, 1.0))
        b = ember.sample("b", dist.LogNormal(0.0, 1.0))
        c = ember.sample("c", dist.Normal(a, b))
        ember.sample("d", dist.Normal(c, 1.0), obs=torch.tensor(0.0))

    guide = AutoStructured(model)
    guide()
    assert guide.dependencies == {
        "b": {"a": "linear"},
        "c": {"a": "linear", "b": "linear"},
    }
    assert [name for name, *_ in guide._sorted_sites] == ["a", "b", "c"]
    assert set(guide.median()) == {"a", "b", "c"}


def test_structure_errors():
    def model():
        ember.sample("a", dist.Normal(0.0, 1.0))
        ember.sample("b", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="conditional"):
        AutoStructured(model, conditionals="cauchy")
    with pytest.raises(ValueError, match="itself"):
        AutoStructured(model, conditionals={"a": "normal"}, dependencies={"a": {"a": "linear"}})
    cyclic = AutoStructured(
        model,
        conditionals={"a": "normal", "b": "normal"},
        dependencies={"a": {"b": "linear"}, "b": {"a": "linear"}},
    )
    with pytest.raises(ValueError, match="cycle"):
        cyclic()
    with pytest.raises(ValueError, match=r"no conditional for latent sites \['b'\]"):
        AutoStructured(model, conditionals={"a": "normal"}, dependencies={})()


@pytest.mark.slow
def test_structured_guide_recovers_a_correlated_gaussian_posterior():
    # x ~ N(0, 1), y_i ~ N(x, 1), obs_i ~ N(y_i, 1): the posterior of (x, y_0, y_1) has
    # precision [[3, -1, -1], [-1, 2, 0], [-1, 0, 2]] and mean precision^-1 (0, o_0, o_1)
    data = torch.tensor([1.0, -0.5])

    def model(data):
        x = ember.sample("x", dist.Normal(0.0, 1.0))
        with ember.plate("data", 2):
            y = ember.sample("y", dist.Normal(x, 1.0))
            ember.sample("obs", dist.Normal(y, 1.0), obs=data)

    precision = torch.tensor([[3.0, -1.0, -1.0], [-1.0, 2.0, 0.0], [-1.0, 0.0, 2.0]])
    cov = torch.linalg.inv(precision)
    mean = cov @ torch.cat([torch.zeros(1), data])
    ember.set_rng_seed(0)
    guide = AutoStructured(model)
    steps = 1500
    optim = ClippedAdam({"lr": 0.05, "lrd": 0.1 ** (1 / steps)})
    svi = SVI(model, guide, optim, Trace_ELBO(num_particles=32, vectorize_particles=True))
    for _ in range(steps):
        svi.step(data)
    with torch.no_grad(), ember.plate("particles", 40000, dim=-2):
        trace = poutine.trace(guide).get_trace(data)
    draws = torch.cat(
        [trace.nodes["x"]["value"].reshape(-1, 1), trace.nodes["y"]["value"].reshape(-1, 2)], -1
    )
    # 40000 draws: standard errors ~0.005 for the means, ~0.5 % for the covariances
    assert torch.allclose(draws.mean(0), mean, atol=0.05)
    sd = cov.diagonal().sqrt()
    empirical = torch.cov(draws.T)
    assert ((empirical - cov).abs() / (sd[:, None] * sd[None, :])).max() < 0.05
    assert math.isfinite(guide.median()["x"].item())
