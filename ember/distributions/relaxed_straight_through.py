"""Straight-through Gumbel-softmax: quantized samples forward, relaxed gradients backward.

``rsample`` draws a relaxed (concrete) sample ``y`` and returns its quantized
version ``q(y)`` written as ``q(y) + (y - y.detach())``: the value is exactly
``q(y)`` while the gradient with respect to the parameters is that of ``y``.
The relaxed sample rides along on the returned tensor, so ``log_prob`` of a
sample scores the relaxed value, as the concrete density requires.
"""

from __future__ import annotations

import torch

from ember.distributions.torch import RelaxedBernoulli, RelaxedOneHotCategorical

__all__ = ["RelaxedBernoulliStraightThrough", "RelaxedOneHotCategoricalStraightThrough"]

_EMPTY = torch.Size()


def _straight_through(hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    value = hard + (soft - soft.detach())
    value._unquantize = soft
    return value


class _StraightThrough:
    """What both straight-through relaxations share: ``sample`` is ``rsample`` without
    gradients, and ``log_prob`` scores the relaxed value a quantized sample came from."""

    def sample(self, sample_shape=_EMPTY) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return super().log_prob(getattr(value, "_unquantize", value))


class RelaxedOneHotCategoricalStraightThrough(_StraightThrough, RelaxedOneHotCategorical):
    """:class:`RelaxedOneHotCategorical` with a straight-through gradient estimator.

    * ``rsample`` returns one-hot (quantized) vectors;
    * ``log_prob`` of such a sample scores the relaxed vector it came from,
      under the Gumbel-softmax density;
    * gradients flow through the relaxed vector.

    References: Maddison, Mnih and Teh, "The Concrete Distribution" (2017);
    Jang, Gu and Poole, "Categorical Reparameterization with Gumbel-Softmax" (2017).

    Example::

        >>> import torch, ember.distributions as dist
        >>> logits = torch.zeros(4, requires_grad=True)
        >>> d = dist.RelaxedOneHotCategoricalStraightThrough(torch.tensor(0.5), logits=logits)
        >>> x = d.rsample()
        >>> x.sum().item(), sorted(x.tolist()).count(0.0)
        (1.0, 3)
        >>> x.requires_grad
        True
    """

    def rsample(self, sample_shape=_EMPTY) -> torch.Tensor:
        soft = super().rsample(sample_shape)
        index = soft.argmax(-1, keepdim=True)
        hard = torch.zeros_like(soft).scatter_(-1, index, 1.0)
        return _straight_through(hard, soft)


class RelaxedBernoulliStraightThrough(_StraightThrough, RelaxedBernoulli):
    """:class:`RelaxedBernoulli` with a straight-through gradient estimator.

    * ``rsample`` returns 0/1 (quantized) values, rounding the relaxed sample;
    * ``log_prob`` of such a sample scores the relaxed value it came from;
    * gradients flow through the relaxed value.

    References: Maddison, Mnih and Teh, "The Concrete Distribution" (2017);
    Jang, Gu and Poole, "Categorical Reparameterization with Gumbel-Softmax" (2017).

    Example::

        >>> import torch, ember.distributions as dist
        >>> probs = torch.full((5,), 0.3, requires_grad=True)
        >>> d = dist.RelaxedBernoulliStraightThrough(torch.tensor(0.5), probs=probs)
        >>> x = d.rsample()
        >>> bool(((x == 0) | (x == 1)).all()), x.requires_grad
        (True, True)
    """

    def rsample(self, sample_shape=_EMPTY) -> torch.Tensor:
        soft = super().rsample(sample_shape)
        hard = torch.round(soft.detach())
        return _straight_through(hard, soft)
