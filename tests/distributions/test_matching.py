"""OneOneMatching and OneTwoMatching: the exact partition function against brute-force
enumeration of matchings, the Bethe approximation, exact sampling (frequencies against the
enumerated probabilities with binomial standard errors), the mode, shapes and pickling."""

import io
import itertools
import math
import pickle

import pytest
import torch

import ember.distributions as dist

D = torch.float64


def brute_force_matchings(num_destins, capacity):
    """Every assignment of capacity * N sources with each destination used capacity times."""
    sources = capacity * num_destins
    found = [
        v
        for v in itertools.product(range(num_destins), repeat=sources)
        if all(v.count(j) == capacity for j in range(num_destins))
    ]
    return torch.tensor(found)


def make(cls, n, seed=0, scale=2.0, **kw):
    g = torch.Generator().manual_seed(seed)
    rows = n * (1 if cls is dist.OneOneMatching else 2)
    return cls(torch.randn(rows, n, generator=g, dtype=D) * scale, **kw)


CASES = [(dist.OneOneMatching, n) for n in (1, 2, 3, 4, 5)] + [
    (dist.OneTwoMatching, n) for n in (1, 2, 3, 4)
]
IDS = [f"{c.__name__}-{n}" for c, n in CASES]


@pytest.mark.parametrize("cls, n", CASES, ids=IDS)
def test_enumerate_support_is_every_matching(cls, n):
    d = make(cls, n)
    values = d.enumerate_support()
    expected = brute_force_matchings(n, d.capacity)
    assert sorted(map(tuple, values.tolist())) == sorted(map(tuple, expected.tolist()))
    assert bool(d.support.check(values))


@pytest.mark.parametrize("cls, n", CASES, ids=IDS)
def test_exact_log_partition_and_normalization(cls, n):
    d = make(cls, n)
    values = brute_force_matchings(n, d.capacity)
    sources = torch.arange(values.shape[-1])
    expected = d.logits[sources, values].sum(-1).logsumexp(0)
    assert float(d.log_partition_function) == pytest.approx(float(expected), abs=1e-10)
    assert float(d.log_prob(values).logsumexp(0)) == pytest.approx(0.0, abs=1e-10)


def test_log_partition_of_all_zero_logits_counts_matchings():
    # exp(log Z) is the number of matchings: N! and (2N)! / 2^N
    for n in range(1, 7):
        z1 = dist.OneOneMatching(torch.zeros(n, n, dtype=D)).log_partition_function
        assert float(z1) == pytest.approx(math.lgamma(n + 1), abs=1e-10)
    for n in range(1, 6):
        z2 = dist.OneTwoMatching(torch.zeros(2 * n, n, dtype=D)).log_partition_function
        assert float(z2) == pytest.approx(math.lgamma(2 * n + 1) - n * math.log(2), abs=1e-10)


def test_exact_gradient_is_the_edge_marginals():
    d = make(dist.OneTwoMatching, 3)
    logits = d.logits.clone().requires_grad_()
    (grad,) = torch.autograd.grad(dist.OneTwoMatching(logits).log_partition_function, [logits])
    values = d.enumerate_support()
    probs = d.log_prob(values).exp()
    marg = torch.zeros_like(grad)
    for v, p in zip(values, probs):
        marg[torch.arange(6), v] += p
    assert torch.allclose(grad, marg, atol=1e-12)


@pytest.mark.parametrize("cls, n", [(dist.OneOneMatching, 4), (dist.OneTwoMatching, 3)])
def test_bethe_approximation_is_close_and_differentiable(cls, n):
    exact = make(cls, n, scale=1.0)
    approx = make(cls, n, scale=1.0, bp_iters=100)
    # capacity 1: minus the Bethe free energy at any doubly stochastic beliefs is at most
    # the Bethe permanent, itself at most the permanent (Gurvits) and at least
    # sqrt(2)^-n times it (Anari and Rezaei), a bound the Sinkhorn beliefs meet here too;
    # capacity 2 (a heuristic pair entropy) is checked against the same window
    gap = float(exact.log_partition_function - approx.log_partition_function)
    assert 0 <= gap < n * math.log(2) / 2
    logits = approx.logits.clone().requires_grad_()
    (grad,) = torch.autograd.grad(cls(logits, bp_iters=100).log_partition_function, [logits])
    # each source's row of the gradient is its edge beliefs, which sum to 1
    assert torch.allclose(grad.sum(-1), torch.ones(grad.shape[0], dtype=D), atol=1e-4)


