"""Pyro's module path for MaskedMixture
(implemented in :mod:`ember.distributions.masked_mixture`)."""

from ember.distributions.masked_mixture import MaskedMixture

__all__ = ["MaskedMixture"]
