"""Reparameterizers leave the model's joint density unchanged.

Each test runs a model with and without a reparameterizer at the same point
(related by the reparameterizer's map) and checks, exactly, that the
reparameterized log joint equals the original log joint plus the log Jacobian
of the map.
"""

import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.distributions import biject_to
from ember.distributions.transforms import AffineTransform, ExpTransform, PermuteTransform
from ember.infer import MCMC, NUTS, SVI, Trace_ELBO
from ember.infer.autoguide import AutoIAFNormal
from ember.infer.reparam import (
    ConjugateReparam,
    LocScaleReparam,
    NeuTraReparam,
    Reparam,
    SplitReparam,
    TransformReparam,
    UnitJacobianReparam,
)
from ember.ops.stats import effective_sample_size
from ember.optim import Adam


def log_joint(model, data, *args):
    tr = poutine.trace(poutine.condition(model, data=data)).get_trace(*args)
    return tr.log_prob_sum(), tr


def loc_scale_model(y):
    loc = torch.tensor([0.5, -1.0, 2.0])
    scale = torch.tensor([0.3, 1.5, 2.0])
    with ember.plate("groups", 3, dim=-1):
        with ember.plate("reps", 2, dim=-2):
            x = ember.sample("x", dist.Normal(loc, scale))
        ember.sample("y", dist.Normal(x, 1.0), obs=y)


@pytest.mark.parametrize("centered", [0.0, 0.3, torch.tensor([0.2, 0.7, 1.0])])
def test_loc_scale_joint_density_unchanged(centered):
    torch.manual_seed(0)
    loc = torch.tensor([0.5, -1.0, 2.0])
    scale = torch.tensor([0.3, 1.5, 2.0])
    y = torch.randn(2, 3)
    x = torch.randn(2, 3) * 2
    c = torch.as_tensor(centered)
    # the inverse map x -> x_decentered
    x_dec = (x - loc) * scale.pow(c - 1) + c * loc
    before, _ = log_joint(loc_scale_model, {"x": x}, y)
    rep = poutine.reparam(loc_scale_model, {"x": LocScaleReparam(centered)})
    after, tr = log_joint(rep, {"x_decentered": x_dec}, y)
    assert torch.allclose(tr.nodes["x"]["value"], x, atol=1e-6)
    # x = loc + scale^(1-c) (x_dec - c loc): dx/dx_dec = scale^(1-c), for 2 reps
    log_jac = (2 * (1 - c) * scale.log()).sum()
    assert torch.allclose(after, before + log_jac, atol=1e-5)


def test_loc_scale_learnable_centeredness_param():
    ember.clear_param_store()
    y = torch.zeros(2, 3)
    rep = poutine.reparam(loc_scale_model, {"x": LocScaleReparam()})
    tr = poutine.trace(rep).get_trace(y)
    centered = ember.param("x_centered")
    assert centered.shape == (3,) or centered.shape == ()
    assert torch.allclose(centered, torch.tensor(0.5))
    # the learned centeredness gets a gradient through the ELBO-style density
    unconstrained = ember.get_param_store()["x_centered"].unconstrained()
    tr.log_prob_sum().backward()
    assert unconstrained.grad is not None
    ember.clear_param_store()


def test_loc_scale_studentt_keeps_df():
    d = dist.StudentT(4.0, torch.tensor(1.0), torch.tensor(2.0))
    model = lambda: ember.sample("x", d)  # noqa: E731
    x = torch.tensor(0.7)
    before, _ = log_joint(model, {"x": x})
    rep = poutine.reparam(model, {"x": LocScaleReparam(0.0)})
    after, tr = log_joint(rep, {"x_decentered": (x - 1.0) / 2.0})
    assert tr.nodes["x_decentered"]["fn"].df == 4.0
    assert torch.allclose(after, before + math.log(2.0), atol=1e-6)


def test_loc_scale_fully_centered_is_identity():
    model = lambda: ember.sample("x", dist.Normal(1.0, 2.0))  # noqa: E731
    tr = poutine.trace(poutine.reparam(model, {"x": LocScaleReparam(1.0)})).get_trace()
    assert list(n for n in tr.nodes if not n.startswith("_")) == ["x"]
    assert not tr.nodes["x"]["is_observed"]


