"""Batch normalization as a bijection, for stabilizing the training of normalizing flows.

Ioffe and Szegedy 2015 (arXiv:1502.03167); used inside flows by Dinh et al.
2017 (arXiv:1605.08803) and Papamakarios et al. 2017 (arXiv:1705.07057).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import constraints
from torch.nn import functional as F

from ember.distributions.transforms.torch_transform import (
    TransformModule,
    check_last_dim,
    check_positive_int,
)

_SOFTPLUS_INV_ONE = math.log(math.e - 1)


class BatchNormTransform(TransformModule):
    """Batch normalization ``x = (y - mu) / sqrt(var + epsilon) * gamma + beta``, as a transform.

    That formula is the *inverse* (scoring) direction; the forward direction
    is ``y = (x - beta) / gamma * sqrt(var + epsilon) + mu``. The transform is
    elementwise (``event_dim = 0``) on inputs of shape ``(..., input_dim)`` and
    learns ``gamma > 0`` (``constrained_gamma = softplus(gamma)``) and ``beta``
    per dimension.

    In training mode each inverse call (e.g. ``log_prob`` of a minibatch)
    normalizes with the minibatch mean and (biased) variance, taken over all
    dims but the last, and updates the running averages
    ``moving_mean``/``moving_variance`` with weight ``momentum`` (a single row
    updates the mean only: its variance is unknown); the forward
    call always uses the running averages, so during training the forward
    map is not the inverse of the inverse map. In eval mode both directions
    use the running averages and are exact inverses.

    Example::

        >>> import torch, ember.distributions as dist
        >>> bn = dist.BatchNormTransform(2)
        >>> d = dist.TransformedDistribution(dist.Normal(torch.zeros(2), 1.0), [bn])
        >>> d.log_prob(torch.randn(8, 2) * 3 + 1).shape
        torch.Size([8, 2])
        >>> bn.moving_mean.shape
        torch.Size([2])
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True

    def __init__(self, input_dim: int, momentum: float = 0.1, epsilon: float = 1e-5) -> None:
        super().__init__()
        check_positive_int("BatchNormTransform", "input_dim", input_dim)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNormTransform: momentum must lie in [0, 1], got {momentum}")
        if epsilon < 0:
            raise ValueError(f"BatchNormTransform: epsilon must be >= 0, got {epsilon}")
        self.input_dim = input_dim
        self.momentum = momentum
        self.epsilon = epsilon
        self.gamma = nn.Parameter(torch.full((input_dim,), _SOFTPLUS_INV_ONE))
        self.beta = nn.Parameter(torch.zeros(input_dim))
        self.register_buffer("moving_mean", torch.zeros(input_dim))
        self.register_buffer("moving_variance", torch.ones(input_dim))

    @property
    def constrained_gamma(self) -> torch.Tensor:
        """The positive scale ``softplus(gamma)``."""
        return F.softplus(self.gamma)

    def _batch_stats(self, y):
        flat = y.reshape(-1, self.input_dim)
        if flat.shape[0] == 0:
            raise ValueError(
                "BatchNormTransform in training mode needs a minibatch of at least 1 row, "
                f"got input of shape {tuple(y.shape)}; call .eval() to use the running "
                "averages instead"
            )
        return flat.mean(0), flat.var(0, unbiased=False), flat.shape[0]

    def _call(self, x):
        check_last_dim("BatchNormTransform", x, self.input_dim)
        std = torch.sqrt(self.moving_variance + self.epsilon)
        return (x - self.beta) / self.constrained_gamma * std + self.moving_mean

    def _inverse(self, y):
        check_last_dim("BatchNormTransform", y, self.input_dim)
        if self.training:
            mean, var, n = self._batch_stats(y)
            with torch.no_grad():
                m = self.momentum
                self.moving_mean.mul_(1 - m).add_(m * mean.detach())
                if n > 1:  # (one row says nothing about the variance: keep its average)
                    self.moving_variance.mul_(1 - m).add_(m * var.detach() * (n / (n - 1)))
        else:
            mean, var = self.moving_mean, self.moving_variance
        return (y - mean) / torch.sqrt(var + self.epsilon) * self.constrained_gamma + self.beta

    def log_abs_det_jacobian(self, x, y):
        """``log sqrt(var + epsilon) - log gamma`` elementwise, shaped like ``x``.

        ``var`` is the minibatch variance of ``y`` in training mode (matching
        the inverse used for scoring) and the running average in eval mode.
        """
        check_last_dim("BatchNormTransform", x, self.input_dim)
        var = self._batch_stats(y)[1] if self.training else self.moving_variance
        ladj = 0.5 * torch.log(var + self.epsilon) - torch.log(self.constrained_gamma)
        return ladj.expand(x.shape)


def batchnorm(input_dim: int, **kwargs) -> BatchNormTransform:
    """A :class:`BatchNormTransform`; ``kwargs`` are ``momentum`` and ``epsilon``.

    Example::

        >>> import ember.distributions.transforms as T
        >>> T.batchnorm(3, momentum=0.05).momentum
        0.05
    """
    return BatchNormTransform(input_dim, **kwargs)
