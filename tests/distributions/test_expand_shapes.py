"""expand of an expanded distribution: only its own size-1 dims may grow."""

import pytest
import torch

import ember.distributions as dist
from ember.distributions import TorchDistribution


@pytest.mark.parametrize(
    "initial, proposed",
    [((2, 1), (4, 3)), ((2, 4), (2, 2, 1)), ((1, 2, 1), (2, 1))],
)
def test_expanded_distribution_refuses_to_shrink_or_change_dims(initial, proposed):
    small = dist.Normal(torch.zeros(3), 1.0)
    large = TorchDistribution.expand(small, initial + (3,))
    with pytest.raises(ValueError, match="cannot expand"):
        large.expand(proposed + (3,))
    # the same rule as for a wrapper expanded natively
    with pytest.raises((ValueError, RuntimeError)):
        small.expand(initial + (3,)).expand(proposed + (3,))


def test_expanded_distribution_grows_size_one_dims_and_keeps_values():
    small = dist.Normal(torch.tensor([0.0, 1.0, 2.0]), 1.0)
    large = TorchDistribution.expand(small, (2, 1, 3))
    larger = large.expand((2, 5, 3))
    assert larger.batch_shape == (2, 5, 3)
    x = torch.tensor([0.5, 0.5, 0.5])
    assert torch.allclose(larger.log_prob(x), small.log_prob(x).expand(2, 5, 3))
    assert larger.sample().shape == (2, 5, 3)


def test_reshaped_expanded_distribution_errors():
    d = TorchDistribution.expand(dist.OneHotCategorical(torch.ones(1, 6) / 6), [4, 1, 1, 1])
    reshaped = d.to_event(1)
    large = reshaped.expand([4, 3, 2])
    assert large.batch_shape == (4, 3, 2) and large.event_shape == (1, 6)
    with pytest.raises((ValueError, RuntimeError)):
        reshaped.expand([4, 3, 2, 3])
    with pytest.raises((ValueError, RuntimeError)):
        large.expand([3, 2])
