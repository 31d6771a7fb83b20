"""Variants of common families that hide a capability from inference code.

Each class has its parent's density, sampler and parameters; only one flag
differs. With ``has_rsample = False`` inference must use score-function
(REINFORCE) gradients, with ``has_enumerate_support = False`` it must sample a
discrete site instead of enumerating it. Tests use them to check those paths
against the reparameterized or enumerated ones.

Example::

    >>> import torch
    >>> from ember.distributions.testing.fakes import NonreparameterizedNormal
    >>> d = NonreparameterizedNormal(torch.zeros(2), 1.0)
    >>> d.has_rsample, d.expand((3, 2)).has_rsample
    (False, False)
"""

from ember.distributions.torch import Bernoulli, Beta, Categorical, Dirichlet, Gamma, Normal

__all__ = [
    "NonenumerableBernoulli",
    "NonenumerableCategorical",
    "NonreparameterizedBeta",
    "NonreparameterizedDirichlet",
    "NonreparameterizedGamma",
    "NonreparameterizedNormal",
]


class NonreparameterizedBeta(Beta):
    """:class:`~ember.distributions.Beta` without reparameterized sampling."""

    has_rsample = False


class NonreparameterizedDirichlet(Dirichlet):
    """:class:`~ember.distributions.Dirichlet` without reparameterized sampling."""

    has_rsample = False


class NonreparameterizedGamma(Gamma):
    """:class:`~ember.distributions.Gamma` without reparameterized sampling."""

    has_rsample = False


class NonreparameterizedNormal(Normal):
    """:class:`~ember.distributions.Normal` without reparameterized sampling."""

    has_rsample = False


class NonenumerableBernoulli(Bernoulli):
    """:class:`~ember.distributions.Bernoulli` that inference cannot enumerate."""

    has_enumerate_support = False


class NonenumerableCategorical(Categorical):
    """:class:`~ember.distributions.Categorical` that inference cannot enumerate."""

    has_enumerate_support = False
