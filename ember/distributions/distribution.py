"""The abstract Distribution: what every ember distribution promises."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod

from ember.distributions.score_parts import ScoreParts


class Distribution(metaclass=ABCMeta):
    """Base class of parameterized probability distributions.

    A distribution is a stochastic function with fixed parameters: calling it
    draws a sample, :meth:`log_prob` scores a value.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.Bernoulli(torch.tensor(0.3))
        >>> x = d()                       # a random draw
        >>> d.log_prob(torch.tensor(1.0))
        tensor(-1.2040)

    Subclasses implement :meth:`sample` and :meth:`log_prob`; discrete ones may
    implement :meth:`enumerate_support` and set ``has_enumerate_support``.
    """

    has_rsample = False
    has_enumerate_support = False

    def __call__(self, *args, **kwargs):
        """Draw a sample (an alias of :meth:`sample`)."""
        return self.sample(*args, **kwargs)

    @abstractmethod
    def sample(self, *args, **kwargs):
        """Draw a sample, or a batch of ``sample_shape`` iid samples."""
        raise NotImplementedError  # abstract

    @abstractmethod
    def log_prob(self, x, *args, **kwargs):
        """Log-density (or log-mass) of ``x``, summed over event dims."""
        raise NotImplementedError  # abstract

    def score_parts(self, x, *args, **kwargs) -> ScoreParts:
        """Ingredients of an ELBO gradient estimator at ``x``.

        Right for fully reparameterized and for non-reparameterized
        distributions; partially reparameterized ones override it.
        """
        log_prob = self.log_prob(x, *args, **kwargs)
        if self.has_rsample:
            return ScoreParts(log_prob=log_prob, score_function=0, entropy_term=log_prob)
        return ScoreParts(log_prob=log_prob, score_function=log_prob, entropy_term=0)

    def enumerate_support(self, expand: bool = True):
        """All values of a discrete support along a new leftmost dim.

        Values of the batched variables come in lockstep, not as a cartesian
        product. With ``expand=False`` the result has shape
        ``(n,) + (1,) * len(batch_shape) + event_shape``.
        """
        raise NotImplementedError(  # abstract: only discrete distributions implement it
            f"{type(self).__name__} has no enumerable support "
            "(has_enumerate_support is False); enumerate only discrete sites"
        )

    def conjugate_update(self, other):
        """Combine this prior with a likelihood ``other`` into ``(posterior, log_normalizer)``."""
        raise NotImplementedError(  # abstract: conjugate families implement it
            f"{type(self).__name__} has no conjugate_update with {type(other).__name__}"
        )

    def has_rsample_(self, value: bool):
        """Force (False) detached sampling on this instance, in place; returns self."""
        if value not in (True, False):
            raise ValueError(f"has_rsample_ expects True or False, got {value!r}")
        if value and not _can_rsample(self):
            raise ValueError(
                f"{type(self).__name__} has no reparameterized sampler; "
                "cannot force has_rsample=True"
            )
        self.has_rsample = value
        return self


def _can_rsample(d) -> bool:
    """Whether ``d``'s class (or, for wrappers, its base's) has a reparameterized sampler."""
    attr = type(d).has_rsample
    if isinstance(attr, property):
        base = getattr(d, "base_dist", None)
        return base is not None and _can_rsample(base)
    return bool(attr)
