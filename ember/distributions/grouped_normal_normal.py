"""GroupedNormalNormal: grouped normal observations with each group's normal mean
integrated out."""

from __future__ import annotations

import math

import torch
from torch.distributions import constraints

from ember.distributions.torch import Normal
from ember.distributions.torch_distribution import TorchDistribution
from ember.distributions.util import broadcast_shape

__all__ = ["GroupedNormalNormal"]

_EMPTY = torch.Size()
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _as_float(value, name):
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (int, float)):
        return torch.tensor(float(value), dtype=torch.get_default_dtype())
    raise TypeError(f"GroupedNormalNormal: {name} must be a tensor, got {type(value).__name__}")


class GroupedNormalNormal(TorchDistribution):
    """The joint law of ``N`` real observations in ``G`` groups, each observation
    ``x_i = z_{g(i)} + obs_scale_i * eps_i`` with a latent group mean
    ``z_g ~ Normal(prior_loc_g, prior_scale_g)`` integrated out.

    The observations of one group are jointly normal with mean ``prior_loc_g`` and
    covariance ``diag(obs_scale^2) + prior_scale_g^2 * ones``; ``log_prob`` evaluates that
    in ``O(N)`` with the matrix determinant lemma and the Sherman-Morrison formula, and
    :meth:`get_posterior` gives the normal posterior of the group means. Draws are
    reparameterized.

    The value is the vector of all ``N`` observations, so the event shape is ``(N,)``;
    ``prior_loc``/``prior_scale`` have shape ``batch_shape + (G,)`` (or broadcast to it),
    ``obs_scale`` has shape ``batch_shape + (N,)`` (or broadcasts to it).

    :param torch.Tensor prior_loc: prior mean of each group's latent mean.
    :param torch.Tensor prior_scale: prior standard deviation of each group's latent mean.
    :param torch.Tensor obs_scale: observation noise of each observation.
    :param torch.Tensor group_idx: integer tensor of shape ``(N,)`` giving each
        observation's group in ``0 .. G - 1``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.GroupedNormalNormal(
        ...     torch.zeros(2), torch.ones(2), torch.ones(3), torch.tensor([0, 0, 1]))
        >>> x = torch.tensor([1.0, 2.0, -1.0])
        >>> d.log_prob(x)
        tensor(-4.9027)
        >>> d.event_shape, d.get_posterior(x).loc
        (torch.Size([3]), tensor([ 1.0000, -0.5000]))
    """

    arg_constraints = {
        "prior_loc": constraints.real,
        "prior_scale": constraints.positive,
        "obs_scale": constraints.positive,
    }
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, prior_loc, prior_scale, obs_scale, group_idx, validate_args=None):
        prior_loc = _as_float(prior_loc, "prior_loc")
        prior_scale = _as_float(prior_scale, "prior_scale")
        obs_scale = _as_float(obs_scale, "obs_scale")
        if not isinstance(group_idx, torch.Tensor) or group_idx.dim() != 1:
            raise ValueError(
                "GroupedNormalNormal: group_idx must be a 1-dimensional tensor of group "
                f"indices, got {group_idx!r}"
            )
        if group_idx.is_floating_point() or group_idx.is_complex() or group_idx.dtype == torch.bool:
            raise ValueError(
                "GroupedNormalNormal: group_idx must be an integer tensor, got dtype "
                f"{group_idx.dtype}"
            )
        group_idx = group_idx.long()
        num_data = group_idx.shape[0]
        if num_data == 0:
            raise ValueError("GroupedNormalNormal: group_idx is empty (no observations)")
        prior_loc, prior_scale = (
            p if p.dim() else p.unsqueeze(0) for p in (prior_loc, prior_scale)
        )
        if obs_scale.dim() == 0:
            obs_scale = obs_scale.unsqueeze(0)
        try:
            group_shape = broadcast_shape(prior_loc.shape, prior_scale.shape)
            batch_shape = broadcast_shape(group_shape[:-1], obs_scale.shape[:-1])
            data_shape = broadcast_shape(obs_scale.shape[-1:], (num_data,))
        except ValueError as e:
            raise ValueError(
                "GroupedNormalNormal: cannot broadcast prior_loc "
                f"{tuple(prior_loc.shape)}, prior_scale {tuple(prior_scale.shape)} (batch + "
                f"(G,)) and obs_scale {tuple(obs_scale.shape)} (batch + (N,) with N = "
                f"{num_data} from group_idx)"
            ) from e
        num_groups = group_shape[-1]
        if data_shape[0] != num_data:
            raise ValueError(
                f"GroupedNormalNormal: obs_scale has {obs_scale.shape[-1]} observations in its "
                f"rightmost dim but group_idx has {num_data}"
            )
        lo, hi = (int(v) for v in torch.aminmax(group_idx))
        if lo < 0 or hi >= num_groups:
            raise ValueError(
                "GroupedNormalNormal: each index in group_idx must lie in [0, G - 1] with "
                f"G = prior_loc.size(-1) = {num_groups}, got indices in [{lo}, {hi}]"
            )
        self.prior_loc = prior_loc.expand(batch_shape + (num_groups,))
        self.prior_scale = prior_scale.expand(batch_shape + (num_groups,))
        self.obs_scale = obs_scale.expand(batch_shape + (num_data,))
        self.group_idx = group_idx
        self.num_groups = num_groups
        super().__init__(batch_shape, torch.Size((num_data,)), validate_args=validate_args)

    @classmethod
    def infer_shapes(cls, prior_loc, prior_scale, obs_scale, group_idx):
        """``(batch_shape, event_shape)`` from the parameters' shapes.

        Example::

            >>> import ember.distributions as dist
            >>> dist.GroupedNormalNormal.infer_shapes((5, 2), (2,), (1, 7), (7,))
            (torch.Size([5]), torch.Size([7]))
        """
        shapes = [torch.Size(s) or torch.Size((1,)) for s in (prior_loc, prior_scale, obs_scale)]
        group_idx = torch.Size(group_idx)
        if len(group_idx) != 1:
            raise ValueError(
                f"GroupedNormalNormal.infer_shapes: group_idx must be 1-dimensional, got shape "
                f"{tuple(group_idx)}"
            )
        batch_shape = broadcast_shape(*(s[:-1] for s in shapes))
        return batch_shape, group_idx

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self.__new__(type(self)) if _instance is None else _instance
        new.prior_loc = self.prior_loc.expand(batch_shape + (self.num_groups,))
        new.prior_scale = self.prior_scale.expand(batch_shape + (self.num_groups,))
        new.obs_scale = self.obs_scale.expand(batch_shape + self.event_shape)
        new.group_idx = self.group_idx
        new.num_groups = self.num_groups
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def num_data_per_group(self) -> torch.Tensor:
        """The number of observations in each group, shape ``(G,)``."""
        ones = self.prior_loc.new_ones(self.group_idx.shape)
        return self.prior_loc.new_zeros(self.num_groups).index_add(0, self.group_idx, ones)

    def _group_sum(self, x):
        """Sum ``x`` (shape ``... + (N,)``) over the observations of each group:
        shape ``... + (G,)``."""
        return x.new_zeros(x.shape[:-1] + (self.num_groups,)).index_add(-1, self.group_idx, x)

    def rsample(self, sample_shape=_EMPTY):
        shape = self.shape(sample_shape)
        group_shape = shape[:-1] + (self.num_groups,)
        z = self.prior_loc + self.prior_scale * torch.randn(
            group_shape, dtype=self.prior_loc.dtype, device=self.prior_loc.device
        )
        noise = torch.randn(shape, dtype=self.obs_scale.dtype, device=self.obs_scale.device)
        return z[..., self.group_idx] + self.obs_scale * noise

    def _check_value(self, value, method):
        if value.shape[-1:] != self.event_shape:
            raise ValueError(
                f"GroupedNormalNormal.{method}: the value's rightmost dim must hold the "
                f"{self.event_shape[0]} observations of group_idx, got a value of shape "
                f"{tuple(value.shape)}"
            )

    def get_posterior(self, value):
        """The posterior of the latent group means given the observations ``value``: a
        :class:`~ember.distributions.Normal` with batch shape ``batch_shape + (G,)``
        (a group with no observations keeps its prior)."""
        self._check_value(value, "get_posterior")
        obs_precision = self.obs_scale.pow(-2)
        precision = self.prior_scale.pow(-2) + self._group_sum(obs_precision)
        weighted = self._group_sum(value * obs_precision) + self.prior_loc * self.prior_scale.pow(
            -2
        )
        return Normal(weighted / precision, precision.rsqrt())

    def log_prob(self, value):
        if self._validate_args:
            self._check_value(value, "log_prob")
            self._validate_sample(value)
        obs_precision = self.obs_scale.pow(-2)
        delta = value - self.prior_loc[..., self.group_idx]
        # independent part: sum_i log Normal(x_i; prior_loc_g(i), obs_scale_i)
        result = -(0.5 * delta.pow(2) * obs_precision + self.obs_scale.log()).sum(-1)
        result = result - self.event_shape[0] * _HALF_LOG_2PI
        # each group's shared latent (s = prior_scale, P = sum of 1 / obs_scale^2, D = sum of
        # delta / obs_scale^2): -log(1 + s^2 P) / 2 + s^2 D^2 / (2 (1 + s^2 P))
        prior_var = self.prior_scale.pow(2)
        ratio = 1 + prior_var * self._group_sum(obs_precision)
        weighted = self._group_sum(delta * obs_precision)
        coupling = 0.5 * prior_var * weighted.pow(2) / ratio - 0.5 * ratio.log()
        return result + coupling.sum(-1)

    @property
    def mean(self):
        return self.prior_loc[..., self.group_idx]

    @property
    def variance(self):
        return self.prior_scale[..., self.group_idx].pow(2) + self.obs_scale.pow(2)
