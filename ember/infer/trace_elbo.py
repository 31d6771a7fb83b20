"""Trace_ELBO: the standard Monte Carlo ELBO estimator.

Reparameterized guide sites contribute pathwise gradients; every other guide
site contributes a score-function (REINFORCE) term whose cost is the whole
particle's ELBO. For lower-variance score-function terms use
:class:`~ember.infer.tracegraph_elbo.TraceGraph_ELBO`.
"""

from __future__ import annotations

from ember.infer.elbo import ELBO
from ember.infer.util import is_identically_zero, particle_sum

__all__ = ["Trace_ELBO"]


def _add(total, term):
    """``total + term`` where ``total`` None means nothing yet (no ``0.0 + tensor`` op)."""
    return term if total is None else total + term


def _trace_elbo_terms(model_trace, guide_trace, particle_dim):
    """``(elbo, surrogate_elbo)`` of one trace pair, one entry per particle.

    With ``particle_dim=None`` both are scalars. The surrogate's gradient is an
    unbiased estimate of the ELBO's gradient: pathwise for reparameterized
    sites, ``elbo.detach() * score_function`` for the others. When every guide
    site's entropy term is its log-density (all reparameterized), the surrogate
    before the score-function term *is* the ELBO, and the same tensor is returned.
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
    score = None
    for site in guide_trace.nodes.values():
        if site["type"] != "sample" or site["is_observed"]:
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
            score = _add(score, particle_sum(sf, particle_dim))
    if log_p is None:
        log_p = 0.0
    elbo = log_p if log_q is None else log_p - log_q
    if entropy_is_log_q:
        surrogate = elbo
    else:
        surrogate = log_p if entropy is None else log_p - entropy
    if score is not None:
        surrogate = surrogate + elbo.detach() * score
    return elbo, surrogate


class Trace_ELBO(ELBO):
    """The Monte Carlo ELBO, from guide traces with the model replayed against them.

    ``loss`` estimates ``-E_q[log p(x, z) - log q(z)]`` from ``num_particles``
    guide samples; ``loss_and_grads`` also runs backward on a surrogate whose
    gradient is unbiased for the loss's gradient. With
    ``vectorize_particles=True`` all particles are drawn in one pass inside a
    plate at ``dim=-(max_plate_nesting + 1)`` (found by tracing once when not
    given). With validation on, a latent model site that the guide does not
    sample is an error naming the site.

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

    _reports_params = True

    def _loss_tensors(self, model, guide, args, kwargs, backward, differentiable=False):
        return self._mean_over_particles(
            _trace_elbo_terms, model, guide, args, kwargs, backward, differentiable
        )