def transformed_model():
    base = dist.Normal(torch.tensor([0.2, -0.4]), torch.tensor([1.0, 0.5]))
    d = dist.TransformedDistribution(base, [AffineTransform(1.0, 3.0), ExpTransform()])
    with ember.plate("p", 2):
        ember.sample("x", d)


def test_transform_joint_density_unchanged():
    x = torch.tensor([0.8, 5.0])
    before, _ = log_joint(transformed_model, {"x": x})
    # inverse map: base = (log x - 1) / 3
    base_value = (x.log() - 1.0) / 3.0
    rep = poutine.reparam(transformed_model, {"x": TransformReparam()})
    after, tr = log_joint(rep, {"x_base": base_value})
    assert torch.allclose(tr.nodes["x"]["value"], x, atol=1e-5)
    # dx/dbase = 3 x
    log_jac = (3 * x).log().sum()
    assert torch.allclose(after, before + log_jac, atol=1e-5)


def test_transform_reparam_to_event():
    base = dist.Normal(torch.zeros(3), 1.0)
    d = dist.TransformedDistribution(base, [ExpTransform()]).to_event(1)
    model = lambda: ember.sample("x", d)  # noqa: E731
    x = torch.tensor([0.5, 1.0, 2.0])
    before, _ = log_joint(model, {"x": x})
    rep = poutine.reparam(model, {"x": TransformReparam()})
    after, tr = log_joint(rep, {"x_base": x.log()})
    assert tr.nodes["x_base"]["fn"].event_dim == 1
    assert torch.allclose(after, before + x.log().sum(), atol=1e-6)


def test_split_density_is_original():
    d = dist.MultivariateNormal(torch.zeros(5), torch.eye(5) + 0.5)
    model = lambda: ember.sample("x", d)  # noqa: E731
    x = torch.tensor([0.1, -0.3, 0.5, 1.0, -2.0])
    rep = poutine.reparam(model, {"x": SplitReparam([2, 3], -1)})
    after, tr = log_joint(rep, {"x_split_0": x[:2], "x_split_1": x[2:]})
    assert torch.equal(tr.nodes["x"]["value"], x)
    assert torch.allclose(after, d.log_prob(x), atol=1e-6)


def test_split_rejects_bad_sections():
    d = dist.Normal(torch.zeros(5), 1.0).to_event(1)
    model = lambda: ember.sample("x", d)  # noqa: E731
    with pytest.raises(ValueError, match="do not add up"):
        poutine.trace(poutine.reparam(model, {"x": SplitReparam([2, 2], -1)})).get_trace()


def test_unit_jacobian_density_unchanged():
    d = dist.Normal(torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 2.0, 3.0])).to_event(1)
    model = lambda: ember.sample("x", d)  # noqa: E731
    x = torch.tensor([0.3, -1.0, 4.0])
    perm = torch.tensor([2, 0, 1])
    before, _ = log_joint(model, {"x": x})
    rep = poutine.reparam(model, {"x": UnitJacobianReparam(PermuteTransform(perm))})
    after, tr = log_joint(rep, {"x_transformed": x[perm]})
    assert torch.allclose(tr.nodes["x"]["value"], x)
    assert torch.allclose(after, before, atol=1e-6)


def test_conjugate_beta_binomial_exact():
    """With the exact likelihood as guide, the site's weight is the marginal
    likelihood over the guide: log B(a', b') - log B(a, b) - log B(guide)."""
    total, count = torch.tensor(10.0), torch.tensor(3.0)

    def model():
        prob = ember.sample("prob", dist.Beta(2.0, 2.0))
        ember.sample("count", dist.Binomial(total, prob), obs=count)

    # Binomial(count | total, p) as a Beta density over p: Beta(count + 1, total - count + 1)
    guide_lik = dist.Beta(count + 1, total - count + 1)
    rep = poutine.reparam(model, {"prob": ConjugateReparam(guide_lik)})
    tr = poutine.trace(rep).get_trace()
    assert "prob_updated" not in tr.nodes
    p = tr.nodes["prob"]["value"]

    def log_beta(a, b):
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)

    log_normalizer = log_beta(5.0, 9.0) - log_beta(2.0, 2.0) - log_beta(4.0, 8.0)
    expected_prob_site = log_normalizer - guide_lik.log_prob(p)
    tr.compute_log_prob()
    assert torch.allclose(tr.nodes["prob"]["log_prob"], expected_prob_site, atol=1e-5)
    # the whole joint is the evidence p(count) exactly, whatever p was drawn
    log_evidence = (
        math.lgamma(11.0)
        - math.lgamma(4.0)
        - math.lgamma(8.0)
        + log_beta(5.0, 9.0)
        - log_beta(2.0, 2.0)
    )
    assert abs(float(tr.log_prob_sum()) - log_evidence) < 1e-4


