"""Trace_ELBO: the standard Monte Carlo ELBO estimator.

Reparameterized guide sites contribute pathwise gradients; every other guide
site ``z`` contributes a score-function (REINFORCE) term
``score(z) * cost``, where the cost is the particle's ``log p - log q`` summed
down to ``z``'s own plates: each element of a plate around ``z`` sees the
costs of its own element and the whole of the costs outside that plate, not
the costs of the other elements (which do not depend on it). The estimator is
unbiased and its variance does not grow with the size of the plates. For
finer Rao-Blackwellization along the trace's dependencies use
:class:`~ember.infer.tracegraph_elbo.TraceGraph_ELBO`.
"""

from __future__ import annotations

from typing import Dict, List

import torch

from ember.infer.elbo import ELBO, ParticleEstimate
from ember.infer.util import MultiFrameTensor, is_identically_zero, particle_sum

__all__ = [
    "JitTrace_ELBO",
    "Trace_ELBO",
    "score_function_surrogate",
    "trace_pair_costs",
    "trace_pair_elbo",
]


def _add(total, term):
    """``total + term`` where ``total`` None means nothing yet (no ``0.0 + tensor`` op)."""
    return term if total is None else total + term


def trace_pair_costs(model_trace, guide_trace) -> MultiFrameTensor:
    """The detached costs ``log p - log q`` of a trace pair, grouped by plates.

    Every model sample site contributes its ``log_prob`` and every guide sample
    site (latent or observed, e.g. a guide's ``factor``) its ``-log_prob`` (model
    and guide terms of one site are combined first). The result, summed to a site's plates
    (:meth:`~ember.infer.util.MultiFrameTensor.sum_to`), is the cost its
    score-function term is weighted by.
    """
    costs = MultiFrameTensor()
    guide_nodes = guide_trace.nodes
    with torch.no_grad():
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample":
                continue
            term = site["log_prob"]
            guide_site = guide_nodes.get(name)
            if guide_site is not None and guide_site["type"] == "sample":
                term = term - guide_site["log_prob"]
            costs.add((site["cond_indep_stack"], term))
        for name, site in guide_nodes.items():
            if site["type"] != "sample" or name in model_trace.nodes:
                continue
            costs.add((site["cond_indep_stack"], -site["log_prob"]))
    return costs


def score_function_surrogate(scored_sites, costs: MultiFrameTensor, particle_dim):
    """``sum_z score(z) * cost(z)`` over the non-reparameterized guide sites ``scored_sites``.

    ``cost(z)`` is ``costs`` summed to ``z``'s plates, so each plate element's
    score term is weighted by the costs that depend on it. Sites in the same
    plates share one cost (computed once). Returns one entry per particle
    (``particle_sum``), or a scalar with ``particle_dim=None``.
    """
    by_plates: Dict[frozenset, List] = {}
    for site in scored_sites:
        key = frozenset(f for f in site["cond_indep_stack"] if f.dim is not None)
        by_plates.setdefault(key, []).append(site["score_parts"].score_function)
    total = None
    for frames, scores in by_plates.items():
        cost = costs.sum_to(frames)
        score = scores[0]
        for s in scores[1:]:
            score = score + s
        total = _add(total, particle_sum(score * cost, particle_dim))
    return total


def trace_pair_elbo(model_trace, guide_trace, particle_dim=None):
    """``(elbo, surrogate_elbo)`` of one trace pair, one entry per particle.

    With ``particle_dim=None`` both are scalars. The surrogate's gradient is an
    unbiased estimate of the ELBO's gradient: pathwise for reparameterized
    sites, a plate-aware score-function term (:func:`score_function_surrogate`)
    for the others. When every guide site's entropy term is its log-density
    (all reparameterized), the surrogate *is* the ELBO and the same tensor is
    returned; so it is under ``torch.no_grad()``, when no surrogate is needed.
    """
    log_p = None
    for site in model_trace.nodes.values():
        if site["type"] == "sample":
            if particle_dim is None:
                log_p = _add(log_p, site["log_prob_sum"])
            else:
                log_p = _add(log_p, particle_sum(site["log_prob"], particle_dim))
    log_q = None
    entropy = None
    entropy_is_log_q = True
    scored = []
    for site in guide_trace.nodes.values():
        if site["type"] != "sample":  # observed guide sites (a factor) enter log q too
            continue
        lp, sf, ent = site["score_parts"]
        if particle_dim is None:
            lp_sum = site["log_prob_sum"]
        else:
            lp_sum = particle_sum(lp, particle_dim)
        log_q = _add(log_q, lp_sum)
        if ent is lp:
            entropy = _add(entropy, lp_sum)
        else:
            entropy_is_log_q = False
            if not is_identically_zero(ent):
                ent_sum = ent.sum() if particle_dim is None else particle_sum(ent, particle_dim)
                entropy = _add(entropy, ent_sum)
        if not is_identically_zero(sf):
            scored.append(site)
    if log_p is None:
        log_p = 0.0
    elbo = log_p if log_q is None else log_p - log_q
    if entropy_is_log_q or not torch.is_grad_enabled():
        surrogate = elbo
    else:
        surrogate = log_p if entropy is None else log_p - entropy
    if scored and torch.is_grad_enabled():
        costs = trace_pair_costs(model_trace, guide_trace)
        surrogate = surrogate + score_function_surrogate(scored, costs, particle_dim)
    return elbo, surrogate


class Trace_ELBO(ELBO):
    """The Monte Carlo ELBO, from guide traces with the model replayed against them.

    ``loss`` estimates ``-E_q[log p(x, z) - log q(z)]`` from ``num_particles``
    guide samples; ``loss_and_grads`` also runs backward on a surrogate whose
    gradient is unbiased for the loss's gradient (see the module docs for the
    score-function terms). With ``vectorize_particles=True`` all particles are
    drawn in one pass inside a plate at ``dim=-(max_plate_nesting + 1)`` (found
    by tracing once when not given). With validation on, a latent model site
    that the guide does not sample is an error naming the site, and guide
    sites configured for enumeration give a warning (they are sampled here).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer import Trace_ELBO
        >>> def model():
        ...     ember.sample("z", dist.Normal(0.0, 1.0))
        >>> def guide():
        ...     ember.sample("z", dist.Normal(0.0, 1.0))
        >>> Trace_ELBO(num_particles=3).loss(model, guide)  # guide equals the posterior
        0.0
    """

    def particle_elbo(self, model, guide, args, kwargs, particle_dim) -> ParticleEstimate:
        model_trace, guide_trace = self.get_trace_pair(model, guide, args, kwargs, particle_dim)
        elbo, surrogate = trace_pair_elbo(model_trace, guide_trace, particle_dim)
        return ParticleEstimate(elbo, surrogate, (model_trace, guide_trace))


class JitTrace_ELBO(Trace_ELBO):
    """:class:`Trace_ELBO` under Pyro's JIT name. ember runs every loss eagerly (its
    eager step costs less than a JIT-compiled step in Pyro), so this is
    :class:`Trace_ELBO` with the same results; Pyro's ``ignore_jit_warnings`` and
    ``jit_options`` are accepted and have no effect.

    Example::

        >>> from ember.infer import JitTrace_ELBO, Trace_ELBO
        >>> isinstance(JitTrace_ELBO(max_plate_nesting=1), Trace_ELBO)
        True
    """
