"""Gamma, Beta and Dirichlet distributions drawn by rejection sampling.

They have the densities of the standard families; their samplers follow
Naesseth, Ruiz, Linderman and Blei (2017), "Reparameterization Gradients
through Acceptance-Rejection Sampling Algorithms":

* :class:`RejectionStandardGamma` draws ``Gamma(concentration, 1)`` for
  ``concentration >= 1`` with Marsaglia and Tsang's sampler: ``eps ~ N(0, 1)``,
  ``x = d (1 + c eps)^3`` with ``d = concentration - 1/3`` and
  ``c = 1 / sqrt(9 d)``, accepted with probability
  ``exp(eps^2 / 2 + d - d v + d log v)`` where ``v = x / d``. Samples are
  reparameterized through ``x(eps)``, and ``score_parts`` adds the score of the
  acceptance step, which makes the gradient estimate unbiased;
* :class:`RejectionGamma` scales those draws by ``1 / rate``;
* :class:`ShapeAugmentedGamma` draws ``Gamma(concentration + boost, rate)`` by
  rejection and multiplies by ``u_i^(1 / (concentration + i))`` for ``boost``
  uniform ``u_i``, which gives ``Gamma(concentration, rate)`` for any
  ``concentration > 0``;
* :class:`ShapeAugmentedDirichlet` and :class:`ShapeAugmentedBeta` normalize
  shape-augmented Gamma draws.

Example::

    >>> import torch
    >>> from ember.distributions.testing.rejection_gamma import ShapeAugmentedGamma
    >>> d = ShapeAugmentedGamma(torch.tensor([0.5, 2.0]), torch.tensor([1.0, 3.0]))
    >>> x = d.rsample((1000,))
    >>> x.shape, bool((x > 0).all())
    (torch.Size([1000, 2]), True)
"""

import math

import torch
from torch.distributions import constraints

from ember.distributions.rejector import Rejector
from ember.distributions.score_parts import ScoreParts
from ember.distributions.testing.naive_dirichlet import GammaBetaSampler, GammaDirichletSampler
from ember.distributions.torch import Beta, Dirichlet, Gamma
from ember.distributions.util import weakmethod

__all__ = [
    "RejectionGamma",
    "RejectionStandardGamma",
    "ShapeAugmentedBeta",
    "ShapeAugmentedDirichlet",
    "ShapeAugmentedGamma",
]

_EMPTY = torch.Size()
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class RejectionStandardGamma(Rejector):
    """``Gamma(concentration, 1)`` by Marsaglia and Tsang's rejection sampler, for
    ``concentration >= 1``.

    :param torch.Tensor concentration: shape parameter (at least 1).
    """

    arg_constraints = {"concentration": constraints.greater_than_eq(1.0)}
    support = constraints.positive

    def __init__(self, concentration, validate_args=None):
        if not isinstance(concentration, torch.Tensor):
            concentration = torch.tensor(float(concentration))
        if not bool((concentration.detach() >= 1).all()):
            raise ValueError(
                "RejectionStandardGamma needs concentration >= 1 (use ShapeAugmentedGamma "
                f"below 1), got {concentration.detach().min().item():g}"
            )
        self.concentration = concentration
        self._d = concentration - 1.0 / 3.0
        self._c = (9.0 * self._d).rsqrt()
        super().__init__(
            self.propose,
            self.log_prob_accept,
            self._log_scale(),
            batch_shape=concentration.shape,
            event_shape=_EMPTY,
        )

    def _log_scale(self):
        # log E[acceptance] = d - log C with C = d^(alpha - 1) 3 d c sqrt(2 pi) / Gamma(alpha)
        d, c, alpha = self._d, self._c, self.concentration
        log_c = (alpha - 1) * d.log() + torch.log(3 * d * c) + _HALF_LOG_2PI - torch.lgamma(alpha)
        return d - log_c

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return type(self)(self.concentration.expand(batch_shape))

    @property
    def mean(self):
        return self.concentration

    @property
    def variance(self):
        return self.concentration

    @weakmethod
    def propose(self, sample_shape=_EMPTY):
        """Marsaglia and Tsang's proposal ``d (1 + c eps)^3``, reparameterized."""
        eps = torch.randn(
            torch.Size(sample_shape) + self.concentration.shape,
            dtype=self.concentration.dtype,
            device=self.concentration.device,
        )
        y = 1.0 + self._c * eps
        return (self._d * y * y * y).clamp(min=torch.finfo(y.dtype).tiny)

    @weakmethod
    def log_prob_accept(self, x):
        """Log acceptance probability ``eps^2 / 2 + d - d v + d log v``."""
        v = x / self._d
        y = v.pow(1.0 / 3.0)
        eps = (y - 1.0) / self._c
        # (proposals with 1 + c eps <= 0 were clamped to a tiny x, where this is about -80 d)
        return 0.5 * eps * eps + self._d * (1.0 - v + v.log())

    def log_prob(self, x):
        """The ``Gamma(concentration, 1)`` log-density."""
        if self._validate_args:
            self._validate_sample(x)
        alpha = self.concentration
        return torch.xlogy(alpha - 1, x) - x - torch.lgamma(alpha)


