"""MaskedDistribution: zeroed log-densities, skipped work, shapes and errors."""

import pytest
import torch

import ember.distributions as dist
from ember.distributions import MaskedDistribution


def test_log_prob_is_zero_where_masked():
    torch.manual_seed(0)
    d = dist.Normal(torch.randn(4), 1.0)
    mask = torch.tensor([True, False, True, False])
    x = d.sample((3,))
    lp = d.mask(mask).log_prob(x)
    assert torch.equal(lp[:, ~mask], torch.zeros(3, 2))
    assert torch.equal(lp[:, mask], d.log_prob(x)[:, mask])


def test_masked_entries_cannot_poison_sums():
    d = dist.Normal(torch.zeros(2), 1.0).mask(torch.tensor([True, False]))
    lp = d.log_prob(torch.tensor([0.0, float("inf")]))
    assert torch.isfinite(lp).all() and lp[1] == 0


def test_python_false_skips_base_log_prob():
    class Exploding(dist.Normal):
        def log_prob(self, value):
            raise AssertionError("base log_prob must not run")

    d = Exploding(torch.zeros(3), 1.0).mask(False)
    lp = d.log_prob(torch.zeros(5, 3))
    assert torch.equal(lp, torch.zeros(5, 3))
    parts = d.score_parts(torch.zeros(3))
    # a reparameterized base: no score-function part (the number 0, as in Pyro)
    assert torch.equal(parts.log_prob, torch.zeros(3)) and parts.score_function == 0
    assert torch.equal(parts.entropy_term, torch.zeros(3))


def test_python_true_is_the_base():
    d = dist.Normal(torch.zeros(3), 1.0)
    x = torch.randn(3)
    assert torch.equal(d.mask(True).log_prob(x), d.log_prob(x))


def test_mask_broadcasts_batch_shape_up():
    d = dist.Normal(torch.zeros(3), 1.0).mask(torch.tensor([[True], [False]]))
    assert d.batch_shape == (2, 3)
    assert d.sample().shape == (2, 3)
    lp = d.log_prob(torch.zeros(3))
    assert lp.shape == (2, 3) and torch.equal(lp[1], torch.zeros(3))


def test_float_mask_of_zeros_and_ones():
    d = dist.Normal(torch.zeros(2), 1.0)
    lp = d.mask(torch.tensor([1.0, 0.0])).log_prob(torch.zeros(2))
    assert lp[1] == 0 and lp[0] != 0


def test_bad_masks_raise():
    d = dist.Normal(torch.zeros(2, 3), 1.0)
    with pytest.raises(ValueError, match=r"mask of shape \(4,\).*batch_shape \(2, 3\)"):
        d.mask(torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="boolean"):
        d.mask(torch.full((3,), 0.5))
    with pytest.raises(TypeError, match="bool"):
        d.mask([True, False, True])


def test_score_parts_are_masked():
    mask = torch.tensor([True, False])
    x = torch.tensor([0.0, 1.0])
    cont = dist.Normal(torch.zeros(2), 1.0).mask(mask).score_parts(x)
    assert cont.score_function == 0 and cont.entropy_term[1] == 0 and cont.log_prob[1] == 0
    disc = dist.Bernoulli(torch.full((2,), 0.3)).mask(mask).score_parts(x)
    assert disc.entropy_term == 0 and disc.score_function[1] == 0
    assert torch.allclose(disc.score_function[0], torch.tensor(0.7).log())


def test_sampling_enumeration_and_moments_pass_through():
    torch.manual_seed(1)
    base = dist.Categorical(torch.ones(2, 3))
    d = base.mask(torch.tensor([True, False]))
    assert d.has_enumerate_support and not d.has_rsample
    assert torch.equal(d.enumerate_support(), base.enumerate_support())
    assert d.sample((4,)).shape == (4, 2)
    assert repr(d.support) == repr(base.support)
    n = dist.Normal(torch.ones(2), 2.0).mask(torch.tensor([True, False]))
    assert n.has_rsample and n.rsample().shape == (2,)
    assert torch.equal(n.mean, torch.ones(2)) and torch.equal(n.variance, torch.full((2,), 4.0))


def test_mask_of_mask_and_expand():
    d = dist.Normal(torch.zeros(3), 1.0)
    m1, m2 = torch.tensor([True, True, False]), torch.tensor([False, True, True])
    mm = d.mask(m1).mask(m2)
    assert torch.equal(mm.log_prob(torch.zeros(3)) != 0, m1 & m2)
    e = d.mask(m1).expand((2, 3))
    assert isinstance(e, MaskedDistribution) and e.batch_shape == (2, 3)
    assert torch.equal(e.log_prob(torch.zeros(3)) != 0, m1.expand(2, 3))
    assert d.mask(m1).expand((3,)).batch_shape == (3,)


def test_masked_to_event_sums_only_unmasked():
    d = dist.Normal(torch.zeros(2, 3), 1.0)
    mask = torch.tensor([[True, False, True], [False, False, True]])
    x = torch.randn(2, 3)
    lp = d.mask(mask).to_event(2).log_prob(x)
    assert torch.allclose(lp, d.log_prob(x)[mask].sum())


def test_repr_mentions_mask():
    assert "mask=tensor(3,)" in repr(dist.Normal(torch.zeros(3), 1.0).mask(torch.ones(3) > 0))


def test_kl_of_two_masked_with_a_false_mask_is_the_number_zero():
    p = dist.Normal(torch.zeros(2, 2), 1.0)
    q = dist.Normal(torch.ones(2, 2), 2.0)
    for p_mask, q_mask in [(False, True), (True, False), (False, torch.ones(2, 2).bool())]:
        kl = dist.kl_divergence(p.mask(p_mask), q.mask(q_mask))
        assert isinstance(kl, float) and kl == 0.0
    both = torch.tensor([[True, False], [True, True]])
    kl = dist.kl_divergence(p.mask(both), q.mask(True))
    assert torch.equal(kl, torch.where(both, dist.kl_divergence(p, q), 0.0))
