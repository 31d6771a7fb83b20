"""Search gives the exact posterior of small discrete programs (checked by brute force)."""

import itertools

import pytest
import torch

import ember
import ember.distributions as dist
from ember.infer import EmpiricalMarginal, Search

PRIOR_A = torch.tensor([0.2, 0.5, 0.3])


def model():
    a = ember.sample("a", dist.Categorical(PRIOR_A))
    b = ember.sample("b", dist.Bernoulli(torch.tensor([0.1, 0.6, 0.9])[a]))
    if b.item() == 1:  # control flow: the program's shape depends on b
        c = ember.sample("c", dist.Bernoulli(0.3))
    else:
        c = torch.tensor(0.0)
    ember.sample("obs", dist.Normal(a.float() + b + c, 1.0), obs=torch.tensor(2.2))
    return a.float() * 10 + b * 2 + c


def brute_force():
    """Posterior probability of each return value, by summing over all assignments."""
    post = {}
    for a, b, c in itertools.product(range(3), (0.0, 1.0), (0.0, 1.0)):
        if b == 0.0 and c == 1.0:
            continue
        log_p = torch.log(PRIOR_A[a]) + dist.Bernoulli(torch.tensor([0.1, 0.6, 0.9])[a]).log_prob(
            torch.tensor(b)
        )
        if b == 1.0:
            log_p = log_p + dist.Bernoulli(0.3).log_prob(torch.tensor(c))
        log_p = log_p + dist.Normal(a + b + c, 1.0).log_prob(torch.tensor(2.2))
        post[a * 10 + b * 2 + c] = log_p.exp().item()
    total = sum(post.values())
    return {k: v / total for k, v in post.items()}


def test_search_exact_posterior():
    posterior = Search(model).run()
    assert len(posterior.exec_traces) == 9  # every execution path once
    marginal = EmpiricalMarginal(posterior)
    expected = brute_force()
    got = {
        v: marginal.log_prob(torch.tensor(v)).exp().item()
        for v in marginal.enumerate_support().tolist()
    }
    assert set(got) == set(expected)
    for k in expected:
        assert got[k] == pytest.approx(expected[k], abs=1e-5)
    mean = sum(k * v for k, v in expected.items())
    assert marginal.mean.item() == pytest.approx(mean, abs=1e-4)


def test_search_site_marginal():
    posterior = Search(model).run()
    marginal = EmpiricalMarginal(posterior, "a")
    expected = brute_force()
    p_a = [sum(v for k, v in expected.items() if int(k // 10) == a) for a in range(3)]
    for a in range(3):
        assert marginal.log_prob(torch.tensor(a)).exp().item() == pytest.approx(p_a[a], abs=1e-5)


def test_search_bad_input():
    with pytest.raises(TypeError, match="callable"):
        Search(None)
    with pytest.raises(ValueError, match="max_tries"):
        Search(model, max_tries=0)


def test_search_max_tries_bounds_the_work_per_trace():
    # depth-first: completing one trace of a program with 3 latent sites takes
    # 4 tries (one per site reached, one to finish), so 3 is too few
    def three():
        for i in range(3):
            ember.sample(f"s_{i}", dist.Bernoulli(0.5))

    assert len(Search(three, max_tries=4).run().exec_traces) == 8
    with pytest.raises(ValueError, match="max tries"):
        Search(three, max_tries=3).run()
