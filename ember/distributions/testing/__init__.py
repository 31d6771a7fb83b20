"""Tools for testing distributions and inference algorithms.

* :mod:`~ember.distributions.testing.fakes`: variants of common families that
  hide reparameterization or enumeration, to exercise score-function and
  sampled paths of inference code;
* :mod:`~ember.distributions.testing.gof`: goodness-of-fit tests of a
  sampler against its density;
* :mod:`~ember.distributions.testing.special`: the chi-squared survival
  function those tests use;
* :mod:`~ember.distributions.testing.naive_dirichlet`,
  :mod:`~ember.distributions.testing.rejection_gamma`,
  :mod:`~ember.distributions.testing.rejection_exponential`: Dirichlet, Beta,
  Gamma and Exponential distributions drawn by other (slower or noisier)
  samplers, with the same densities as the standard families.
"""