@pytest.mark.parametrize("cls, n", [(dist.OneOneMatching, 4), (dist.OneTwoMatching, 3)])
@pytest.mark.parametrize("bp_iters", [None, 20])
def test_sample_frequencies_match_enumerated_probabilities(cls, n, bp_iters):
    torch.manual_seed(0)
    d = make(cls, n, scale=1.0, bp_iters=bp_iters)
    num_samples = 20000
    x = d.sample((num_samples,))
    assert x.shape == (num_samples, d.num_sources) and bool(d.support.check(x))
    values = d.enumerate_support()
    exact = make(cls, n, scale=1.0)
    probs = exact.log_prob(values).exp()
    counts = (x.unsqueeze(1) == values).all(-1).double().mean(0)
    se = (probs * (1 - probs) / num_samples).sqrt()
    assert ((counts - probs).abs() < 4.5 * se + 1e-9).all()


@pytest.mark.parametrize("cls, n", [(dist.OneOneMatching, 5), (dist.OneTwoMatching, 4)])
def test_mode_is_the_most_probable_matching(cls, n):
    for seed in range(3):
        d = make(cls, n, seed=seed, scale=10.0)
        values = d.enumerate_support()
        best = values[d.log_prob(values).argmax()]
        assert torch.equal(d.mode(), best)


def test_large_problems_use_bethe_and_mode():
    d = make(dist.OneTwoMatching, 30, bp_iters=10)
    assert torch.isfinite(d.log_partition_function)
    assert bool(d.support.check(d.mode()))
    with pytest.raises(ValueError, match="bp_iters"):
        _ = make(dist.OneTwoMatching, 30).log_partition_function
    with pytest.raises(NotImplementedError, match="states"):
        d.sample()


def test_shapes_expand_to_event_mask():
    d = make(dist.OneOneMatching, 3)
    assert d.batch_shape == () and d.event_shape == (3,)
    assert d.sample((4, 2)).shape == (4, 2, 3)
    assert dist.OneOneMatching.infer_shapes(logits=(3, 3)) == ((), (3,))
    e = d.expand((2,))
    x = e.sample((5,))
    assert x.shape == (5, 2, 3)
    assert torch.allclose(e.log_prob(x), d.log_prob(x))
    assert e.to_event(1).log_prob(x).shape == (5,)
    assert (e.mask(torch.tensor([False, True])).log_prob(x)[:, 0] == 0).all()


def test_validation():
    with pytest.raises(ValueError, match=r"\(2 \* N, N\)"):
        dist.OneTwoMatching(torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"\(N, N\)"):
        dist.OneOneMatching(torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match="bp_iters"):
        dist.OneOneMatching(torch.zeros(2, 2), bp_iters=0)
    d = dist.OneOneMatching(torch.zeros(3, 3), validate_args=True)
    with pytest.raises(ValueError):
        d.log_prob(torch.tensor([0, 0, 1]))  # destination 0 used twice
    assert not bool(d.support.check(torch.tensor([[0, 1, 2], [0, 0, 1]])))
    assert bool(d.support.check(torch.tensor([[0, 1, 2], [2, 0, 1]])))


def test_pickle_roundtrip():
    for d in [make(dist.OneOneMatching, 3), make(dist.OneTwoMatching, 2, bp_iters=5)]:
        buf = io.BytesIO()
        torch.save(d, buf, pickle_protocol=pickle.HIGHEST_PROTOCOL)
        buf.seek(0)
        back = torch.load(buf, weights_only=False)
        assert type(back) is type(d) and back.bp_iters == d.bp_iters
        v = d.enumerate_support()
        assert torch.allclose(back.log_prob(v), d.log_prob(v))


def test_exact_gradient_finite_with_forbidden_edges():
    # -inf logits forbid edges; states no matching reaches must not poison the gradient
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 3, generator=g, dtype=D)
    logits[0, 1:] = -math.inf  # source 0 must go to destination 0
    logits[1, :2] = -math.inf  # source 1 must go to destination 2
    logits.requires_grad_()

    def log_z(x):
        return dist.OneTwoMatching(x).log_partition_function

    (grad,) = torch.autograd.grad(log_z(logits), [logits])
    assert torch.isfinite(grad).all()
    assert grad[0, 0] == pytest.approx(1.0) and grad[1, 2] == pytest.approx(1.0)
    finite = torch.isfinite(logits)
    h = 1e-6
    for i, j in finite.nonzero().tolist():
        bumped = [logits.detach().clone() for _ in range(2)]
        bumped[0][i, j] += h
        bumped[1][i, j] -= h
        fd = (log_z(bumped[0]) - log_z(bumped[1])) / (2 * h)
        assert float(grad[i, j]) == pytest.approx(float(fd), abs=1e-7)
