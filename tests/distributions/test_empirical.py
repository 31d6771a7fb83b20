"""Empirical: the seed example, weighted log_prob, moments, sampling frequencies."""

import math

import pytest
import torch

import ember
from ember.distributions import Empirical


def _validation_enabled():
    return getattr(ember, "validation_enabled", ember.util.validation_enabled)()


def test_seed_example():
    emp_dist = Empirical(torch.randn(2, 3, 10), torch.ones(2, 3))
    assert emp_dist.batch_shape == torch.Size([2])
    assert emp_dist.event_shape == torch.Size([10])
    single_sample = emp_dist.sample()
    assert single_sample.shape == torch.Size([2, 10])
    batch_sample = emp_dist.sample((100,))
    assert batch_sample.shape == torch.Size([100, 2, 10])
    assert emp_dist.log_prob(single_sample).shape == torch.Size([2])
    with _validation_enabled():
        with pytest.raises(ValueError, match=r"``value.shape`` must be torch.Size\(\[2, 10\]\)"):
            emp_dist.log_prob(batch_sample)
    assert emp_dist.sample_size == 3


def test_log_prob_sums_weights_of_equal_samples():
    samples = torch.tensor([0.0, 1.0, 1.0, 2.0])
    log_weights = torch.tensor([1.0, 2.0, 3.0, 4.0]).log()
    d = Empirical(samples, log_weights)
    lp = torch.stack([d.log_prob(torch.tensor(v)) for v in (0.0, 1.0, 2.0, 3.0)])
    assert torch.allclose(lp.exp(), torch.tensor([0.1, 0.5, 0.4, 0.0]))
    assert torch.equal(d.log_weights, log_weights)


def test_log_prob_event_dims_and_batch():
    samples = torch.tensor([[[0.0, 1.0], [0.0, 2.0]], [[5.0, 5.0], [6.0, 6.0]]])  # (2, 2, 2)
    d = Empirical(samples, torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]]))
    assert d.batch_shape == (2,) and d.event_shape == (2,)
    lp = d.log_prob(torch.tensor([[0.0, 2.0], [5.0, 6.0]]))
    assert torch.allclose(lp[0].exp(), torch.tensor(0.75))
    assert lp[1].item() == -float("inf")  # (5, 6) is not a sample: event dims must all agree


def test_mean_and_variance_weighted():
    torch.manual_seed(0)
    samples = torch.randn(3, 50, 2)
    log_weights = torch.randn(3, 50)
    d = Empirical(samples, log_weights)
    w = log_weights.softmax(-1).unsqueeze(-1)
    mean = (w * samples).sum(1)
    assert torch.allclose(d.mean, mean, atol=1e-6)
    assert torch.allclose(d.variance, (w * (samples - mean.unsqueeze(1)) ** 2).sum(1), atol=1e-6)


def test_sampling_frequencies_match_weights():
    torch.manual_seed(1)
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    d = Empirical(torch.tensor([10.0, 20.0, 30.0, 40.0]), probs.log() + 7.0)
    n = 20000
    x = d.sample((n,))
    freq = torch.stack([(x == v).double().mean() for v in (10.0, 20.0, 30.0, 40.0)])
    se = (probs.double() * (1 - probs.double()) / n).sqrt()
    assert ((freq - probs.double()).abs() < 4 * se).all()


def test_enumerate_support_and_expand():
    samples = torch.arange(12.0).reshape(2, 3, 2)
    d = Empirical(samples, torch.zeros(2, 3))
    support = d.enumerate_support()
    assert support.shape == (3, 2, 2)
    assert torch.equal(support[1], samples[:, 1])
    assert torch.allclose(d.log_prob(support[2]).exp(), torch.full((2,), 1 / 3))
    e = d.expand((4, 2))
    assert e.batch_shape == (4, 2) and e.event_shape == (2,)
    assert e.sample((5,)).shape == (5, 4, 2, 2)


def test_bad_input():
    with pytest.raises(ValueError, match="log_weights"):
        Empirical(torch.randn(2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="log_weights"):
        Empirical(torch.randn(2, 3), torch.zeros(()))
    d = Empirical(torch.tensor([1, 2, 3]), torch.zeros(3))
    with pytest.raises(ValueError, match="floating"):
        _ = d.mean
    with pytest.raises(ValueError, match="value.shape"):
        Empirical(torch.randn(4), torch.zeros(4), validate_args=False).log_prob(torch.zeros(3))


def test_validation_switched_on_after_construction_still_checks_value_shape():
    with ember.util.validation_enabled(False):
        d = Empirical(torch.randn(2, 3, 4), torch.zeros(2, 3))
    with _validation_enabled():
        with pytest.raises(ValueError, match="value.shape"):
            d.log_prob(torch.zeros(5, 2, 4))
    # without validation a broadcastable value is scored after expansion
    with ember.util.validation_enabled(False):
        assert d.log_prob(torch.zeros(4)).shape == (2,)
