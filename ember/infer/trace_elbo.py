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


def _trace_elbo_terms(model_trace, guide_trace, particle_dim):
    """``(elbo, surrogate_elbo)`` of one trace pair, one entry per particle.

    With ``particle_dim=None`` both are scalars. The surrogate's gradient is an
    unbiased estimate of the ELBO's gradient: pathwise for reparameterized
    sites, ``elbo.detach() * score_function`` for the others.
    """
    log_p = 0.0
    for site in model_trace.nodes.values():
        if site["type"] == "sample":
            if particle_dim is None:
                log_p = log_p + site["log_prob_sum"]
            else:
                log_p = log_p + particle_sum(site["log_prob"], particle_dim)
    log_q = 0.0
    entropy = 0.0
    score = 0.0
    for site in guide_trace.nodes.values():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        lp, sf, ent = site["score_parts"]
        if particle_dim is None:
            lp_sum = site["log_prob_sum"]
            log_q = log_q + lp_sum
            if ent is lp:
                entropy = entropy + lp_sum
            elif not is_identically_zero(ent):
                entropy = entropy + ent.sum()
        else:
            log_q = log_q + particle_sum(lp, particle_dim)
            if not is_identically_zero(ent):
                entropy = entropy + particle_sum(ent, particle_dim)
        if not is_identically_zero(sf):
            score = score + particle_sum(sf, particle_dim)
    elbo = log_p - log_q
    surrogate = log_p - entropy
    if not is_identically_zero(score):
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
        loss = 0.0
        surrogate_loss = 0.0
        particle_dim = None
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            particle_dim = self._particle_dim()
            elbo, surrogate = _trace_elbo_terms(model_trace, guide_trace, particle_dim)
            loss = loss - elbo
            surrogate_loss = surrogate_loss - surrogate
        if particle_dim is not None:
            # one vectorized pass: per-particle entries (or a scalar shared by all)
            loss = loss.mean() if hasattr(loss, "mean") else loss
            surrogate_loss = (
                surrogate_loss.mean() if hasattr(surrogate_loss, "mean") else surrogate_loss
            )
        elif self.num_particles > 1:
            loss = loss / self.num_particles
            surrogate_loss = surrogate_loss / self.num_particles
        return self._finish(loss, surrogate_loss, backward, differentiable)
