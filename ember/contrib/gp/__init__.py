"""Gaussian-process building blocks: only the covariance kernels
(:mod:`ember.contrib.gp.kernels`) so far."""
