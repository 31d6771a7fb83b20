"""Conditional composition and conditional inverses of transform modules."""

import pytest
import torch

import ember.distributions as dist
from ember.distributions.conditional import ConditionalComposeTransformModule
from ember.distributions.transforms import (
    AffineTransform,
    ComposeTransformModule,
    ExpTransform,
    conditional_affine_autoregressive,
)


def make_parts():
    torch.manual_seed(0)
    return [
        AffineTransform(1.0, 2.0),
        conditional_affine_autoregressive(3, context_dim=2, hidden_dims=[6]),
        ExpTransform().inv,
        conditional_affine_autoregressive(3, context_dim=2, hidden_dims=[5]),
    ]


@pytest.mark.parametrize("batch_shape", [(), (4,)])
@pytest.mark.parametrize("cache_size", [0, 1])
def test_composition_applies_each_conditioned_part_in_order(batch_shape, cache_size):
    parts = make_parts()
    flow = ConditionalComposeTransformModule(parts, cache_size=cache_size)
    context = torch.rand(batch_shape + (2,))
    x = torch.rand(batch_shape + (3,)) + 0.1
    expected = x
    log_det = torch.zeros(batch_shape)
    for part in parts:
        t = part.condition(context) if hasattr(part, "condition") else part
        y = t(expected)
        ld = t.log_abs_det_jacobian(expected, y)
        log_det = log_det + (ld.sum(-1) if ld.shape == y.shape else ld)
        expected = y
    t = flow.condition(context)
    assert isinstance(t, ComposeTransformModule)
    y = t(x)
    assert torch.allclose(y, expected)
    assert torch.allclose(t.log_abs_det_jacobian(x, y).reshape(batch_shape), log_det, atol=1e-5)
    assert torch.allclose(flow.inv.condition(context)(y), x, atol=1e-5)
    # the parameters are those of the module parts, and nothing else
    expected_params = {
        p for part in parts if isinstance(part, torch.nn.Module) for p in part.parameters()
    }
    assert set(flow.parameters()) == expected_params != set()


def test_conditional_inverse_is_the_inverse_of_the_conditioned_transform():
    flow = conditional_affine_autoregressive(3, context_dim=2, hidden_dims=[6])
    context, y = torch.rand(5, 2), torch.randn(5, 3)
    assert torch.allclose(flow.inv.condition(context)(y), flow.condition(context).inv(y))
    assert flow.inv.inv is flow
    assert list(flow.inv.parameters()) == []  # the inverse does not own the parameters


def test_a_conditional_flow_in_a_distribution_normalizes_its_samples():
    flow = ConditionalComposeTransformModule(make_parts()[1:2])
    d = dist.ConditionalTransformedDistribution(
        dist.Normal(torch.zeros(3), 1.0).to_event(1), [flow]
    ).condition(torch.rand(2))
    x = d.rsample((7,))
    assert x.shape == (7, 3) and d.log_prob(x).shape == (7,)


def test_non_transforms_are_refused():
    with pytest.raises(TypeError, match=r"transforms\[1\] must be a Transform"):
        ConditionalComposeTransformModule([ExpTransform(), "exp"])
