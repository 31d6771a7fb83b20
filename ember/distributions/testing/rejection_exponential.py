"""An Exponential distribution sampled by rejection, to test :class:`~ember.distributions.Rejector`.

Proposals come from ``Exponential(factor * rate)`` (a wider distribution, for
``0 < factor <= 1``) and are accepted with probability
``exp(-(1 - factor) * rate * x)``; the accepted values are
``Exponential(rate)``. The probability of acceptance is ``factor``.

Example::

    >>> import torch
    >>> from ember.distributions.testing.rejection_exponential import RejectionExponential
    >>> d = RejectionExponential(torch.tensor([1.0, 2.0]), torch.tensor([0.5, 0.5]))
    >>> d.log_prob(torch.tensor([1.0, 1.0]))  # log(rate) - rate * x
    tensor([-1.0000, -1.3069])
"""

import torch
from torch.distributions import constraints

from ember.distributions.rejector import Rejector
from ember.distributions.torch import Exponential
from ember.distributions.util import broadcast_params, weakmethod

__all__ = ["RejectionExponential"]


class RejectionExponential(Rejector):
    """``Exponential(rate)`` drawn by rejection from ``Exponential(factor * rate)``.

    :param rate: the rate (positive).
    :param factor: how much wider the proposal is, in ``(0, 1]``; also the
        probability that a proposal is accepted.
    """

    arg_constraints = {"rate": constraints.positive, "factor": constraints.unit_interval}
    support = constraints.positive

    def __init__(self, rate, factor, validate_args=None):
        rate, factor = broadcast_params(rate, factor)
        if not bool(((factor > 0) & (factor <= 1)).all()):
            raise ValueError(
                f"RejectionExponential: factor must lie in (0, 1], got {factor.detach().tolist()}"
            )
        self.rate, self.factor = rate, factor
        super().__init__(Exponential(factor * rate), self.log_prob_accept, factor.log())

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return type(self)(self.rate.expand(batch_shape), self.factor.expand(batch_shape))

    @property
    def mean(self):
        return self.rate.reciprocal()

    @property
    def variance(self):
        return self.rate.pow(-2)

    @weakmethod
    def log_prob_accept(self, x):
        """Log acceptance probability ``-(1 - factor) * rate * x``."""
        return (self.factor - 1) * self.rate * x
