"""Kingman's coalescent: CoalescentTimes, CoalescentTimesWithRate and
CoalescentRateLikelihood against an independent event-by-event computation, closed forms,
quadrature (normalization and moments), simulation, shapes, gradients and pickling."""

import io
import math
import pickle

import numpy as np
import pytest
import scipy.integrate
import torch

import ember.distributions as dist
from ember.distributions.coalescent import (
    CoalescentTimesConstraint,
    bio_phylo_to_times,
    sample_coalescent_times,
)
from ember.distributions.testing.gof import auto_goodness_of_fit

D = torch.float64


def reference_log_density(leaves, coal, rate_fn):
    """Walk the events from latest to earliest: log prod r(c) C(k, 2) - integral r C(k, 2)."""
    events = sorted([(t, +1) for t in leaves] + [(t, -1) for t in coal], key=lambda e: -e[0])
    k, total = 0, 0.0
    for (t, sign), (t_next, _) in zip(events, events[1:] + [(None, 0)]):
        if sign < 0:
            total += math.log(rate_fn(t) * k * (k - 1) / 2)
        k += sign
        if t_next is not None and k >= 2:
            pieces = np.unique(np.clip(np.arange(math.floor(t_next), math.ceil(t) + 1), t_next, t))
            integral = sum(
                rate_fn(0.5 * (a + b)) * (b - a) for a, b in zip(pieces[:-1], pieces[1:])
            )
            total -= integral * k * (k - 1) / 2
    return total


def grid_rate(grid):
    return lambda t: grid[min(max(math.floor(t), 0), len(grid) - 1)]


def test_two_leaves_is_exponential():
    r = 1.7
    d = dist.CoalescentTimes(torch.tensor([0.0, 0.0], dtype=D), r)
    x = torch.tensor([[-0.2], [-1.5]], dtype=D)
    expected = math.log(r) - r * (-x.squeeze(-1))
    assert torch.allclose(d.log_prob(x), expected)


@pytest.mark.parametrize("n", [2, 3, 6])
def test_constant_rate_density_matches_reference(n):
    torch.manual_seed(n)
    leaves = torch.randn(n, dtype=D)
    d = dist.CoalescentTimes(leaves, 0.8)
    x = d.sample((5,))
    for row in x:
        ref = reference_log_density(leaves.tolist(), row.tolist(), lambda t: 0.8)
        assert float(d.log_prob(row)) == pytest.approx(ref, rel=1e-10)


@pytest.mark.slow
def test_three_leaves_normalized_and_moments_by_quadrature_and_simulation():
    leaves = torch.tensor([0.0, -0.3, -1.0], dtype=D)
    d = dist.CoalescentTimes(leaves, 1.5)

    def density(c2, c1):
        return math.exp(float(d.log_prob(torch.tensor([c1, c2], dtype=D))))

    # the support: the later coalescence c2 needs the second leaf (c2 <= -0.3), and the
    # earlier one c1 needs the third leaf (c1 <= -1) unless both came after it
    lo = -30.0  # the mass below is negligible

    def integrate(f):
        late = scipy.integrate.dblquad(f, lo, -1.0, -1.0, -0.3, epsabs=1e-11)[0]
        both = scipy.integrate.dblquad(f, lo, -1.0, lambda c1: c1, -1.0, epsabs=1e-11)[0]
        return late + both

    assert integrate(density) == pytest.approx(1.0, abs=1e-6)
    m1 = integrate(lambda c2, c1: c1 * density(c2, c1))
    m2 = integrate(lambda c2, c1: c2 * density(c2, c1))
    torch.manual_seed(0)
    n = 40000
    x = d.sample((n,))
    assert bool(CoalescentTimesConstraint(leaves).check(x).all())
    se = x.std(0) / math.sqrt(n)
    assert float(x[:, 0].mean()) == pytest.approx(m1, abs=4 * float(se[0]))
    assert float(x[:, 1].mean()) == pytest.approx(m2, abs=4 * float(se[1]))