def test_old_call_interface_still_works():
    class OldStyle(Reparam):
        def __call__(self, name, fn, obs):
            z = ember.sample(f"{name}_z", dist.Normal(0.0, 1.0))
            value = fn.loc + fn.scale * z
            return dist.Delta(value).mask(False), value

    model = lambda: ember.sample("x", dist.Normal(3.0, 2.0))  # noqa: E731
    with pytest.warns(DeprecationWarning, match="apply"):
        tr = poutine.trace(poutine.reparam(model, {"x": OldStyle()})).get_trace()
    assert tr.nodes["x"]["is_observed"]
    assert torch.allclose(tr.nodes["x"]["value"], 3.0 + 2.0 * tr.nodes["x_z"]["value"])
    # a new-style reparameterizer answers the old call too
    with poutine.trace() as t:
        fn, value = LocScaleReparam(0.0)("y", dist.Normal(1.0, 2.0), None)
    assert torch.allclose(value, 1.0 + 2.0 * t.trace.nodes["y_decentered"]["value"])


def test_bad_config_and_reparam():
    with pytest.raises(TypeError, match="config"):
        poutine.reparam(config=3)
    model = lambda: ember.sample("x", dist.Normal(0.0, 1.0))  # noqa: E731
    with pytest.raises(TypeError, match="'x'"):
        poutine.trace(poutine.reparam(model, {"x": object()})).get_trace()
    with pytest.raises(TypeError, match="TransformedDistribution"):
        poutine.trace(poutine.reparam(model, {"x": TransformReparam()})).get_trace()


class RecordShape(Reparam):
    def __init__(self):
        self.batch_shapes = []

    def apply(self, msg):
        self.batch_shapes.append(msg["fn"].batch_shape)
        return {"fn": msg["fn"], "value": msg["value"], "is_observed": msg["is_observed"]}


def test_reparam_sees_distribution_broadcast_to_plates():
    rec = RecordShape()

    def model():
        with ember.plate("outer", 4, dim=-2):
            with ember.plate("inner", 3, dim=-1):
                ember.sample("x", dist.Normal(0.0, 1.0))

    poutine.reparam(model, {"x": rec})()
    assert rec.batch_shapes == [torch.Size([4, 3])]

    # between the plates: the site is broadcast to the inner plate only (as in Pyro)
    rec = RecordShape()

    def model2():
        with ember.plate("outer", 4, dim=-2):
            with poutine.reparam(config={"x": rec}):
                with ember.plate("inner", 3, dim=-1):
                    return ember.sample("x", dist.Normal(0.0, 1.0))

    assert model2().shape == (4, 3)
    assert rec.batch_shapes == [torch.Size([3])]


def test_reparam_handler_passes_args_kwargs():
    seen = []

    class Spy(Reparam):
        def apply(self, msg):
            seen.append(self.args_kwargs)
            return {"fn": msg["fn"], "value": msg["value"], "is_observed": msg["is_observed"]}

    def model(a, b=None):
        ember.sample("x", dist.Normal(0.0, 1.0))

    poutine.reparam(model, {"x": Spy()})(1, b=2)
    assert seen == [((1,), {"b": 2})]


