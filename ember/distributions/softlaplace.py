"""Pyro's module path for SoftLaplace
(implemented in :mod:`ember.distributions.soft_laplace`)."""

from ember.distributions.soft_laplace import SoftLaplace

__all__ = ["SoftLaplace"]
