"""The one ELBO contract: particle_elbo, and everything built on it once in ELBO."""

import math
import warnings

import pytest
import torch

import ember
import ember.distributions as dist
from ember.infer import (
    ELBO,
    SVI,
    JitTrace_ELBO,
    JitTraceEnum_ELBO,
    JitTraceGraph_ELBO,
    JitTraceMeanField_ELBO,
    Trace_ELBO,
    TraceEnum_ELBO,
    TraceGraph_ELBO,
    TraceMeanField_ELBO,
)
from ember.infer.elbo import ParticleEstimate
from ember.infer.util import unconstrained_param
from ember.optim import SGD

X0 = 1.3


def model():
    z = ember.sample("z", dist.Normal(0.0, 1.0))
    ember.sample("x", dist.Normal(z, 1.0), obs=torch.tensor(X0))


def guide():
    loc = ember.param("loc", torch.tensor(0.2))
    scale = ember.param("scale", torch.tensor(0.7), constraint=dist.constraints.positive)
    ember.sample("z", dist.Normal(loc, scale))


def exact_elbo(m, s):
    e_prior = -0.5 * math.log(2 * math.pi) - 0.5 * (m**2 + s**2)
    e_lik = -0.5 * math.log(2 * math.pi) - 0.5 * ((X0 - m) ** 2 + s**2)
    return e_prior + e_lik + 0.5 * math.log(2 * math.pi * math.e * s**2)


class AnalyticELBO(ELBO):
    """A user estimator: the exact ELBO of the model above, with no sampling at all."""

    def particle_elbo(self, model, guide, args, kwargs, particle_dim):
        tr = ember.poutine.trace(guide).get_trace(*args, **kwargs)
        fn = tr.nodes["z"]["fn"]
        m, s = fn.loc, fn.scale
        elbo = (
            -math.log(2 * math.pi)
            - 0.5 * (m**2 + s**2)
            - 0.5 * ((X0 - m) ** 2 + s**2)
            + 0.5 * torch.log(2 * math.pi * math.e * s**2)
        )
        if particle_dim is not None:  # one entry per vectorized particle
            elbo = elbo.expand(self.num_particles)
        return ParticleEstimate(elbo, elbo, (tr,))


@pytest.mark.parametrize("vectorize", [False, True])
def test_a_user_estimator_gets_every_method_from_particle_elbo(vectorize):
    ember.clear_param_store()
    elbo = AnalyticELBO(num_particles=3, vectorize_particles=vectorize, max_plate_nesting=0)
    expected = -exact_elbo(0.2, 0.7)
    assert elbo.loss(model, guide) == pytest.approx(expected, abs=1e-5)
    loss, surrogate = elbo.loss_and_surrogate(model, guide)
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    assert elbo.differentiable_loss(model, guide).item() == pytest.approx(expected, abs=1e-5)
    value, params = elbo.loss_and_params(model, guide)
    assert value.item() == pytest.approx(expected, abs=1e-5)
    loc = ember.param("loc")
    assert {id(p) for p in params} == {
        id(unconstrained_param(loc)),
        id(unconstrained_param(ember.param("scale"))),
    }
    # d(-ELBO)/d loc = loc - 0 + loc - X0 = 2 loc - X0
    assert unconstrained_param(loc).grad.item() == pytest.approx(2 * 0.2 - X0, abs=1e-5)


def test_svi_steps_through_loss_and_params():
    ember.clear_param_store()
    svi = SVI(model, guide, SGD({"lr": 0.1}), AnalyticELBO())
    for _ in range(300):
        svi.step()
    # exact posterior N(X0 / 2, 1 / 2)
    assert ember.param("loc").item() == pytest.approx(X0 / 2, abs=1e-3)
    assert ember.param("scale").item() == pytest.approx(math.sqrt(0.5), abs=1e-3)


def test_svi_honours_a_subclass_that_overrides_loss_and_grads():
    calls = []

    class Counting(Trace_ELBO):
        def loss_and_grads(self, model, guide, *args, **kwargs):
            calls.append(1)
            return super().loss_and_grads(model, guide, *args, **kwargs)

    ember.clear_param_store()
    svi = SVI(model, guide, SGD({"lr": 0.01}), Counting())
    before = ember.param("loc").item() if "loc" in ember.get_param_store() else None
    svi.step()
    assert calls == [1]
    assert before is None and ember.param("loc").item() != 0.2  # the step found the params


def test_a_subclass_overriding_loss_and_surrogate_still_reports_params():
    class Exact(ELBO):
        def loss_and_surrogate(self, model, guide, *args, **kwargs):
            fn = ember.poutine.trace(guide).get_trace().nodes["z"]["fn"]
            m, s = fn.loc, fn.scale
            loss = -(-0.5 * (m**2 + s**2) - 0.5 * ((X0 - m) ** 2 + s**2) + torch.log(s))
            return loss, loss

    ember.clear_param_store()
    _, params = Exact().loss_and_params(model, guide)
    assert len(params) == 2 and all(p.grad is not None for p in params)


@pytest.mark.parametrize(
    "elbo_cls", [Trace_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO, TraceEnum_ELBO]
)
def test_loss_and_params_agrees_with_loss_and_grads(elbo_cls):
    def run(method):
        ember.clear_param_store()
        ember.set_rng_seed(5)
        elbo = elbo_cls(num_particles=2, max_plate_nesting=0, strict_enumeration_warning=False)
        out = getattr(elbo, method)(model, guide)
        grads = {
            name: unconstrained_param(ember.param(name)).grad.clone() for name in ("loc", "scale")
        }
        return out, grads

    value, grads = run("loss_and_grads")
    (loss, params), grads2 = run("loss_and_params")
    assert loss.item() == pytest.approx(value, abs=1e-6) and len(params) == 2
    for name in grads:
        torch.testing.assert_close(grads[name], grads2[name])


@pytest.mark.parametrize(
    "module, name, base",
    [
        ("trace_elbo", "JitTrace_ELBO", Trace_ELBO),
        ("tracegraph_elbo", "JitTraceGraph_ELBO", TraceGraph_ELBO),
        ("trace_mean_field_elbo", "JitTraceMeanField_ELBO", TraceMeanField_ELBO),
        ("traceenum_elbo", "JitTraceEnum_ELBO", TraceEnum_ELBO),
    ],
)
def test_jit_aliases_live_beside_their_base(module, name, base):
    import importlib

    cls = getattr(importlib.import_module(f"ember.infer.{module}"), name)
    assert cls is getattr(ember.infer, name) and issubclass(cls, base)


def test_jit_aliases_are_the_exported_names():
    assert [JitTrace_ELBO, JitTraceGraph_ELBO, JitTraceMeanField_ELBO, JitTraceEnum_ELBO] == [
        ember.infer.JitTrace_ELBO,
        ember.infer.JitTraceGraph_ELBO,
        ember.infer.JitTraceMeanField_ELBO,
        ember.infer.JitTraceEnum_ELBO,
    ]


def test_an_estimator_without_particle_elbo_says_what_to_implement():
    class Empty(ELBO):
        pass

    with pytest.raises(NotImplementedError, match="particle_elbo"):
        Empty().loss(model, guide)


def test_nan_loss_warns():
    def nan_model():
        ember.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(float("nan")))

    with ember.validation_enabled(False), warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        loss = Trace_ELBO().loss(nan_model, lambda: None)
    assert loss != loss and any("NaN" in str(x.message) for x in w)