def test_neutra_density_is_pushforward():
    """The NeuTra-reparameterized model's density over the shared latent is the
    model density at the pushed-forward point times the Jacobian of the map."""

    def model():
        a = ember.sample("a", dist.Normal(0.0, 1.0))
        ember.sample("b", dist.LogNormal(a, 0.5))

    ember.clear_param_store()
    torch.manual_seed(1)
    guide = AutoIAFNormal(model, hidden_dim=[5])
    guide()
    neutra = NeuTraReparam(guide)
    z = torch.tensor([0.3, -0.8])
    after, tr = log_joint(neutra.reparam(model), {"a_shared_latent": z})
    transform = guide.get_transform()
    u = transform(z)
    a, b = u[0], biject_to(dist.LogNormal(0.0, 1.0).support)(u[1])
    before, _ = log_joint(model, {"a": a, "b": b})
    log_jac = transform.log_abs_det_jacobian(z, u) + u[1]  # exp on b
    assert torch.allclose(tr.nodes["b"]["value"], b, atol=1e-6)
    assert torch.allclose(after, before + log_jac, atol=1e-5)
    samples = neutra.transform_sample(z)
    assert torch.allclose(samples["a"], a) and torch.allclose(samples["b"], b)
    ember.clear_param_store()


@pytest.mark.slow
def test_neutra_with_trained_iaf_guide_runs_nuts():
    """Train an IAF guide on Neal's funnel, then run NUTS on the warped model; the
    samples mapped back to the model's sites have the funnel's known marginal
    of the scale variable, Normal(0, 3), roughly."""

    def funnel():
        y = ember.sample("y", dist.Normal(0.0, 3.0))
        ember.sample("x", dist.Normal(0.0, (0.5 * y).exp()).expand([2]).to_event(1))

    ember.clear_param_store()
    ember.set_rng_seed(0)
    guide = AutoIAFNormal(funnel, hidden_dim=[8], num_transforms=2)
    svi = SVI(funnel, guide, Adam({"lr": 0.01}), Trace_ELBO())
    for _ in range(300):
        svi.step()
    neutra = NeuTraReparam(guide.requires_grad_(False))
    mcmc = MCMC(NUTS(neutra.reparam(funnel)), num_samples=150, warmup_steps=100)
    mcmc.run()
    z = mcmc.get_samples()["y_shared_latent"]
    assert z.shape == (150, 3)
    samples = neutra.transform_sample(z)
    assert samples["y"].shape == (150,) and samples["x"].shape == (150, 2)
    assert torch.isfinite(samples["x"]).all()
    # a loose check: 150 correlated draws of y ~ Normal(0, 3)
    assert abs(float(samples["y"].mean())) < 2.0
    assert 1.0 < float(samples["y"].std()) < 6.0
    ember.clear_param_store()


@pytest.mark.slow
def test_neutra_improves_nuts_effective_sample_size_on_a_funnel():
    """On Neal's funnel (y ~ N(0, 3), x ~ N(0, exp(y / 2)) in 4 dims) plain NUTS mixes
    poorly in y; NUTS on the space warped by a trained IAF guide mixes better: its ESS of
    y, with the same draws and warm-up, is at least 1.5 times as large."""

    def funnel():
        y = ember.sample("y", dist.Normal(0.0, 3.0))
        ember.sample("x", dist.Normal(0.0, (0.5 * y).exp()).expand([4]).to_event(1))

    def ess(y):
        return float(effective_sample_size(y[None, :]))

    ember.clear_param_store()
    ember.set_rng_seed(1)
    plain = MCMC(NUTS(funnel), num_samples=300, warmup_steps=300, disable_progbar=True)
    plain.run()
    ember.set_rng_seed(1)
    guide = AutoIAFNormal(funnel, hidden_dim=[16], num_transforms=2)
    svi = SVI(funnel, guide, Adam({"lr": 0.005}), Trace_ELBO(num_particles=4))
    for _ in range(1500):
        svi.step()
    neutra = NeuTraReparam(guide.requires_grad_(False))
    warped = MCMC(
        NUTS(neutra.reparam(funnel)), num_samples=300, warmup_steps=300, disable_progbar=True
    )
    warped.run()
    y = neutra.transform_sample(warped.get_samples()["y_shared_latent"])["y"]
    assert ess(y) > 1.5 * ess(plain.get_samples()["y"])
    ember.clear_param_store()
