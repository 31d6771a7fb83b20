"""infer_shapes of the families whose shapes do not follow from univariate parameters
(Empirical, Rejector, Unit, GroupedNormalNormal, TruncatedPolyaGamma) agrees with the
shapes of a constructed instance; Delta does not advertise enumeration (as in Pyro)."""

import math

import pytest
import torch

import ember.distributions as dist
from ember.distributions.testing.rejection_exponential import RejectionExponential


@pytest.mark.parametrize(
    "samples, log_weights", [((5,), (5,)), ((5, 3), (5,)), ((2, 5, 3, 4), (2, 5))]
)
def test_empirical_infer_shapes_matches_instance(samples, log_weights):
    d = dist.Empirical(torch.randn(samples), torch.zeros(log_weights))
    assert dist.Empirical.infer_shapes(samples, log_weights) == (d.batch_shape, d.event_shape)


def test_empirical_infer_shapes_rejects_inconsistent_shapes():
    with pytest.raises(ValueError, match="leftmost dims"):
        dist.Empirical.infer_shapes(samples=(4, 3), log_weights=(3,))
    with pytest.raises(ValueError, match="non-empty"):
        dist.Empirical.infer_shapes(samples=(4, 3), log_weights=())


def test_rejector_infer_shapes():
    d = dist.Rejector(
        dist.Exponential(torch.ones(3)), lambda x: -2 * x, torch.full((3,), math.log(1 / 3))
    )
    shapes = dist.Rejector.infer_shapes(
        log_scale=(3,), batch_shape=d.batch_shape, event_shape=d.event_shape
    )
    assert shapes == (torch.Size([3]), torch.Size([]))
    with pytest.raises(ValueError, match="batch_shape=... and event_shape="):
        dist.Rejector.infer_shapes(propose=(), log_prob_accept=(), log_scale=(3,))
    # a rejection-sampled family infers its shapes from its own parameters
    r = RejectionExponential(torch.ones(4, 1), torch.full((3,), 0.5))
    assert RejectionExponential.infer_shapes(rate=(4, 1), factor=(3,)) == (r.batch_shape, ())


def test_unit_grouped_normal_normal_and_polya_gamma_infer_shapes():
    u = dist.Unit(torch.zeros(2, 3))
    assert dist.Unit.infer_shapes(log_factor=(2, 3)) == (u.batch_shape, u.event_shape)
    g = dist.GroupedNormalNormal(
        torch.zeros(5, 2), torch.ones(2), torch.ones(1, 4), torch.tensor([0, 1, 1, 0])
    )
    shapes = dist.GroupedNormalNormal.infer_shapes((5, 2), (2,), (1, 4), (4,))
    assert shapes == (g.batch_shape, g.event_shape) == ((5,), (4,))
    with pytest.raises(ValueError, match="1-dimensional"):
        dist.GroupedNormalNormal.infer_shapes((2,), (2,), (4,), (2, 2))
    p = dist.TruncatedPolyaGamma(torch.ones(3))
    assert dist.TruncatedPolyaGamma.infer_shapes(prototype=(3,)) == (p.batch_shape, p.event_shape)


def test_delta_does_not_advertise_enumeration():
    # as in Pyro: enumeration strategies leave a Delta site alone (it has one value anyway)
    d = dist.Delta(torch.tensor([1.0, 2.0]))
    assert d.has_enumerate_support is False
    assert torch.equal(d.enumerate_support(), torch.tensor([[1.0, 2.0]]))
