"""Core paths on every device the machine has: distributions, the runtime, inference.

The ``device`` fixture runs each test on the CPU and, when one is present, on
CUDA (skipped with a reason otherwise). Every test checks that what ember
returns stays on the device of its inputs. A CPU-only proxy for stray tensors
that ember might create on the default device: the same paths run with
float32 inputs while the default dtype is float64, and every result must stay
float32 (a tensor made inside ember without the inputs' dtype and device would
show up as float64 and promote the results).
"""

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.infer import SVI, Importance, Predictive, Trace_ELBO, TraceEnum_ELBO, config_enumerate
from ember.infer.autoguide import AutoDelta, AutoMultivariateNormal, AutoNormal
from ember.optim import Adam

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(
            not torch.cuda.is_available(), reason="no CUDA device on this machine"
        ),
    ),
]


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture
def float64_default():
    """Default dtype float64 while the inputs are float32: stray tensors show up."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield torch.float32
    torch.set_default_dtype(old)


def same_place(t, like):
    return t.device == like.device and t.dtype == like.dtype


def regression(x, y):
    w = ember.sample("w", dist.Normal(torch.zeros_like(x[0]), 1.0).to_event(1))
    s = ember.sample("s", dist.LogNormal(x.new_tensor(0.0), 1.0))
    with ember.plate("data", x.shape[0], subsample_size=8) as idx:
        ember.sample("y", dist.Normal(x[idx] @ w, s), obs=y[idx])


def mixture(data):
    locs = ember.param("locs", torch.stack([data.min(), data.max()]))
    weights = ember.param("weights", data.new_tensor([0.5, 0.5]), dist.constraints.simplex)
    with ember.plate("data", len(data)):
        z = ember.sample("z", dist.Categorical(weights))
        ember.sample("x", dist.Normal(locs[z], 1.0), obs=data)


@pytest.mark.parametrize(
    "make",
    [
        lambda t: dist.Normal(t, 1.0),
        lambda t: dist.Gamma(t.exp(), 2.0),
        lambda t: dist.Beta(t.exp(), t.exp() + 1),
        lambda t: dist.Bernoulli(logits=t),
        lambda t: dist.Categorical(logits=torch.stack([t, -t], -1)),
        lambda t: dist.Poisson(t.exp()),
        lambda t: dist.Dirichlet(torch.stack([t.exp(), t.exp() + 1], -1)),
        lambda t: dist.MultivariateNormal(
            torch.stack([t, t], -1), scale_tril=torch.eye(2, dtype=t.dtype, device=t.device)
        ),
        lambda t: dist.LogNormal(t, 1.0).expand([2, 3]).to_event(1),
        lambda t: dist.Normal(t, 1.0).mask(t > 0),
    ],
)
def test_distributions_stay_on_the_device(device, float64_default, make):
    t = torch.linspace(-1, 1, 3, dtype=float64_default, device=device)
    d = make(t)
    x = d.sample((4,))
    lp = d.log_prob(x)
    assert x.device == t.device and same_place(lp, t)
    if d.has_rsample:
        assert same_place(d.rsample(), t)
    if d.has_enumerate_support:
        support = d.enumerate_support()
        assert support.device == t.device
        assert same_place(d.log_prob(support), t)


def test_runtime_trace_plates_and_handlers_stay_on_the_device(device, float64_default):
    x = torch.randn(20, 3, dtype=float64_default, device=device)
    y = torch.randn(20, dtype=float64_default, device=device)
    tr = poutine.trace(poutine.scale(regression, scale=0.5)).get_trace(x, y)
    tr.compute_log_prob()
    for name in ("w", "s", "y"):
        assert same_place(tr.nodes[name]["log_prob"], x), name
    assert tr.nodes["data"]["value"].device == x.device
    assert same_place(tr.log_prob_sum(), x)
    conditioned = poutine.condition(regression, {"s": x.new_tensor(2.0)})
    assert same_place(poutine.trace(conditioned).get_trace(x, y).log_prob_sum(), x)


@pytest.mark.parametrize("guide_class", [AutoNormal, AutoMultivariateNormal, AutoDelta])
def test_svi_with_autoguides_stays_on_the_device(device, float64_default, guide_class):
    ember.clear_param_store()
    ember.set_rng_seed(0)
    x = torch.randn(20, 3, dtype=float64_default, device=device)
    y = torch.randn(20, dtype=float64_default, device=device)
    guide = guide_class(regression)
    svi = SVI(regression, guide, Adam({"lr": 0.01}), Trace_ELBO(num_particles=2))
    for _ in range(3):
        svi.step(x, y)
    for name, p in ember.get_param_store().items():
        assert same_place(p, x), name
    samples = Predictive(regression, guide=guide, num_samples=5)(x, y)
    assert same_place(samples["w"], x)


def test_enumeration_stays_on_the_device(device, float64_default):
    ember.clear_param_store()
    data = torch.tensor([-2.0, -1.5, 1.0, 2.5], dtype=float64_default, device=device)
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    loss = elbo.differentiable_loss(config_enumerate(mixture), lambda data: None, data)
    assert same_place(loss, data)
    loss.backward()
    for _, p in ember.get_param_store().named_parameters():
        assert same_place(p.grad, data)


def test_importance_stays_on_the_device(device, float64_default):
    data = torch.tensor([0.5, 1.5], dtype=float64_default, device=device)

    def model(data):
        mu = ember.sample("mu", dist.Normal(data.new_tensor(0.0), 1.0))
        with ember.plate("data", 2):
            ember.sample("x", dist.Normal(mu, 1.0), obs=data)

    posterior = Importance(model, num_samples=50).run(data)
    assert same_place(posterior.get_ESS(), data)
