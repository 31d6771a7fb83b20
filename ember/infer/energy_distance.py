"""EnergyDistance: a likelihood-free SVI loss, the posterior predictive energy distance.

With ``Z, Z' ~ q(z | x)`` drawn independently and ``X ~ p(x | Z)``,
``X' ~ p(x | Z')`` the posterior predictive draws at the observed sites, the
loss is

    ``E ||X - x||^beta - 1/2 E ||X - X'||^beta - prior_scale * E log p(Z)``

(Szekely and Rizzo 2003; Gneiting and Raftery 2007): a strictly proper scoring
rule for ``0 < beta < 2`` that needs samples of the likelihood but never its
density. The norm runs over every observed site together (each data element's
squared error weighted by its site's scale and mask).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ember import poutine
from ember.distributions.util import scale_and_mask
from ember.infer.util import (
    VECTORIZED_PARTICLES_PLATE,
    check_model_guide_match,
    check_site_shape,
    guess_max_plate_nesting,
    is_validation_enabled,
    particle_sum,
    vectorize,
)
from ember.poutine.trace_messenger import trace_run
from ember.poutine.util import prune_subsample_sites
from ember.util import validation_enabled, warn_if_nan

__all__ = ["EnergyDistance"]


class EnergyDistance:
    """Posterior predictive energy distance, with optional regularization by the prior.

    :param beta: the exponent, in (0, 2); small values suit heavy-tailed data.
    :param prior_scale: weight (>= 0) of the prior term ``-E log p(Z)``; the
        model's parameters are trained only when it is positive.
    :param num_particles: posterior draws per step (>= 2), in one vectorized pass.
    :param max_plate_nesting: plate dims of model and guide (found by tracing
        once when not given).

    Call the instance as ``loss(model, guide, *args, **kwargs)`` (e.g. as the
    ``loss`` of :class:`~ember.infer.svi.SVI`) for a differentiable estimate.
    The guide must be reparameterized, and so must the model's distributions at
    its observed sites (their samples are differentiated).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer import EnergyDistance
        >>> def model(data):
        ...     loc = ember.sample("loc", dist.Normal(0.0, 10.0))
        ...     with ember.plate("data", len(data)):
        ...         ember.sample("x", dist.Normal(loc, 1.0), obs=data)
        >>> def guide(data):
        ...     m = ember.param("m_energy_doc", torch.tensor(0.0))
        ...     ember.sample("loc", dist.Normal(m, 0.1))
        >>> loss = EnergyDistance(num_particles=8)(model, guide, torch.ones(5))
        >>> loss.requires_grad
        True
    """

    def __init__(
        self,
        beta: float = 1.0,
        prior_scale: float = 0.0,
        num_particles: int = 2,
        max_plate_nesting: float = math.inf,
    ):
        if not (isinstance(beta, (int, float)) and 0 < beta < 2):
            raise ValueError(f"EnergyDistance: expected beta in (0, 2), got {beta!r}")
        if not (isinstance(prior_scale, (int, float)) and prior_scale >= 0):
            raise ValueError(f"EnergyDistance: expected prior_scale >= 0, got {prior_scale!r}")
        if not (
            isinstance(num_particles, int)
            and not isinstance(num_particles, bool)
            and num_particles >= 2
        ):
            raise ValueError(
                f"EnergyDistance: expected num_particles >= 2 (pairs of draws are compared), "
                f"got {num_particles!r}"
            )
        self.beta = beta
        self.prior_scale = prior_scale
        self.num_particles = num_particles
        self.vectorize_particles = True
        self.max_plate_nesting = max_plate_nesting

    def _power(self, squared: torch.Tensor) -> torch.Tensor:
        """``squared ** (beta / 2)``: the ``beta`` power of a norm from its square."""
        if self.beta == 1:
            return squared.sqrt()
        return squared.pow(self.beta / 2)

    def _traces(self, model, guide, args, kwargs):
        """``(model_trace, guide_trace)`` of all particles; observed sites resampled."""
        if self.max_plate_nesting == math.inf:
            with validation_enabled(False):  # log-densities may be undefined here
                self.max_plate_nesting = guess_max_plate_nesting(model, guide, args, kwargs)
        dim = -int(self.max_plate_nesting) - 1
        n = self.num_particles
        guide_trace = trace_run(vectorize(guide, n, dim, VECTORIZED_PARTICLES_PLATE), args, kwargs)
        predictive = poutine.uncondition(
            poutine.replay(vectorize(model, n, dim, VECTORIZED_PARTICLES_PLATE), trace=guide_trace)
        )
        model_trace = trace_run(predictive, args, kwargs)
        for site in model_trace.nodes.values():
            if site["type"] == "sample" and (site["infer"] or {}).get("was_observed"):
                site["is_observed"] = True
        check = is_validation_enabled()
        if check:
            check_model_guide_match(model_trace, guide_trace, -dim)
        guide_trace = prune_subsample_sites(guide_trace)
        model_trace = prune_subsample_sites(model_trace)
        if check:
            for site in guide_trace.nodes.values():
                if site["type"] == "sample" and not getattr(site["fn"], "has_rsample", False):
                    raise ValueError(
                        "EnergyDistance requires fully reparametrized guides: guide site "
                        f"{site['name']!r} has a {type(site['fn']).__name__}"
                    )
            for site in model_trace.nodes.values():
                if site["type"] == "sample" and site["is_observed"]:
                    warn_if_nan(site["value"], site["name"])
                    if not getattr(site["fn"], "has_rsample", False):
                        raise ValueError(
                            "EnergyDistance requires reparametrized likelihoods: observed site "
                            f"{site['name']!r} has a {type(site['fn']).__name__}"
                        )
        if self.prior_scale > 0:
            model_trace.compute_log_prob(lambda name, site: not site["is_observed"])
            if check:
                for site in model_trace.nodes.values():
                    if site["type"] == "sample" and not site["is_observed"]:
                        check_site_shape(site, -dim)
        return model_trace, guide_trace, dim

    def __call__(self, model: Callable, guide: Callable, *args, **kwargs) -> torch.Tensor:
        """The differentiable loss estimate from ``num_particles`` posterior draws."""
        model_trace, _, dim = self._traces(model, guide, args, kwargs)
        n = self.num_particles
        observed = [
            site
            for site in model_trace.nodes.values()
            if site["type"] == "sample" and site["is_observed"]
        ]
        if not observed:
            raise ValueError(
                "EnergyDistance: Found no observations; the model must observe data "
                "(ember.sample(..., obs=data))"
            )
        error = 0.0  # per particle: sum of squared errors against the data
        spread = 0.0  # per pair of particles: sum of squared differences
        first, second = torch.ones(n, n).tril(-1).nonzero(as_tuple=True)
        for site in observed:
            data = site["infer"]["obs"]
            draws = site["value"]
            event_dim = site["fn"].event_dim
            batch_shape = data.shape[: data.dim() - event_dim]
            try:
                draws = draws.reshape((n, batch_shape.numel(), -1))
            except RuntimeError as e:
                raise ValueError(
                    f"EnergyDistance: site {site['name']!r}: the predictive draws of shape "
                    f"{tuple(site['value'].shape)} do not hold {n} particles of the data's "
                    f"shape {tuple(data.shape)}; the observed value must have the site's full "
                    "shape"
                ) from e
            flat_data = data.reshape(batch_shape.numel(), -1)
            scale, mask = site["scale"], site["mask"]
            if isinstance(scale, torch.Tensor) and scale.dim():
                scale = scale.expand(batch_shape).reshape(-1)
            if isinstance(mask, torch.Tensor) and mask.dim():
                mask = mask.expand(batch_shape).reshape(-1)
            error = error + scale_and_mask((draws - flat_data).pow(2).sum(-1), scale, mask).sum(-1)
            pair_diff = (draws[first] - draws[second]).pow(2).sum(-1)
            spread = spread + scale_and_mask(pair_diff, scale, mask).sum(-1)
        energy = self._power(error).mean() - 0.5 * self._power(spread).mean()
        loss = energy
        if self.prior_scale > 0:
            log_prior = 0.0
            for site in model_trace.nodes.values():
                if site["type"] == "sample" and not site["is_observed"]:
                    log_prior = log_prior + particle_sum(site["log_prob"], dim)
            if isinstance(log_prior, torch.Tensor) and log_prior.dim():
                log_prior = log_prior.mean()  # E_Z log p(Z) over the particles
            loss = loss - self.prior_scale * log_prior
        warn_if_nan(loss, "loss")
        return loss

    def loss(self, model: Callable, guide: Callable, *args, **kwargs) -> float:
        """Not available: call the instance for the (differentiable) loss estimate."""
        raise NotImplementedError(
            "EnergyDistance implements only its differentiable estimate: call "
            "EnergyDistance(...)(model, guide, *args, **kwargs)"
        )
