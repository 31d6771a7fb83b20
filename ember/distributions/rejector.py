"""Rejector: a distribution defined by rejection sampling from a proposal.

The target density is ``p(x) = q(x) a(x) / Z`` for a proposal ``q``, an
acceptance probability ``a(x) <= 1`` and ``Z = E_q[a(x)]``. When the proposal
is reparameterized, ``x = h(eps, theta)``, the accepted noise has density
``s(eps) a(h(eps, theta)) / Z(theta)``, so the gradient of ``E_p[f(x)]`` is
``E[grad f(x)] + E[f(x) grad(log a(x) - log Z)]`` (Naesseth et al., 2017,
"Reparameterization Gradients through Acceptance-Rejection Sampling
Algorithms"). :meth:`Rejector.score_parts` returns that correction as the
score function.
"""

from __future__ import annotations

import numbers
from typing import Callable, Union

import torch
from torch.distributions import constraints

from ember.distributions.score_parts import ScoreParts
from ember.distributions.torch_distribution import TorchDistribution

__all__ = ["Rejector"]

_EMPTY = torch.Size()


class Rejector(TorchDistribution):
    """Rejection-sampled distribution: log-density ``log q(x) + log a(x) - log_scale``.

    :param propose: the proposal distribution; its batch and event shapes are
        the Rejector's. Also allowed: a callable ``propose(sample_shape)``
        returning a batch of reparameterized proposals, together with
        ``batch_shape`` and ``event_shape``; a subclass then defines
        :meth:`log_prob` itself.
    :param log_prob_accept: a callable mapping a batch of proposals to the log
        of their acceptance probabilities (each ``<= 0``).
    :param log_scale: the total log probability of acceptance,
        ``log E_q[exp(log_prob_accept(x))]``; differentiable in the proposal's
        parameters when gradients are wanted.

    Samples are reparameterized whenever the proposal is, and
    :meth:`score_parts` supplies the correction term that makes the gradient
    estimate unbiased.

    Example::

        >>> import math, torch, ember.distributions as dist
        >>> # Exponential(3) from Exponential(1) proposals accepted with prob exp(-2x).
        >>> d = dist.Rejector(
        ...     dist.Exponential(torch.tensor(1.0)), lambda x: -2 * x, math.log(1 / 3)
        ... )
        >>> d.log_prob(torch.tensor(0.5))
        tensor(-0.4014)
        >>> d.sample((10,)).shape
        torch.Size([10])
    """

    arg_constraints = {}
    has_rsample = True

    def __init__(
        self,
        propose,
        log_prob_accept: Callable[[torch.Tensor], torch.Tensor],
        log_scale: Union[numbers.Number, torch.Tensor],
        *,
        batch_shape=None,
        event_shape=None,
        validate_args=None,
    ):
        if not callable(log_prob_accept):
            raise TypeError(
                f"Rejector: log_prob_accept must be callable, got {type(log_prob_accept).__name__}"
            )
        is_distribution = hasattr(propose, "log_prob")
        if not is_distribution and (
            not callable(propose) or batch_shape is None or event_shape is None
        ):
            raise TypeError(
                "Rejector: propose must be a distribution with sample() and log_prob(), "
                "or a callable propose(sample_shape) given with batch_shape and event_shape; "
                f"got {type(propose).__name__}"
                + ("" if not callable(propose) else " without batch_shape/event_shape")
            )
        self.propose = propose
        self.log_prob_accept = log_prob_accept
        self.log_scale = log_scale
        if is_distribution and not getattr(propose, "has_rsample", False):
            self.has_rsample = False  # sampling can only be as reparameterized as the proposal
        if batch_shape is None:
            batch_shape = propose.batch_shape
        if event_shape is None:
            event_shape = propose.event_shape
        super().__init__(torch.Size(batch_shape), torch.Size(event_shape), validate_args=False)

    @classmethod
    def infer_shapes(cls, **arg_shapes):
        """``(batch_shape, event_shape)`` without building tensors.

        A Rejector's shapes are its proposal's, which a parameter shape cannot tell: give
        them as ``batch_shape=`` and ``event_shape=`` (the constructor's keywords). A
        subclass whose ``arg_constraints`` name its parameters (a rejection-sampled family)
        infers them from those parameters' shapes, as univariate families do.

        Example::

            >>> import ember.distributions as dist
            >>> dist.Rejector.infer_shapes(
            ...     log_scale=(3,), batch_shape=(3,), event_shape=(2,)
            ... )
            (torch.Size([3]), torch.Size([2]))
        """
        batch_shape = arg_shapes.pop("batch_shape", None)
        event_shape = arg_shapes.pop("event_shape", None)
        if batch_shape is not None and event_shape is not None:
            return torch.Size(batch_shape), torch.Size(event_shape)
        if cls.arg_constraints:
            return super().infer_shapes(**arg_shapes)
        raise ValueError(
            f"{cls.__name__}.infer_shapes: the shapes of a Rejector are those of its proposal "
            f"distribution, which the argument shapes {arg_shapes} do not determine; hint: pass "
            "batch_shape=... and event_shape=..."
        )

    @constraints.dependent_property
    def support(self):
        return self.propose.support

    def _propose(self, sample_shape):
        if not hasattr(self.propose, "log_prob"):  # a sampler function
            return self.propose(sample_shape)
        if self.has_rsample:
            return self.propose.rsample(sample_shape)
        return self.propose.sample(sample_shape)

    def rsample(self, sample_shape=_EMPTY) -> torch.Tensor:
        """Propose, accept each batch member with probability ``exp(log_prob_accept(x))``,
        and propose again for the rejected ones until every member is accepted."""
        sample_shape = torch.Size(sample_shape)
        x = self._propose(sample_shape)
        done = self._accept(x)
        event_ndim = len(self.event_shape)
        while not bool(done.all()):
            proposal = self._propose(sample_shape)
            accept = self._accept(proposal) & ~done
            x = torch.where(accept.reshape(accept.shape + (1,) * event_ndim), proposal, x)
            done = done | accept
        return x

    def sample(self, sample_shape=_EMPTY) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def _accept(self, x):
        log_a = self.log_prob_accept(x)
        if not isinstance(log_a, torch.Tensor):
            log_a = torch.as_tensor(log_a, dtype=x.dtype, device=x.device)
        log_a = log_a.detach()
        shape = x.shape[: x.dim() - len(self.event_shape)]
        u = torch.rand(shape, dtype=log_a.dtype, device=log_a.device)
        return u.log() < log_a.expand(shape)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.propose.log_prob(x) + self.log_prob_accept(x) - self.log_scale

    def score_parts(self, x: torch.Tensor) -> ScoreParts:
        """Log-density, plus the rejection correction ``log a(x) - log Z`` as score function.

        With a reparameterized proposal, ``x`` carries the pathwise gradient
        and the score function accounts for how the acceptance region moves
        with the parameters. Otherwise the whole log-density is the score.
        """
        log_a = self.log_prob_accept(x)
        log_prob = self.log_prob(x)
        if self.has_rsample:
            return ScoreParts(
                log_prob=log_prob, score_function=log_a - self.log_scale, entropy_term=log_prob
            )
        return ScoreParts(log_prob=log_prob, score_function=log_prob, entropy_term=0)
