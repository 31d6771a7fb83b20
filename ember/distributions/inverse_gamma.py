"""Pyro's module path for :class:`InverseGamma`, the law of ``1 / X`` for
``X ~ Gamma(concentration, rate)``.

The class is ember's wrapper of ``torch.distributions.InverseGamma`` and lives
with the other wrappers in :mod:`ember.distributions.torch`.

Example::

    >>> import ember.distributions as dist
    >>> from ember.distributions.inverse_gamma import InverseGamma
    >>> InverseGamma is dist.InverseGamma is dist.torch.InverseGamma
    True
"""

from ember.distributions.torch import InverseGamma

__all__ = ["InverseGamma"]
