"""The Polya-Gamma distribution PG(1, 0), truncated to a bounded interval."""

from __future__ import annotations

import math

import torch
from torch.distributions import constraints

from ember.distributions.torch_distribution import TorchDistribution
from ember.distributions.validation import decide, describe_violation

__all__ = ["TruncatedPolyaGamma"]

_EMPTY = torch.Size()
_LOG_2PI = math.log(2 * math.pi)
_HALF_LOG_2PI = 0.5 * _LOG_2PI
# below this point the series in exp(-(2n+1)^2 / (8x)) converges fastest, above it the
# series in exp(-(2n+1)^2 pi^2 x / 2); at the switch both ratios of successive terms are
# about 3 exp(-6.3)
_SWITCH = 0.16


def _alternating_log1p(log_ratios):
    """``log(1 + sum_n (-1)^n exp(log_ratios[..., n - 1]))`` for n = 1, 2, ...: the log of
    an alternating series divided by its first term."""
    signs = torch.ones(log_ratios.shape[-1], dtype=log_ratios.dtype, device=log_ratios.device)
    signs[0::2] = -1.0
    return torch.log1p((signs * log_ratios.exp()).sum(-1))


class TruncatedPolyaGamma(TorchDistribution):
    """The Polya-Gamma distribution ``PG(1, 0)`` restricted to ``(0, truncation_point)``
    (``truncation_point = 2.5``), with no parameters.

    ``PG(1, 0)`` is the law of ``sum_k E_k / (2 pi^2 (k - 1/2)^2)`` for independent
    standard exponentials ``E_k``; its mean is ``1/4`` and its density is the alternating
    series ``sum_n (-1)^n (2n+1) / sqrt(2 pi x^3) exp(-(2n+1)^2 / (8x))``, which equals
    ``sum_n (-1)^n 2 pi (2n+1) exp(-(2n+1)^2 pi^2 x / 2)``. ``log_prob`` sums whichever of the
    two forms converges faster at ``x`` (``num_log_prob_terms`` terms, exact to float
    precision) and divides by the mass below the truncation point (``1 - 5.6e-6``), so it
    is the normalized truncated density. Having no parameters, ``log_prob`` is elementwise
    and returns the value's shape.

    ``sample`` is approximate and meant for initialization: it draws the first
    ``num_gamma_variates`` exponentials of the sum, replaces the rest by their mean (so the
    mean stays ``1/4``) and clamps at the truncation point.

    :param torch.Tensor prototype: a tensor whose dtype and device the samples and
        densities take (a Python number means the default dtype on the CPU).

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.TruncatedPolyaGamma(torch.ones(())).expand((2,))
        >>> d.log_prob(torch.tensor([0.25, 1.0]))
        tensor([ 0.6040, -3.0969])
        >>> d.sample((1000,)).shape
        torch.Size([1000, 2])
        >>> d.mean
        tensor([0.2500, 0.2500])
    """

    truncation_point = 2.5
    num_log_prob_terms = 7
    num_gamma_variates = 8

    arg_constraints = {}
    support = constraints.interval(0.0, truncation_point)
    has_rsample = False

    def __init__(self, prototype, validate_args=None):
        if not isinstance(prototype, torch.Tensor):
            if not isinstance(prototype, (int, float)):
                raise TypeError(
                    "TruncatedPolyaGamma(prototype): prototype must be a tensor (its dtype and "
                    f"device are used), got {type(prototype).__name__}"
                )
            prototype = torch.zeros((), dtype=torch.get_default_dtype())
        elif not prototype.is_floating_point():
            prototype = torch.zeros((), dtype=torch.get_default_dtype(), device=prototype.device)
        self.prototype = prototype
        super().__init__(_EMPTY, _EMPTY, validate_args=validate_args)

    @classmethod
    def infer_shapes(cls, prototype=()):
        """``(batch_shape, event_shape)``: both empty, whatever the prototype's shape."""
        return _EMPTY, _EMPTY

    def expand(self, batch_shape, _instance=None):
        new = self.__new__(type(self)) if _instance is None else _instance
        new.prototype = self.prototype
        TorchDistribution.__init__(new, torch.Size(batch_shape), _EMPTY, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _arange(self, start, stop):
        proto = self.prototype
        return torch.arange(start, stop, dtype=proto.dtype, device=proto.device)

    def sample(self, sample_shape=_EMPTY):
        shape = self.shape(sample_shape)
        half_odd = self._arange(0, self.num_gamma_variates) + 0.5
        weights = half_odd.pow(-2)
        # sum over k > K of 1 / (k - 1/2)^2, from the full sum pi^2 / 2
        tail_mean = math.pi**2 / 2 - float(weights.sum())
        proto = self.prototype
        draws = torch.empty(
            shape + (self.num_gamma_variates,), dtype=proto.dtype, device=proto.device
        ).exponential_()
        x = ((draws * weights).sum(-1) + tail_mean) / (2 * math.pi**2)
        return x.clamp(max=self.truncation_point)

    @classmethod
    def log_normalizer(cls) -> float:
        """``log P(X < truncation_point)`` for ``X ~ PG(1, 0)``."""
        t = cls.truncation_point
        tail = sum(
            (-1) ** n
            * 4
            / (math.pi * (2 * n + 1))
            * math.exp(-((2 * n + 1) ** 2) * math.pi**2 * t / 2)
            for n in range(cls.num_log_prob_terms)
        )
        return math.log1p(-tail)

    def log_prob(self, value):
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(value, dtype=self.prototype.dtype)
        if self._validate_args:
            # there are no parameters: the density is elementwise in the value, whose shape
            # need not broadcast with the batch shape; only the support is checked
            decided = decide(self.support, value)
            if decided is not True and (decided is False or not bool(decided)):
                raise ValueError(
                    f"TruncatedPolyaGamma.log_prob: the value must lie in the support "
                    f"(0, {self.truncation_point}), but "
                    f"{describe_violation(self.support, value)}"
                )
        x = value.unsqueeze(-1)
        odd = 2 * self._arange(1, self.num_log_prob_terms) + 1  # 3, 5, 7, ...
        tiny = torch.finfo(x.dtype).tiny
        # small x: (1 / sqrt(2 pi x^3)) exp(-1 / (8x)) (1 + sum_n (-1)^n (2n+1) exp(...))
        xs = x.clamp(min=tiny, max=_SWITCH)
        small = (
            -0.125 / xs[..., 0]
            - 1.5 * xs[..., 0].log()
            - _HALF_LOG_2PI
            + _alternating_log1p(odd.log() - (odd**2 - 1) * 0.125 / xs)
        )
        # large x: 2 pi exp(-pi^2 x / 2) (1 + sum_n (-1)^n (2n+1) exp(...))
        xl = x.clamp(min=_SWITCH)
        large = (
            _LOG_2PI
            - (math.pi**2 / 2) * xl[..., 0]
            + _alternating_log1p(odd.log() - (odd**2 - 1) * (math.pi**2 / 2) * xl)
        )
        result = torch.where(value < _SWITCH, small, large) - self.log_normalizer()
        return result.masked_fill(value <= 0, -math.inf)

    @classmethod
    def truncated_moment(cls, k: int) -> float:
        """``E[X^k | X < truncation_point]`` for ``X ~ PG(1, 0)`` and ``k`` in 1, 2.

        With the density ``sum_n (-1)^n c_n exp(-r_n x)`` (``c_n = 2 pi (2n+1)``,
        ``r_n = (2n+1)^2 pi^2 / 2``) the moment above the truncation point ``t`` is
        ``sum_n (-1)^n c_n int_t^inf x^k exp(-r_n x) dx``; it is removed from the full
        moment (``1/4``, resp. ``1/24 + 1/16``) and the rest renormalized.
        """
        if k not in (1, 2):
            raise ValueError(f"TruncatedPolyaGamma.truncated_moment: k must be 1 or 2, got {k}")
        t = cls.truncation_point
        full = 0.25 if k == 1 else 5 / 48
        removed = 0.0
        for n in range(cls.num_log_prob_terms):
            c, r = 2 * math.pi * (2 * n + 1), (2 * n + 1) ** 2 * math.pi**2 / 2
            rt = r * t
            tail = (1 + rt) / r**2 if k == 1 else (2 + 2 * rt + rt * rt) / r**3
            removed += (-1) ** n * c * math.exp(-rt) * tail
        return (full - removed) / math.exp(cls.log_normalizer())

    def _constant(self, value):
        proto = self.prototype
        return torch.full(self.batch_shape, value, dtype=proto.dtype, device=proto.device)

    @property
    def mean(self):
        return self._constant(self.truncated_moment(1))

    @property
    def variance(self):
        return self._constant(self.truncated_moment(2) - self.truncated_moment(1) ** 2)