def test_simultaneous_leaves_match_kingman_waiting_times():
    # all N leaves at 0: the wait with k lineages is Exponential(rate C(k, 2))
    n, r, num = 5, 2.0, 40000
    torch.manual_seed(1)
    x = sample_coalescent_times(torch.zeros(num, n, dtype=D), r)
    expected = -np.cumsum([2 / (r * k * (k - 1)) for k in range(n, 1, -1)])[::-1]
    var = np.cumsum([(2 / (r * k * (k - 1))) ** 2 for k in range(n, 1, -1)])[::-1]
    se = np.sqrt(var / num)
    assert (np.abs(x.mean(0).numpy() - expected) < 4 * se).all()


def test_rate_scales_time():
    torch.manual_seed(2)
    leaves = torch.rand(3, 6, dtype=D) * 4
    rate = torch.tensor([0.5, 1.0, 3.0], dtype=D)
    x = dist.CoalescentTimes(leaves).sample((2,))
    lp1 = dist.CoalescentTimes(leaves).log_prob(x)
    lp2 = dist.CoalescentTimes(leaves / rate[:, None], rate).log_prob(x / rate[:, None])
    assert torch.allclose(lp2, lp1 + 5 * rate.log())
    # the sampler honours the rate: mean time to the root scales as 1 / rate
    torch.manual_seed(3)
    t_fast = dist.CoalescentTimes(torch.zeros(2, dtype=D), 4.0).sample((20000,))
    assert float(t_fast.mean()) == pytest.approx(-0.25, abs=4 * 0.25 / math.sqrt(20000))


def test_with_rate_matches_reference_and_constant_case():
    torch.manual_seed(4)
    leaves = torch.rand(7, dtype=D) * 6
    grid = torch.rand(6, dtype=D) + 0.3
    d = dist.CoalescentTimesWithRate(leaves, grid)
    x = dist.CoalescentTimes(leaves).sample((4,))
    for row in x:
        ref = reference_log_density(leaves.tolist(), row.tolist(), grid_rate(grid.tolist()))
        assert float(d.log_prob(row)) == pytest.approx(ref, rel=1e-10)
    const = dist.CoalescentTimesWithRate(leaves, torch.full((6,), 1.3, dtype=D))
    assert torch.allclose(const.log_prob(x), dist.CoalescentTimes(leaves, 1.3).log_prob(x))


@pytest.mark.parametrize("batch_shape", [(), (3,), (2, 2)], ids=str)
def test_rate_likelihood_splits_the_log_density_by_cell(batch_shape):
    torch.manual_seed(5)
    duration = 5
    leaves = torch.randn(batch_shape + (6,), dtype=D) + 3
    coal = dist.CoalescentTimes(leaves).sample()
    grid = torch.rand(batch_shape + (duration,), dtype=D) + 0.5
    expected = dist.CoalescentTimesWithRate(leaves, grid).log_prob(coal)
    lik = dist.CoalescentRateLikelihood(leaves, coal, duration)
    assert lik(grid).shape == batch_shape + (duration,)
    assert torch.allclose(lik(grid).sum(-1), expected)
    stepwise = sum(lik(grid[..., t], t) for t in range(duration))
    assert torch.allclose(stepwise, expected)


def test_gradients_in_rates_and_times_match_finite_differences():
    torch.manual_seed(6)
    leaves = torch.rand(5, dtype=D) * 4
    coal = dist.CoalescentTimes(leaves).sample()
    grid = (torch.rand(4, dtype=D) + 0.5).requires_grad_()
    coal_g = coal.clone().requires_grad_()
    lp = dist.CoalescentTimesWithRate(leaves, grid).log_prob(coal_g)
    g_grid, g_coal = torch.autograd.grad(lp, [grid, coal_g])
    h = 1e-6
    for i in range(4):
        e = torch.zeros(4, dtype=D)
        e[i] = h
        up = dist.CoalescentTimesWithRate(leaves, grid.detach() + e).log_prob(coal)
        down = dist.CoalescentTimesWithRate(leaves, grid.detach() - e).log_prob(coal)
        assert float(g_grid[i]) == pytest.approx(float((up - down) / (2 * h)), abs=1e-6)
    for i in range(4):
        e = torch.zeros(4, dtype=D)
        e[i] = h
        d = dist.CoalescentTimesWithRate(leaves, grid.detach())
        fd = (d.log_prob(coal + e) - d.log_prob(coal - e)) / (2 * h)
        assert float(g_coal[i]) == pytest.approx(float(fd), abs=1e-5)


