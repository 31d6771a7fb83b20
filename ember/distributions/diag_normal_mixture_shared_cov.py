"""Pyro's module path for MixtureOfDiagNormalsSharedCovariance
(implemented in :mod:`ember.distributions.diag_normal_mixture`)."""

from ember.distributions.diag_normal_mixture import MixtureOfDiagNormalsSharedCovariance

__all__ = ["MixtureOfDiagNormalsSharedCovariance"]
