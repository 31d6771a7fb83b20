"""Zero-inflated distributions: a point mass at zero mixed with a base distribution."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.distributions import constraints
from torch.distributions.utils import lazy_property, logits_to_probs, probs_to_logits

from ember.distributions.torch import NegativeBinomial, Poisson
from ember.distributions.torch_distribution import TorchDistribution
from ember.distributions.util import broadcast_shape

__all__ = ["ZeroInflatedDistribution", "ZeroInflatedNegativeBinomial", "ZeroInflatedPoisson"]

_EMPTY = torch.Size()


class ZeroInflatedDistribution(TorchDistribution):
    """With probability ``gate`` the value is 0, otherwise it is drawn from ``base_dist``.

    ``P(0) = gate + (1 - gate) p(0)`` and ``P(x) = (1 - gate) p(x)`` for ``x != 0``.
    Give exactly one of ``gate`` (a probability) or ``gate_logits``. ``base_dist``
    must be univariate; its batch shape broadcasts with the gate's.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.ZeroInflatedDistribution(dist.Poisson(2.0), gate=torch.tensor(0.25))
        >>> d.log_prob(torch.tensor([0.0, 1.0])).exp()
        tensor([0.3515, 0.2030])
        >>> d.mean
        tensor(1.5000)
    """

    arg_constraints = {
        "gate": constraints.unit_interval,
        "gate_logits": constraints.real,
    }

    def __init__(self, base_dist, *, gate=None, gate_logits=None, validate_args=None):
        if (gate is None) == (gate_logits is None):
            raise ValueError(
                f"{type(self).__name__}: give either gate or gate_logits, not both (or neither)"
            )
        if base_dist.event_shape:
            raise ValueError(
                f"{type(self).__name__}: base_dist must be univariate, got event_shape "
                f"{tuple(base_dist.event_shape)}"
            )
        given = gate if gate is not None else gate_logits
        if not isinstance(given, torch.Tensor):
            given = torch.as_tensor(given, dtype=torch.get_default_dtype())
        batch_shape = broadcast_shape(given.shape, base_dist.batch_shape)
        if gate is not None:
            self.gate = given.expand(batch_shape)
        else:
            self.gate_logits = given.expand(batch_shape)
        self.base_dist = base_dist.expand(batch_shape)
        super().__init__(batch_shape, _EMPTY, validate_args=validate_args)

    @constraints.dependent_property
    def support(self):
        return self.base_dist.support

    @lazy_property
    def gate(self):
        return logits_to_probs(self.gate_logits, is_binary=True)

    @lazy_property
    def gate_logits(self):
        return probs_to_logits(self.gate, is_binary=True)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        base_lp = self.base_dist.log_prob(value)
        if "gate" in self.__dict__:
            gate = self.gate
            nonzero = torch.log1p(-gate) + base_lp
            at_zero = torch.log(gate + nonzero.exp())
        else:
            logits = self.gate_logits
            log_gate = -F.softplus(-logits)  # log sigmoid(l)
            ratio = base_lp - logits  # log((1 - g) p / g)
            nonzero = ratio + log_gate
            at_zero = F.softplus(ratio) + log_gate
        return torch.where(value == 0, at_zero, nonzero)

    def sample(self, sample_shape=_EMPTY):
        shape = self.shape(sample_shape)
        with torch.no_grad():
            zero = torch.bernoulli(self.gate.expand(shape)).bool()
            x = self.base_dist.sample(sample_shape)
            return x.masked_fill(zero, 0)

    @property
    def mean(self):
        return (1 - self.gate) * self.base_dist.mean

    @property
    def variance(self):
        base = self.base_dist
        keep = 1 - self.gate
        return keep * (base.mean**2 + base.variance) - (keep * base.mean) ** 2

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self.__new__(type(self)) if _instance is None else _instance
        gate = self.gate.expand(batch_shape) if "gate" in self.__dict__ else None
        logits = self.gate_logits.expand(batch_shape) if gate is None else None
        ZeroInflatedDistribution.__init__(
            new,
            self.base_dist.expand(batch_shape),
            gate=gate,
            gate_logits=logits,
            validate_args=False,
        )
        new._validate_args = self._validate_args
        return new


class ZeroInflatedPoisson(ZeroInflatedDistribution):
    """:class:`ZeroInflatedDistribution` over a ``Poisson(rate)``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.ZeroInflatedPoisson(torch.tensor(3.0), gate_logits=torch.tensor(0.0))
        >>> d.log_prob(torch.tensor(0.0)).exp()
        tensor(0.5249)
    """

    arg_constraints = {
        "rate": constraints.positive,
        "gate": constraints.unit_interval,
        "gate_logits": constraints.real,
    }
    support = constraints.nonnegative_integer

    def __init__(self, rate, *, gate=None, gate_logits=None, validate_args=None):
        base = Poisson(rate=rate, validate_args=False)
        base._validate_args = validate_args
        super().__init__(base, gate=gate, gate_logits=gate_logits, validate_args=validate_args)

    @property
    def rate(self):
        return self.base_dist.rate


class ZeroInflatedNegativeBinomial(ZeroInflatedDistribution):
    """:class:`ZeroInflatedDistribution` over a ``NegativeBinomial(total_count, probs or
    logits)``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.ZeroInflatedNegativeBinomial(
        ...     torch.tensor(2.0), probs=torch.tensor(0.5), gate=torch.tensor(0.1))
        >>> d.log_prob(torch.tensor(0.0)).exp()
        tensor(0.3250)
    """

    arg_constraints = {
        "total_count": constraints.greater_than_eq(0),
        "probs": constraints.half_open_interval(0.0, 1.0),
        "logits": constraints.real,
        "gate": constraints.unit_interval,
        "gate_logits": constraints.real,
    }
    support = constraints.nonnegative_integer

    def __init__(
        self,
        total_count,
        *,
        probs=None,
        logits=None,
        gate=None,
        gate_logits=None,
        validate_args=None,
    ):
        base = NegativeBinomial(
            total_count=total_count, probs=probs, logits=logits, validate_args=False
        )
        base._validate_args = validate_args
        super().__init__(base, gate=gate, gate_logits=gate_logits, validate_args=validate_args)

    @property
    def total_count(self):
        return self.base_dist.total_count

    @property
    def probs(self):
        return self.base_dist.probs

    @property
    def logits(self):
        return self.base_dist.logits