def test_shapes_expand_to_event_mask_and_infer_shapes():
    leaves = torch.rand(3, 4, dtype=D) * 3
    d = dist.CoalescentTimes(leaves, torch.ones(2, 1, dtype=D))
    assert d.batch_shape == (2, 3) and d.event_shape == (3,)
    assert dist.CoalescentTimes.infer_shapes(leaf_times=(3, 4), rate=(2, 1)) == ((2, 3), (3,))
    x = d.sample((5,))
    assert x.shape == (5, 2, 3, 3)
    assert d.log_prob(x).shape == (5, 2, 3)
    e = d.expand((4, 2, 3))
    assert e.sample().shape == (4, 2, 3, 3)
    assert torch.allclose(e.log_prob(x[:, None]), d.log_prob(x)[:, None].expand(5, 4, 2, 3))
    assert d.to_event(2).log_prob(x).shape == (5,)
    mask = torch.tensor([True, False, True])
    assert (d.mask(mask).log_prob(x)[..., 1] == 0).all()
    w = dist.CoalescentTimesWithRate(leaves, torch.ones(2, 1, 6, dtype=D))
    assert w.batch_shape == (2, 3) and w.log_prob(x).shape == (5, 2, 3)
    assert w.expand((4, 2, 3)).log_prob(x[:, None]).shape == (5, 4, 2, 3)
    assert dist.CoalescentTimesWithRate.infer_shapes((3, 4), (2, 1, 6)) == ((2, 3), (3,))


def test_validation():
    leaves = torch.tensor([0.0, 0.0, -1.0], dtype=D)
    d = dist.CoalescentTimes(leaves, validate_args=True)
    with pytest.raises(ValueError):
        d.log_prob(torch.tensor([-0.5, 0.5], dtype=D))  # a coalescence after every leaf
    with pytest.raises(ValueError):
        d.log_prob(torch.tensor([-0.5, -2.0], dtype=D))  # not sorted
    assert bool(d.support.check(torch.tensor([-2.0, -0.5], dtype=D)))
    with pytest.raises(ValueError, match="rate"):
        dist.CoalescentTimes(leaves, -1.0, validate_args=True)
    with pytest.raises(ValueError, match="at least 2 leaves"):
        dist.CoalescentTimes(torch.zeros(1))
    with pytest.raises(ValueError, match="invalid"):
        dist.CoalescentRateLikelihood(leaves, torch.tensor([0.5, -2.0], dtype=D), 3)
    with pytest.raises(ValueError, match="duration"):
        dist.CoalescentRateLikelihood(leaves, torch.tensor([-2.0, -0.5], dtype=D), 0)


class Clade:
    def __init__(self, branch_length, *children):
        self.branch_length = branch_length
        self.children = list(children)

    def __iter__(self):
        return iter(self.children)


def test_bio_phylo_to_times_on_a_small_tree():
    # root at 0.5 with a multifurcation: 3 children, one of them a cherry
    tree = Clade(0.5, Clade(1.0), Clade(2.0), Clade(0.5, Clade(0.25), Clade(1.0)))
    leaves, coal = bio_phylo_to_times(tree)
    assert sorted(leaves.tolist()) == [1.25, 1.5, 2.0, 2.5]
    assert sorted(coal.tolist()) == [0.5, 0.5, 1.0]


def test_pickle_roundtrip():
    leaves = torch.tensor([0.0, -0.5, 1.0], dtype=D)
    x = torch.tensor([-1.0, -0.2], dtype=D)
    for d in [
        dist.CoalescentTimes(leaves, 2.0),
        dist.CoalescentTimesWithRate(leaves, torch.ones(3, dtype=D)),
    ]:
        buf = io.BytesIO()
        torch.save(d, buf, pickle_protocol=pickle.HIGHEST_PROTOCOL)
        buf.seek(0)
        back = torch.load(buf, weights_only=False)
        assert type(back) is type(d)
        assert torch.equal(back.log_prob(x), d.log_prob(x))


@pytest.mark.parametrize("leaves", [[0.0, 0.0], [0.0, -0.3, -1.0]], ids=["2", "3"])
def test_samples_fit_the_density(leaves):
    torch.manual_seed(0)
    d = dist.CoalescentTimes(torch.tensor(leaves, dtype=D), 1.5)
    x = d.sample((4000,))
    assert auto_goodness_of_fit(x, d.log_prob(x).exp()) > 1e-3
