"""Pyro's module path for the asymmetric Laplace families
(implemented in :mod:`ember.distributions.asymmetric_laplace`)."""

from ember.distributions.asymmetric_laplace import AsymmetricLaplace, SoftAsymmetricLaplace

__all__ = ["AsymmetricLaplace", "SoftAsymmetricLaplace"]
