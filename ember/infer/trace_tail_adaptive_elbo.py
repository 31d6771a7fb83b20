"""TraceTailAdaptive_ELBO: gradients of the tail-adaptive f-divergence (Wang, Liu and Liu 2018).

With ``K`` vectorized particles ranked by their log-ratio ``log p - log q``
(rank 1 for the smallest), particle ``k`` gets the weight
``rank_k ** beta / sum_j rank_j ** beta`` (``beta = tail_adaptive_beta < 0``)
and the surrogate is the weighted sum of the log-ratios: a gradient estimate
of an f-divergence whose tail adapts to the weights' distribution. The
divergence itself is not computed, so :meth:`TraceTailAdaptive_ELBO.loss` is
not available; ``loss_and_grads`` returns the Monte Carlo ELBO of the same
particles (negated) for monitoring. Every guide site must be reparameterized.
"""

from __future__ import annotations

import warnings

import torch

from ember.infer.elbo import ParticleEstimate
from ember.infer.trace_elbo import Trace_ELBO
from ember.infer.util import check_fully_reparametrized, is_validation_enabled, particle_sum

__all__ = ["TraceTailAdaptive_ELBO"]


class TraceTailAdaptive_ELBO(Trace_ELBO):
    """Tail-adaptive f-divergence gradients; needs ``vectorize_particles=True``.

    Arguments as for :class:`~ember.infer.elbo.ELBO`; ``tail_adaptive_beta``
    (default -1) is the exponent of the rank weights. With ``num_particles=1``
    the gradient is :class:`~ember.infer.trace_elbo.Trace_ELBO`'s (a warning
    says so).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer import TraceTailAdaptive_ELBO
        >>> def model():
        ...     ember.sample("z", dist.Normal(0.0, 1.0))
        >>> def guide():
        ...     loc = ember.param("loc_tail_doc", torch.tensor(0.5))
        ...     ember.sample("z", dist.Normal(loc, 1.0))
        >>> elbo = TraceTailAdaptive_ELBO(num_particles=10, vectorize_particles=True)
        >>> _ = elbo.loss_and_grads(model, guide)
        >>> ember.param("loc_tail_doc").grad is not None
        True
    """

    def loss(self, model, guide, *args, **kwargs) -> float:
        """Not available: the tail-adaptive divergence is not computed, only its gradient."""
        raise NotImplementedError(
            "TraceTailAdaptive_ELBO computes gradients only; its loss (the tail-adaptive "
            "f-divergence) is not implemented. Monitor convergence with another estimator, "
            "e.g. Trace_ELBO().loss(model, guide)"
        )

    def particle_elbo(self, model, guide, args, kwargs, particle_dim) -> ParticleEstimate:
        if not self.vectorize_particles:
            raise NotImplementedError(
                "TraceTailAdaptive_ELBO is only implemented for vectorize_particles=True "
                "(the particles are ranked against each other)"
            )
        if particle_dim is None:
            warnings.warn(
                "TraceTailAdaptive_ELBO with num_particles=1 has Trace_ELBO's gradient; "
                "increase num_particles for an adaptive f-divergence",
                UserWarning,
                stacklevel=5,
            )
        model_trace, guide_trace = self.get_trace_pair(model, guide, args, kwargs, particle_dim)
        log_p = 0.0
        for site in model_trace.nodes.values():
            if site["type"] == "sample":
                log_p = log_p + particle_sum(site["log_prob"], particle_dim)
        log_q = 0.0
        for site in guide_trace.nodes.values():
            if site["type"] == "sample" and not site["is_observed"]:
                if is_validation_enabled():
                    check_fully_reparametrized(site)
                log_q = log_q + particle_sum(site["log_prob"], particle_dim)
        log_ratio = log_p - log_q
        traces = (model_trace, guide_trace)
        if not (isinstance(log_ratio, torch.Tensor) and log_ratio.dim()):
            return ParticleEstimate(log_ratio, log_ratio, traces)
        # rank 1 for the smallest log-ratio; weight rank ** beta, normalized
        with torch.no_grad():
            order = log_ratio.argsort()
            ranks = torch.empty_like(log_ratio)
            ranks[order] = torch.arange(
                1, log_ratio.numel() + 1, dtype=log_ratio.dtype, device=log_ratio.device
            )
            weights = ranks.pow(self.tail_adaptive_beta)
            weights = weights / weights.sum()
        # per particle, so that the particles' mean is the weighted sum
        surrogate = log_ratio * (weights * log_ratio.numel())
        return ParticleEstimate(log_ratio, surrogate, traces)
