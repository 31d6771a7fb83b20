"""MaskedMixture: selection by mask in sample/log_prob, shapes, broadcasting, and the
change-point example marginalized by enumeration (when ember's TraceEnum_ELBO exists)."""

import importlib
import math

import pytest
import torch
from scipy import stats

import ember.distributions as dist
from ember.distributions import MaskedMixture


def test_log_prob_selects_component_by_mask():
    mask = torch.tensor([True, False, True, False])
    c0 = dist.Normal(torch.zeros(4), 1.0)
    c1 = dist.Normal(torch.full((4,), 3.0), 2.0)
    d = MaskedMixture(mask, c0, c1)
    x = torch.tensor([0.5, -1.0, 2.0, 4.0], dtype=torch.float64)
    expected = torch.where(
        mask,
        torch.as_tensor(stats.norm(3.0, 2.0).logpdf(x.numpy())),
        torch.as_tensor(stats.norm(0.0, 1.0).logpdf(x.numpy())),
    )
    assert torch.allclose(d.log_prob(x.float()).double(), expected, atol=1e-6)


def test_sample_selects_component_by_mask_with_broadcasting():
    torch.manual_seed(0)
    mask = torch.tensor([[True], [False], [True]])  # (3, 1)
    c0 = dist.Normal(torch.full((4,), -100.0), 1.0)  # batch (4,)
    c1 = dist.Normal(100.0, 1.0)  # batch ()
    d = MaskedMixture(mask, c0, c1)
    assert d.batch_shape == (3, 4) and d.event_shape == ()
    x = d.sample((5,))
    assert x.shape == (5, 3, 4)
    assert torch.equal(x > 0, mask.expand(5, 3, 4))
    assert d.log_prob(x).shape == (5, 3, 4)
    assert torch.equal(d.mean, torch.where(mask, 100.0, -100.0).expand(3, 4))
    assert torch.equal(d.variance, torch.ones(3, 4))


def test_event_dims_and_rsample_gradients():
    torch.manual_seed(0)
    loc0 = torch.zeros(2, 3, requires_grad=True)
    loc1 = torch.ones(2, 3, requires_grad=True)
    mask = torch.tensor([True, False])
    c0 = dist.Normal(loc0, 1.0).to_event(1)
    c1 = dist.Normal(loc1, 1.0).to_event(1)
    d = MaskedMixture(mask, c0, c1)
    assert d.has_rsample and d.batch_shape == (2,) and d.event_shape == (3,)
    x = d.rsample((4,))
    assert x.shape == (4, 2, 3)
    x.sum().backward()
    # each row's gradient goes only to the selected component's loc
    assert torch.equal(loc1.grad, torch.tensor([[4.0] * 3, [0.0] * 3]))
    assert torch.equal(loc0.grad, torch.tensor([[0.0] * 3, [4.0] * 3]))
    lp = d.log_prob(torch.zeros(2, 3))
    assert torch.allclose(
        lp, torch.stack([c1.log_prob(torch.zeros(2, 3))[0], c0.log_prob(torch.zeros(2, 3))[1]])
    )


def test_has_rsample_requires_both_components():
    d = MaskedMixture(torch.tensor([True]), dist.Normal(0.0, 1.0), dist.Poisson(torch.ones(1)))
    assert not d.has_rsample
    assert d.sample((2,)).shape == (2, 1)


def test_expand():
    d = MaskedMixture(torch.tensor([True, False]), dist.Normal(0.0, 1.0), dist.Normal(5.0, 1.0))
    e = d.expand((3, 2))
    assert isinstance(e, MaskedMixture) and e.batch_shape == (3, 2)
    assert e.log_prob(torch.zeros(3, 2)).shape == (3, 2)


def test_float_mask_is_accepted_and_bad_input_raises():
    d = MaskedMixture(torch.tensor([1.0, 0.0]), dist.Normal(0.0, 1.0), dist.Normal(5.0, 1.0))
    assert d.mask.dtype == torch.bool
    with pytest.raises(ValueError, match="mask"):
        MaskedMixture(torch.tensor([2.0, 0.0]), dist.Normal(0.0, 1.0), dist.Normal(5.0, 1.0))
    with pytest.raises(ValueError, match="event_shape"):
        MaskedMixture(
            torch.tensor([True]),
            dist.Normal(0.0, 1.0),
            dist.Normal(torch.zeros(2), 1.0).to_event(1),
        )
    with pytest.raises(ValueError, match="mask"):
        MaskedMixture(
            torch.ones(3, dtype=torch.bool), dist.Normal(torch.zeros(2), 1.0), dist.Normal(0.0, 1.0)
        )
    with pytest.raises(TypeError, match="component1"):
        MaskedMixture(torch.tensor([True]), dist.Normal(0.0, 1.0), 3.0)


def _change_point_data():
    torch.manual_seed(0)
    return torch.cat([torch.randn(4) - 1.0, torch.randn(3) + 2.0])


def test_enumerated_masks_broadcast_like_the_change_point_example():
    # what enumeration does to the example: change_point gets a dim on the left
    data = _change_point_data()
    N = len(data)
    dist1, dist2 = dist.Normal(-1.0, 1.0), dist.Normal(2.0, 1.0)
    change_point = torch.arange(N + 1).reshape(-1, 1)  # (N + 1, 1) enumerated values
    mask = torch.arange(N, dtype=torch.long) >= change_point
    d = MaskedMixture(mask, dist1, dist2).expand((N + 1, N))
    log_lik = d.log_prob(data).sum(-1)  # (N + 1,)
    for c in range(N + 1):
        expected = sum(
            stats.norm(2.0 if i >= c else -1.0, 1.0).logpdf(float(data[i])) for i in range(N)
        )
        assert math.isclose(log_lik[c].item(), expected, rel_tol=1e-5)


def _trace_enum_elbo():
    try:
        infer = importlib.import_module("ember.infer")
    except ImportError:
        return None
    return getattr(infer, "TraceEnum_ELBO", None)


@pytest.mark.skipif(_trace_enum_elbo() is None, reason="ember.infer.TraceEnum_ELBO not built yet")
def test_change_point_example_with_enumeration():
    import ember as pyro

    TraceEnum_ELBO = _trace_enum_elbo()
    data = _change_point_data()
    dist1, dist2 = dist.Normal(-1.0, 1.0), dist.Normal(2.0, 1.0)

    def model():
        change_point = pyro.sample(
            "change_point",
            dist.Categorical(torch.ones(len(data) + 1)),
            infer={"enumerate": "parallel"},
        )
        mask = torch.arange(len(data), dtype=torch.long) >= change_point
        with pyro.plate("data", len(data)):
            pyro.sample("obs", MaskedMixture(mask, dist1, dist2), obs=data)

    def guide():
        pass

    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(model, guide)
    N = len(data)
    log_liks = torch.tensor(
        [
            sum(stats.norm(2.0 if i >= c else -1.0, 1.0).logpdf(float(data[i])) for i in range(N))
            for c in range(N + 1)
        ]
    )
    expected = -(torch.logsumexp(log_liks, 0) - math.log(N + 1))
    assert math.isclose(loss, expected.item(), rel_tol=1e-4)
