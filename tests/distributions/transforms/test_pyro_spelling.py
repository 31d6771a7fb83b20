"""Flows as Pyro programs spell them: module paths, helper constructors, ``ember.module``, SVI."""

import math

import pytest
import torch

import ember as pyro
import ember.distributions as dist
from ember.distributions import transforms as T
from ember.nn import AutoRegressiveNN


def test_module_paths():
    import ember.nn.auto_reg_nn
    from ember.distributions.torch_transform import ComposeTransformModule, TransformModule

    assert pyro.nn.AutoRegressiveNN is ember.nn.auto_reg_nn.AutoRegressiveNN
    assert pyro.nn.MaskedLinear is ember.nn.auto_reg_nn.MaskedLinear
    assert TransformModule is T.TransformModule
    assert ComposeTransformModule is T.ComposeTransformModule
    for name in [
        "InverseAutoregressiveFlow",
        "InverseAutoregressiveFlowStable",
        "PlanarFlow",
        "RadialFlow",
        "BatchNormTransform",
        "DeepSigmoidalFlow",
        "PermuteTransform",
        "TransformModule",
    ]:
        assert getattr(dist, name) is getattr(T, name)
    assert T.Planar is T.PlanarFlow and T.Radial is T.RadialFlow
    assert T.BatchNorm is T.BatchNormTransform and T.Permute is T.PermuteTransform


def test_seed_examples_run():
    torch.manual_seed(0)
    base = dist.Normal(torch.zeros(10), torch.ones(10))
    # InverseAutoregressiveFlow, with BatchNormTransform between two of them
    iafs = [dist.InverseAutoregressiveFlow(AutoRegressiveNN(10, [40])) for _ in range(2)]
    bn = dist.BatchNormTransform(10)
    flow_dist = dist.TransformedDistribution(base, [iafs[0], bn, iafs[1]])
    assert flow_dist.sample().shape == (10,)
    # deep sigmoidal flow
    arn = AutoRegressiveNN(10, [40], param_dims=[16] * 3)
    naf = dist.DeepSigmoidalFlow(arn, hidden_units=16)
    naf_dist = dist.TransformedDistribution(base, [naf])
    y = naf_dist.sample()
    assert y.shape == (10,) and torch.isfinite(naf_dist.log_prob(y))
    # permutation between two IAFs
    iaf1 = dist.InverseAutoregressiveFlow(AutoRegressiveNN(10, [40]))
    ff = dist.PermuteTransform(torch.randperm(10, dtype=torch.long))
    iaf2 = dist.InverseAutoregressiveFlow(AutoRegressiveNN(10, [40]))
    iaf_dist = dist.TransformedDistribution(base, [iaf1, ff, iaf2])
    y = iaf_dist.sample((3,))
    assert iaf_dist.log_prob(y).shape == (3,)
    # planar, radial, stable IAF
    for flow in [
        dist.PlanarFlow(10),
        dist.RadialFlow(10),
        dist.InverseAutoregressiveFlowStable(AutoRegressiveNN(10, [40])),
    ]:
        d = dist.TransformedDistribution(base, [flow])
        assert torch.isfinite(d.log_prob(d.sample()))