class RejectionGamma(Gamma):
    """``Gamma(concentration, rate)`` as :class:`RejectionStandardGamma` draws over ``rate``.

    :param torch.Tensor concentration: shape parameter (at least 1).
    :param torch.Tensor rate: rate parameter.
    """

    has_rsample = True

    def __init__(self, concentration, rate, validate_args=None):
        super().__init__(concentration, rate, validate_args=validate_args)
        self._standard_gamma = RejectionStandardGamma(self.concentration)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self.__new__(type(self)) if _instance is None else _instance
        new = super().expand(batch_shape, _instance=new)
        new._standard_gamma = self._standard_gamma.expand(batch_shape)
        return new

    def rsample(self, sample_shape=_EMPTY):
        return self._standard_gamma.rsample(sample_shape) / self.rate

    def score_parts(self, x):
        """Log-density, with the acceptance score of the standard draw ``x * rate``."""
        log_prob = self.log_prob(x)
        score_function = self._standard_gamma.log_prob_accept(x * self.rate)
        score_function = score_function - self._standard_gamma.log_scale
        return ScoreParts(log_prob=log_prob, score_function=score_function, entropy_term=log_prob)


class ShapeAugmentedGamma(Gamma):
    """``Gamma(concentration, rate)`` for any ``concentration > 0`` by shape augmentation.

    A ``Gamma(concentration + boost, rate)`` draw by rejection is multiplied by
    ``u_i^(1 / (concentration + i))``, ``i = 0 .. boost - 1``, with uniform
    ``u_i``. :meth:`score_parts` needs the draw of the last :meth:`rsample`
    (it uses the rejection step's acceptance score).

    :param torch.Tensor concentration: shape parameter.
    :param torch.Tensor rate: rate parameter.
    :param int boost: how many times to augment the shape; ``concentration +
        boost`` must be at least 1.
    """

    has_rsample = True

    def __init__(self, concentration, rate, boost=1, validate_args=None):
        super().__init__(concentration, rate, validate_args=validate_args)
        if not isinstance(boost, int) or boost < 0:
            raise ValueError(f"ShapeAugmentedGamma: boost must be an int >= 0, got {boost!r}")
        if float(self.concentration.detach().min()) + boost < 1:
            raise ValueError(
                "ShapeAugmentedGamma: concentration + boost must be at least 1, got "
                f"min concentration {float(self.concentration.detach().min()):g} with "
                f"boost={boost}; increase boost"
            )
        self._boost = boost
        self._rejection_gamma = RejectionGamma(self.concentration + boost, self.rate)
        self._last_draw = None, None

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self.__new__(type(self)) if _instance is None else _instance
        new = super().expand(batch_shape, _instance=new)
        new._boost = self._boost
        new._rejection_gamma = self._rejection_gamma.expand(batch_shape)
        new._last_draw = None, None
        return new

    def rsample(self, sample_shape=_EMPTY):
        x = self._rejection_gamma.rsample(sample_shape)
        boosted = x
        for i in range(self._boost):
            u = torch.rand(x.shape, dtype=x.dtype, device=x.device)
            boosted = boosted * u.pow(1.0 / (self.concentration + i))
        self._last_draw = boosted, x
        return boosted

    def score_parts(self, x):
        """Log-density, with the acceptance score of the rejection draw behind ``x``.

        ``x`` must be the value the last :meth:`rsample` returned.
        """
        boosted, unboosted = self._last_draw
        if x is not boosted:
            raise ValueError(
                "ShapeAugmentedGamma.score_parts needs the value returned by the last rsample() "
                "of this distribution (its score depends on the draw before augmentation); "
                "for an observed value use log_prob"
            )
        log_prob = self.log_prob(x)
        score_function = self._rejection_gamma.score_parts(unboosted).score_function
        return ScoreParts(log_prob=log_prob, score_function=score_function, entropy_term=log_prob)


class ShapeAugmentedDirichlet(GammaDirichletSampler, Dirichlet):
    """:class:`~ember.distributions.Dirichlet` by normalizing :class:`ShapeAugmentedGamma` draws.

    Gradients are the pathwise ones through the Gamma draws; the score of the
    rejection steps is left out (a small bias: with ``boost >= 1`` each
    rejection step accepts at least about 95% of proposals).

    :param torch.Tensor concentration: concentrations, shape ``batch_shape + (k,)``.
    :param int boost: shape augmentation steps (see :class:`ShapeAugmentedGamma`).
    """

    has_rsample = True

    def __init__(self, concentration, boost=1, validate_args=None):
        super().__init__(concentration, validate_args=validate_args)
        c = self.concentration
        self._gamma = ShapeAugmentedGamma(c, torch.ones_like(c), boost, validate_args=False)


class ShapeAugmentedBeta(GammaBetaSampler, Beta):
    """:class:`~ember.distributions.Beta` drawn from a pair of :class:`ShapeAugmentedGamma` draws.

    Gradients are the pathwise ones through the Gamma draws; the score of the
    rejection steps is left out (a small bias: with ``boost >= 1`` each
    rejection step accepts at least about 95% of proposals).

    :param concentration1: the first concentration (alpha).
    :param concentration0: the second concentration (beta).
    :param int boost: shape augmentation steps (see :class:`ShapeAugmentedGamma`).
    """

    has_rsample = True

    def __init__(self, concentration1, concentration0, boost=1, validate_args=None):
        super().__init__(concentration1, concentration0, validate_args=validate_args)
        both = torch.stack([self.concentration1, self.concentration0], -1)
        self._gamma = ShapeAugmentedGamma(both, torch.ones_like(both), boost, validate_args=False)
