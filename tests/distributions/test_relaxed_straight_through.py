"""Straight-through relaxations: quantized values forward, relaxed gradients backward."""

import math

import torch

import ember.distributions as dist
from ember.distributions import (
    RelaxedBernoulliStraightThrough,
    RelaxedOneHotCategoricalStraightThrough,
)


def test_one_hot_samples_and_log_prob_of_relaxed_value():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, requires_grad=True)
    d = RelaxedOneHotCategoricalStraightThrough(torch.tensor(0.7), logits=logits)
    x = d.rsample((5,))
    assert x.shape == (5, 3, 4)
    assert torch.equal(x.sum(-1), torch.ones(5, 3))
    assert ((x == 0) | (x == 1)).all()
    soft = x._unquantize
    assert torch.equal(x.argmax(-1), soft.argmax(-1))
    relaxed = dist.RelaxedOneHotCategorical(torch.tensor(0.7), logits=logits)
    assert torch.allclose(d.log_prob(x), relaxed.log_prob(soft))
    assert torch.isfinite(d.log_prob(x)).all()


def test_one_hot_gradients_equal_the_relaxed_ones():
    torch.manual_seed(1)
    logits = torch.randn(4, requires_grad=True)
    w = torch.tensor([1.0, -2.0, 3.0, 0.5])
    d = RelaxedOneHotCategoricalStraightThrough(torch.tensor(0.5), logits=logits)
    x = d.rsample((10,))
    (g_hard,) = torch.autograd.grad((x * w).sum(), logits, retain_graph=True)
    (g_soft,) = torch.autograd.grad((x._unquantize * w).sum(), logits)
    assert g_hard.abs().sum() > 0
    assert torch.allclose(g_hard, g_soft)


def test_one_hot_category_frequencies_are_the_categorical_probs():
    # argmax of a Gumbel-softmax sample is Categorical(probs) at any temperature
    torch.manual_seed(2)
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    d = RelaxedOneHotCategoricalStraightThrough(torch.tensor(2.0), probs=probs)
    n = 20000
    freq = d.sample((n,)).double().mean(0)
    se = (probs.double() * (1 - probs.double()) / n).sqrt()
    assert ((freq - probs.double()).abs() < 4.5 * se).all()


def test_bernoulli_binary_samples_and_gradients():
    torch.manual_seed(3)
    probs = torch.tensor([0.2, 0.5, 0.9], requires_grad=True)
    d = RelaxedBernoulliStraightThrough(torch.tensor(0.3), probs=probs)
    x = d.rsample((7,))
    assert x.shape == (7, 3)
    assert ((x == 0) | (x == 1)).all()
    soft = x._unquantize
    assert torch.equal(x, (soft > 0.5).to(x.dtype))
    relaxed = dist.RelaxedBernoulli(torch.tensor(0.3), probs=probs)
    assert torch.allclose(d.log_prob(x), relaxed.log_prob(soft))
    w = torch.arange(1.0, 4.0)
    (g_hard,) = torch.autograd.grad((x * w).sum(), probs, retain_graph=True)
    (g_soft,) = torch.autograd.grad((soft * w).sum(), probs)
    assert g_hard.abs().sum() > 0
    assert torch.allclose(g_hard, g_soft)


def test_bernoulli_frequency_is_probs():
    # P(relaxed sample > 1/2) = probs exactly, at any temperature
    torch.manual_seed(4)
    p = 0.3
    d = RelaxedBernoulliStraightThrough(torch.tensor(1.5), probs=torch.tensor(p))
    n = 20000
    freq = d.sample((n,)).double().mean().item()
    assert abs(freq - p) < 4.5 * math.sqrt(p * (1 - p) / n)


def test_expand_keeps_the_class():
    d = RelaxedBernoulliStraightThrough(torch.tensor(0.5), logits=torch.zeros(2))
    e = d.expand((3, 2))
    assert isinstance(e, RelaxedBernoulliStraightThrough)
    x = e.rsample()
    assert x.shape == (3, 2) and ((x == 0) | (x == 1)).all()
    d = RelaxedOneHotCategoricalStraightThrough(torch.tensor(0.5), logits=torch.zeros(2, 5))
    e = d.expand((3, 2))
    assert isinstance(e, RelaxedOneHotCategoricalStraightThrough)
    assert torch.equal(e.rsample().sum(-1), torch.ones(3, 2))


def test_bad_parameters_name_the_parameter():
    import pytest

    with pytest.raises(ValueError, match="probs"):
        RelaxedBernoulliStraightThrough(
            torch.tensor(0.5), probs=torch.tensor(1.5), validate_args=True
        )
    with pytest.raises(ValueError, match="probs"):
        RelaxedOneHotCategoricalStraightThrough(
            torch.tensor(0.5), probs=torch.tensor([0.5, -0.5]), validate_args=True
        )
