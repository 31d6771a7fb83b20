"""Dirichlet and Beta distributions sampled by normalizing independent Gamma draws.

Their densities are those of :class:`~ember.distributions.Dirichlet` and
:class:`~ember.distributions.Beta`; only the sampler differs. Normalizing
reparameterized Gamma draws gives reparameterized samples whose gradients have
a higher variance than torch's implicit-reparameterization samplers, which
makes these classes useful to test gradient estimators.

Example::

    >>> import torch
    >>> from ember.distributions.testing.naive_dirichlet import NaiveDirichlet
    >>> d = NaiveDirichlet(torch.tensor([1.0, 2.0, 3.0]))
    >>> x = d.rsample((4,))
    >>> x.shape, bool(torch.allclose(x.sum(-1), torch.ones(4)))
    (torch.Size([4, 3]), True)
"""

import torch

from ember.distributions.torch import Beta, Dirichlet, Gamma

__all__ = ["GammaBetaSampler", "GammaDirichletSampler", "NaiveBeta", "NaiveDirichlet"]

_EMPTY = torch.Size()


class GammaDirichletSampler:
    """Mixin for a Dirichlet whose ``rsample`` normalizes the draws of the Gamma
    distribution in its ``_gamma`` attribute (set by the subclass's ``__init__``,
    with shape ``batch_shape + event_shape``)."""

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self.__new__(type(self)) if _instance is None else _instance
        new = super().expand(batch_shape, _instance=new)
        new._gamma = self._gamma.expand(batch_shape + self.event_shape)
        return new

    def rsample(self, sample_shape=_EMPTY):
        gammas = self._gamma.rsample(sample_shape)
        return gammas / gammas.sum(-1, keepdim=True)


class GammaBetaSampler:
    """Mixin for a Beta whose ``rsample`` is ``g1 / (g1 + g0)`` for the pair of Gamma
    draws of its ``_gamma`` attribute (set by the subclass's ``__init__``, with
    shape ``batch_shape + (2,)``: concentration1 then concentration0)."""

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self.__new__(type(self)) if _instance is None else _instance
        new = super().expand(batch_shape, _instance=new)
        new._gamma = self._gamma.expand(batch_shape + (2,))
        return new

    def rsample(self, sample_shape=_EMPTY):
        gammas = self._gamma.rsample(sample_shape)
        return gammas[..., 0] / gammas.sum(-1)


class NaiveDirichlet(GammaDirichletSampler, Dirichlet):
    """:class:`~ember.distributions.Dirichlet` drawn as ``g / g.sum(-1)``, ``g_i ~ Gamma(c_i, 1)``.

    :param torch.Tensor concentration: concentrations, shape ``batch_shape + (k,)``.
    """

    has_rsample = True

    def __init__(self, concentration, validate_args=None):
        super().__init__(concentration, validate_args=validate_args)
        self._gamma = Gamma(concentration, torch.ones_like(concentration), validate_args=False)


class NaiveBeta(GammaBetaSampler, Beta):
    """:class:`~ember.distributions.Beta` drawn as ``g1 / (g1 + g0)`` for ``g_i ~ Gamma(c_i, 1)``.

    :param concentration1: the first concentration (alpha).
    :param concentration0: the second concentration (beta).
    """

    has_rsample = True

    def __init__(self, concentration1, concentration0, validate_args=None):
        super().__init__(concentration1, concentration0, validate_args=validate_args)
        both = torch.stack([self.concentration1, self.concentration0], -1)
        self._gamma = Gamma(both, torch.ones_like(both), validate_args=False)
