"""Normal and multivariate normal likelihoods that treat NaN entries of the data as missing."""

from __future__ import annotations

import math

import torch

from ember.distributions.torch import MultivariateNormal, Normal

__all__ = ["NanMaskedMultivariateNormal", "NanMaskedNormal"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class NanMaskedNormal(Normal):
    """A :class:`~ember.distributions.Normal` whose ``log_prob`` scores every non-finite
    entry (NaN, or an infinity) of the value as missing: its log-density is ``0``.

    This is a likelihood for partially observed data: the observed entries get the
    normal log-density, the missing ones contribute nothing and no gradient. Sampling is
    the Normal's.

    Example::

        >>> import math, torch, ember.distributions as dist
        >>> d = dist.NanMaskedNormal(torch.zeros(3), torch.ones(3))
        >>> d.log_prob(torch.tensor([0.0, math.nan, 1.0]))
        tensor([-0.9189,  0.0000, -1.4189])
    """

    def log_prob(self, value):
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(value, dtype=self.loc.dtype, device=self.loc.device)
        ok = value.isfinite()
        # missing entries are scored at the mean (a finite stand-in whose terms are then
        # dropped), so neither the value nor the gradients see a NaN
        stand_in = torch.where(ok, value, self.loc.detach())
        return torch.where(ok, super().log_prob(stand_in), stand_in.new_zeros(()))


class NanMaskedMultivariateNormal(MultivariateNormal):
    """A :class:`~ember.distributions.MultivariateNormal` whose ``log_prob`` treats every
    non-finite entry (NaN, or an infinity) of a value vector as missing and returns the
    log-density of the observed entries under their marginal normal distribution.

    A row with no observed entry scores ``0``; a fully observed row scores as the
    MultivariateNormal. The marginal of the observed coordinates ``o`` is
    ``Normal(loc[o], cov[o, o])``; it is computed for every row at once by replacing the
    missing rows and columns of the covariance with those of the identity, scoring the
    mean at the missing coordinates, and removing the ``-log(2 pi) / 2`` each of them
    then adds. Sampling is the MultivariateNormal's.

    Example::

        >>> import math, torch, ember.distributions as dist
        >>> cov = torch.tensor([[2.0, 1.0], [1.0, 2.0]])
        >>> d = dist.NanMaskedMultivariateNormal(torch.zeros(2), cov)
        >>> d.log_prob(torch.tensor([[1.0, math.nan], [math.nan, math.nan]]))
        tensor([-1.5155,  0.0000])
        >>> dist.Normal(0.0, 2.0**0.5).log_prob(torch.tensor(1.0))
        tensor(-1.5155)
    """

    def log_prob(self, value):
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(value, dtype=self.loc.dtype, device=self.loc.device)
        ok = value.isfinite()
        if bool(ok.all()):
            return super().log_prob(value)
        if self._validate_args and value.shape[-1:] != self.event_shape:
            raise ValueError(
                f"{type(self).__name__}.log_prob: the value's rightmost dim must be the event "
                f"shape {tuple(self.event_shape)}, got a value of shape {tuple(value.shape)}"
            )
        okf = ok.to(self.loc.dtype)
        stand_in = torch.where(ok, value, self.loc.detach())
        # covariance with the missing coordinates decoupled: cov[o, o] and an identity block
        both = okf.unsqueeze(-1) * okf.unsqueeze(-2)
        eye = torch.eye(self.event_shape[0], dtype=self.loc.dtype, device=self.loc.device)
        cov = self.covariance_matrix * both + eye * (1 - okf).unsqueeze(-1)
        decoupled = MultivariateNormal(self.loc, cov, validate_args=False)
        num_missing = (1 - okf).sum(-1)
        return decoupled.log_prob(stand_in) + num_missing * _HALF_LOG_2PI
