"""TraceMeanField_ELBO: the ELBO with analytic KL divergences where they are known.

For a latent site whose guide and model distributions have a registered
``kl_divergence``, the Monte Carlo term ``log p(z) - log q(z)`` is replaced by
``-KL(q || p)``, which has lower variance. Sites without a registered KL keep
the Monte Carlo term, so the estimator applies to any model and guide; it is
exact in expectation when the guide is mean-field (its latents independent of
one another given the data). Non-reparameterized guide sites get the same
plate-aware score-function terms as in :class:`~ember.infer.trace_elbo.Trace_ELBO`.
"""

from __future__ import annotations

import warnings

import torch
from torch.distributions import kl_divergence

from ember.distributions.util import scale_and_mask
from ember.infer.elbo import ParticleEstimate
from ember.infer.trace_elbo import Trace_ELBO, score_function_surrogate
from ember.infer.util import (
    MultiFrameTensor,
    is_identically_zero,
    is_validation_enabled,
    particle_sum,
)

__all__ = ["JitTraceMeanField_ELBO", "TraceMeanField_ELBO"]


def _analytic_kl(guide_site, model_site):
    """``KL(q || p)`` at one site, scaled and masked like the model site, or ``None``."""
    try:
        kl = kl_divergence(guide_site["fn"], model_site["fn"])
    except NotImplementedError:
        return None
    return scale_and_mask(kl, model_site.get("scale", 1.0), model_site.get("mask"))


def _check_mean_field_order(model_trace, guide_trace) -> None:
    """Warn unless the sites model and guide share are sampled in the same order.

    That order is sufficient (not necessary) for the guide to respect the
    mean-field structure the analytic KL terms assume.
    """
    model_order = [
        n for n, s in model_trace.nodes.items() if s["type"] == "sample" and n in guide_trace.nodes
    ]
    guide_order = [
        n for n, s in guide_trace.nodes.items() if s["type"] == "sample" and n in model_trace.nodes
    ]
    if model_order != guide_order:
        warnings.warn(
            "Failed to verify mean field restriction on the guide: the model samples "
            f"{model_order} in this order, the guide {guide_order}. A guide whose latents "
            "depend on each other makes the analytic KL terms wrong; sample the sites in "
            "the model's order to confirm the guide is mean-field (and silence this warning).",
            UserWarning,
            stacklevel=5,
        )


class TraceMeanField_ELBO(Trace_ELBO):
    """Monte Carlo ELBO that uses analytic ``KL(q(z) || p(z))`` wherever one is registered.

    Arguments as for :class:`~ember.infer.elbo.ELBO`. Observed sites contribute
    their log-likelihood; latent sites with a known KL contribute ``-KL``; other
    latents contribute ``log p - log q`` as in
    :class:`~ember.infer.trace_elbo.Trace_ELBO`. Non-reparameterized guide sites
    add a score-function term. With validation on, model and guide sites
    sampled in different orders give a warning (the guide may not be mean-field).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer import TraceMeanField_ELBO
        >>> def model():
        ...     ember.sample("z", dist.Normal(0.0, 1.0))
        >>> def guide():
        ...     ember.sample("z", dist.Normal(1.0, 1.0))
        >>> TraceMeanField_ELBO().loss(model, guide)  # KL(N(1,1) || N(0,1)) = 0.5
        0.5
    """

    def particle_elbo(self, model, guide, args, kwargs, particle_dim) -> ParticleEstimate:
        model_trace, guide_trace = self.get_trace_pair(model, guide, args, kwargs, particle_dim)
        if is_validation_enabled():
            _check_mean_field_order(model_trace, guide_trace)
        elbo = 0.0
        surrogate = 0.0
        costs = []  # (plates, plus, minus) of every site's term, for the score-function terms
        scored = []
        guide_nodes = guide_trace.nodes
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample":
                continue
            stack = site["cond_indep_stack"]
            if site["is_observed"] or name not in guide_nodes:
                lp = site["log_prob"]
                term = particle_sum(lp, particle_dim)
                elbo = elbo + term
                surrogate = surrogate + term
                costs.append((stack, lp, None))
                continue
            guide_site = guide_nodes[name]
            lq, sf, ent = guide_site["score_parts"]
            if not is_identically_zero(sf):
                scored.append(guide_site)
            kl = _analytic_kl(guide_site, site)
            if kl is not None:
                term = particle_sum(kl, particle_dim)
                elbo = elbo - term
                surrogate = surrogate - term
                costs.append((stack, None, kl))
                continue
            lp = site["log_prob"]
            lp_sum = particle_sum(lp, particle_dim)
            elbo = elbo + lp_sum - particle_sum(lq, particle_dim)
            surrogate = surrogate + lp_sum
            if not is_identically_zero(ent):
                surrogate = surrogate - particle_sum(ent, particle_dim)
            costs.append((stack, lp, lq))
        # guide-only sites (auxiliary latents, observed sites such as a factor) enter log q
        for name, guide_site in guide_nodes.items():
            if guide_site["type"] != "sample":
                continue
            if name in model_trace.nodes:
                continue
            lq, sf, ent = guide_site["score_parts"]
            elbo = elbo - particle_sum(lq, particle_dim)
            if not is_identically_zero(ent):
                surrogate = surrogate - particle_sum(ent, particle_dim)
            if not is_identically_zero(sf):
                scored.append(guide_site)
            costs.append((guide_site["cond_indep_stack"], None, lq))
        if scored and torch.is_grad_enabled():
            cost = MultiFrameTensor()
            with torch.no_grad():
                for stack, plus, minus in costs:
                    cost.add(
                        (stack, (0.0 if plus is None else plus) - (0.0 if minus is None else minus))
                    )
            surrogate = surrogate + score_function_surrogate(scored, cost, particle_dim)
        return ParticleEstimate(elbo, surrogate, (model_trace, guide_trace))


class JitTraceMeanField_ELBO(TraceMeanField_ELBO):
    """:class:`TraceMeanField_ELBO` under Pyro's JIT name. ember runs every loss eagerly (its
    eager step costs less than a JIT-compiled step in Pyro), so this is
    :class:`TraceMeanField_ELBO` with the same results; Pyro's ``ignore_jit_warnings`` and
    ``jit_options`` are accepted and have no effect.

    Example::

        >>> from ember.infer import JitTraceMeanField_ELBO, TraceMeanField_ELBO
        >>> isinstance(JitTraceMeanField_ELBO(max_plate_nesting=1), TraceMeanField_ELBO)
        True
    """