def test_helper_constructors():
    torch.manual_seed(0)
    assert isinstance(T.affine_autoregressive(3), T.AffineAutoregressive)
    stable = T.affine_autoregressive(3, [12], stable=True, sigmoid_bias=1.5)
    assert stable.stable and stable.sigmoid_bias == 1.5 and stable.arn.hidden_dims == [12]
    clipped = T.affine_autoregressive(3, log_scale_min_clip=-2.0, log_scale_max_clip=1.0)
    assert (clipped.log_scale_min_clip, clipped.log_scale_max_clip) == (-2.0, 1.0)
    assert isinstance(T.iaf(3), T.InverseAutoregressiveFlow)
    assert isinstance(T.planar(3), T.PlanarFlow) and T.planar(3).input_dim == 3
    assert isinstance(T.radial(3), T.RadialFlow)
    bn = T.batchnorm(3, momentum=0.2, epsilon=1e-4)
    assert isinstance(bn, T.BatchNormTransform) and (bn.momentum, bn.epsilon) == (0.2, 1e-4)
    perm = T.permute(3, torch.tensor([2, 0, 1]))
    assert perm.permutation.tolist() == [2, 0, 1]
    naf = T.neural_autoregressive(3, width=6)
    assert isinstance(naf, T.DeepSigmoidalFlow) and naf.hidden_units == 6
    assert naf.arn.param_dims == [6, 6, 6]
    with pytest.raises(ValueError, match="activation='relu' is not available"):
        T.neural_autoregressive(3, activation="relu")
    cond = T.conditional_affine_autoregressive(3, 2)
    assert cond.condition(torch.zeros(2))(torch.zeros(4, 3)).shape == (4, 3)

    stack = T.iterated(3, T.planar, 2)
    assert isinstance(stack, T.ComposeTransformModule) and len(stack.parts) == 3
    assert len({id(p) for p in stack.parts}) == 3  # independent layers
    assert len(list(stack.parameters())) == 9
    x = torch.randn(5, 2)
    expected = x
    for part in stack.parts:
        expected = part(expected)
    assert torch.allclose(stack(x), expected)
    with pytest.raises(ValueError, match="repeats must be a positive int"):
        T.iterated(0, T.planar, 2)
    with pytest.raises(TypeError, match="base_fn must be a function"):
        T.iterated(2, 3)


def test_ember_module_registers_flow_parameters():
    pyro.clear_param_store()
    iaf = dist.InverseAutoregressiveFlow(AutoRegressiveNN(2, [40]))
    assert pyro.module("my_iaf", iaf) is iaf
    names = set(pyro.get_param_store().keys())
    expected = {f"my_iaf$$${n}" for n, _ in iaf.named_parameters()}
    assert expected and expected <= names
    pyro.clear_param_store()


@pytest.mark.slow
def test_svi_with_iaf_guide_finds_gaussian_posterior():
    """z ~ N(0, I_2), x ~ N(z, 0.5^2 I): posterior N(0.8 x, 0.2 I); a single IAF can express it."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    x_obs = torch.tensor([1.0, -2.0])
    iaf = dist.InverseAutoregressiveFlow(AutoRegressiveNN(2, [8]))

    def model():
        z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z, 0.5).to_event(1), obs=x_obs)

    def guide():
        pyro.module("iaf", iaf)
        pyro.sample("z", dist.TransformedDistribution(dist.Normal(torch.zeros(2), 1.0), [iaf]))

    calls = []
    iaf.arn.register_forward_hook(lambda *args: calls.append(1))
    # a decaying step size damps the noise of the one-sample ELBO gradient
    optim = pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.993})
    svi = pyro.infer.SVI(model, guide, optim, pyro.infer.Trace_ELBO())
    before = {n: p.detach().clone() for n, p in iaf.named_parameters()}
    svi.step()
    # sampling and scoring z costs one network pass: the guide scores through the cache
    assert len(calls) == 1
    for _ in range(600):
        svi.step()
    assert any(not torch.equal(before[n], p) for n, p in iaf.named_parameters())

    n = 4000
    with torch.no_grad():
        z = dist.TransformedDistribution(dist.Normal(torch.zeros(2), 1.0), [iaf]).sample((n,))
    post_mean, post_sd = 0.8 * x_obs, math.sqrt(0.2)
    # The fit is an optimum of a noisy objective, so allow 0.1 of optimization error on top
    # of four standard errors of the Monte Carlo mean (seeds 0-4 land within 0.06).
    assert torch.allclose(z.mean(0), post_mean, atol=0.1 + 4 * post_sd / math.sqrt(n))
    assert torch.allclose(z.std(0), torch.full((2,), post_sd), atol=0.1)
    pyro.clear_param_store()
