"""TraceMeanField_ELBO: the ELBO with analytic KL divergences where they are known.

For a latent site whose guide and model distributions have a registered
``kl_divergence``, the Monte Carlo term ``log p(z) - log q(z)`` is replaced by
``-KL(q || p)``, which has lower variance. Sites without a registered KL keep
the Monte Carlo term, so the estimator applies to any model and guide; it is
exact in expectation when the guide is mean-field (its latents independent of
one another given the data).
"""

from __future__ import annotations

from torch.distributions import kl_divergence

from ember.distributions.util import scale_and_mask
from ember.infer.elbo import ELBO
from ember.infer.util import is_identically_zero, particle_sum

__all__ = ["TraceMeanField_ELBO"]


def _analytic_kl(guide_site, model_site):
    """``KL(q || p)`` at one site, scaled and masked like the model site, or ``None``."""
    try:
        kl = kl_divergence(guide_site["fn"], model_site["fn"])
    except NotImplementedError:
        return None
    return scale_and_mask(kl, model_site.get("scale", 1.0), model_site.get("mask"))


class TraceMeanField_ELBO(ELBO):
    """Monte Carlo ELBO that uses analytic ``KL(q(z) || p(z))`` wherever one is registered.

    Arguments as for :class:`~ember.infer.elbo.ELBO`. Observed sites contribute
    their log-likelihood; latent sites with a known KL contribute ``-KL``; other
    latents contribute ``log p - log q`` as in
    :class:`~ember.infer.trace_elbo.Trace_ELBO`. Non-reparameterized guide sites
    add a score-function term.

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

    _reports_params = True

    def _particle(self, model_trace, guide_trace, particle_dim):
        elbo = 0.0
        surrogate = 0.0
        score = 0.0
        guide_nodes = guide_trace.nodes
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample":
                continue
            if site["is_observed"] or name not in guide_nodes:
                lp = particle_sum(site["log_prob"], particle_dim)
                elbo = elbo + lp
                surrogate = surrogate + lp
                continue
            guide_site = guide_nodes[name]
            lq, sf, ent = guide_site["score_parts"]
            if not is_identically_zero(sf):
                score = score + particle_sum(sf, particle_dim)
            kl = _analytic_kl(guide_site, site)
            if kl is not None:
                term = particle_sum(kl, particle_dim)
                elbo = elbo - term
                surrogate = surrogate - term
                continue
            lp = particle_sum(site["log_prob"], particle_dim)
            elbo = elbo + lp - particle_sum(lq, particle_dim)
            surrogate = surrogate + lp
            if not is_identically_zero(ent):
                surrogate = surrogate - particle_sum(ent, particle_dim)
        # guide-only (auxiliary) latents still enter log q
        for name, guide_site in guide_nodes.items():
            if guide_site["type"] != "sample" or guide_site["is_observed"]:
                continue
            if name in model_trace.nodes:
                continue
            lq, sf, ent = guide_site["score_parts"]
            elbo = elbo - particle_sum(lq, particle_dim)
            if not is_identically_zero(ent):
                surrogate = surrogate - particle_sum(ent, particle_dim)
            if not is_identically_zero(sf):
                score = score + particle_sum(sf, particle_dim)
        if not is_identically_zero(score):
            surrogate = surrogate + elbo.detach() * score
        return elbo, surrogate

    def _loss_tensors(self, model, guide, args, kwargs, backward, differentiable=False):
        return self._mean_over_particles(
            self._particle, model, guide, args, kwargs, backward, differentiable
        )
