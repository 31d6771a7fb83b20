"""Tensor Monte Carlo: an estimate of the log marginal likelihood from many draws
of every latent site at once, combined by plated variable elimination.

Each latent site marked ``infer={"enumerate": "parallel", "num_samples": K}``
(e.g. by :func:`~ember.infer.enum.config_enumerate` with ``num_samples``) gets
``K`` draws along an enumeration dim of its own, from the guide when the guide
has the site and from the model's prior otherwise. Sites of dependent sites are
paired by the ``tmc`` strategy (see :func:`~ember.poutine.enum_messenger.thin_draws`).
Sites marked for enumeration without ``num_samples`` are summed exactly. The
estimate is

    ``log sum over all draws and values of prod(p / (K q))``,

with plates multiplied out, computed by
:func:`~ember.ops.contract.contract_tree`: every draw of a site is weighed
against every draw of the sites it depends on (Aitchison, 2018, "Tensor Monte
Carlo: particle methods for the GPU era"). ``q`` is the density a draw was
made from: the site's distribution averaged over the draws of the sites it
depends on. Its expectation is the marginal likelihood, and it converges to
the log marginal likelihood as ``K`` grows; with every site enumerated exactly
it is the log marginal likelihood.
Draws that are not reparameterized carry a score-function term (zero in value)
so that the estimate's gradient is unbiased for the gradient of its mean.
"""

from __future__ import annotations

import math
import warnings
from typing import Dict, FrozenSet, List

from ember import poutine
from ember.infer.elbo import ELBO, ParticleEstimate
from ember.infer.enum_factors import (
    dependent_site_factor,
    enumerated_site_factor,
    is_enumerated,
    monte_carlo_weight,
    site_log_factor,
    site_log_prob,
)
from ember.infer.util import check_model_guide_match
from ember.ops.contract import LogFactor, contract_tree, total
from ember.poutine.enum_messenger import TMC_POPULATION_KEY, EnumMessenger
from ember.poutine.guide import drop_model_observations
from ember.poutine.messenger import Messenger
from ember.poutine.subsample_messenger import site_is_subsample
from ember.util import is_validation_enabled

__all__ = ["TMCPopulationMessenger", "TraceTMC_ELBO", "proposal_weight", "tmc_log_factors"]


def _score_factor(site, max_plate_nesting: int):
    """``log q - log q.detach()`` (zero in value) of a single draw that is not
    reparameterized, for an unbiased gradient; None for a reparameterized draw."""
    if site["fn"].has_rsample:
        return None
    log_prob = site_log_prob(site)
    return site_log_factor(site, max_plate_nesting, log_prob=log_prob - log_prob.detach())


def proposal_weight(site, max_plate_nesting: int) -> LogFactor:
    """The importance weight ``1 / (K q(x))`` of each of the ``K`` draws of ``site``.

    ``q`` is the density the draws were made from: the site's distribution
    averaged uniformly over the values of the enumerated sites it depends on
    (whose dims its log-density has) where each draw was made given one of them
    (the ``"diagonal"`` and ``"mixture"`` strategies), and the site's own
    conditional where draws were made for every value (``"full"``).
    Draws that are not reparameterized also carry the score function of ``q``
    (zero in value), see :func:`~ember.infer.enum_factors.monte_carlo_weight`.
    """
    f = site_log_factor(site, max_plate_nesting)
    own = site["name"]
    # the enumeration dims the draws do not vary along: each draw was made given one
    # value there (its proposal mixes them); along the others it was made for each
    value, event_dim = site["value"], site["fn"].event_dim
    position = {name: dim for dim, name in (site["infer"].get("_enum_dims") or {}).items()}
    batch = value.dim() - event_dim

    def mixed(d):
        dim = position.get(d)
        return dim is None or batch < -dim or value.shape[batch + dim] == 1

    parents = tuple(i for i, d in enumerate(f.dims) if d not in f.ordinal and d != own and mixed(d))
    log_q = f.tensor
    if parents:
        count = math.prod(log_q.shape[i] for i in parents)
        log_q = log_q.logsumexp(parents) - math.log(count)
    dims = tuple(d for i, d in enumerate(f.dims) if i not in parents)
    num_samples = site["infer"]["_enum_num_samples"]
    weight = monte_carlo_weight(log_q, num_samples, bool(site["fn"].has_rsample)) - log_q
    return LogFactor(weight, dims, f.ordinal, own, f.scale)


class TMCPopulationMessenger(Messenger):
    """Mark the sites drawn ``num_samples`` times for Tensor Monte Carlo: their draws
    form one population of that size (see :func:`~ember.poutine.enum_messenger.thin_draws`).
    Apply it inside the enumeration handler."""

    def _pyro_sample(self, msg) -> None:
        infer = msg["infer"]
        if infer and infer.get("num_samples") is not None and not msg["is_observed"]:
            msg["infer"] = dict(infer, **{TMC_POPULATION_KEY: True})


def tmc_log_factors(model_trace, guide_trace, max_plate_nesting: int):
    """``(factors, var_ordinals)`` whose full contraction is the log TMC estimate.

    Every site drawn ``K`` times (in the guide, or in the model from its prior
    when the guide does not have it) gives its :func:`proposal_weight`; every
    model site gives ``log p`` given the values of the sites it depends on, so
    that each draw is weighed by ``p / (K q)``. Sites enumerated exactly are
    summed with weight ``p`` (a guide's ``q`` cancels). A single guide draw gives
    ``-log q`` and, if not reparameterized, its score-function term.
    """
    factors: List[LogFactor] = []
    var_ordinals: Dict[str, FrozenSet[str]] = {}
    for site in guide_trace.nodes.values():
        if site["type"] != "sample" or site["is_observed"] or site_is_subsample(site):
            continue
        infer = site["infer"] or {}
        if "_enum_num_samples" in infer:
            weight = proposal_weight(site, max_plate_nesting)
            var_ordinals[site["name"]] = weight.ordinal
            factors.append(weight)
        elif is_enumerated(site):  # summed exactly: q / q
            log_q = enumerated_site_factor(site, max_plate_nesting)
            var_ordinals[site["name"]] = log_q.ordinal
            factors.extend([log_q, log_q._replace(tensor=-log_q.tensor)])
        else:
            log_q = site_log_factor(site, max_plate_nesting)
            factors.append(log_q._replace(tensor=-log_q.tensor))
            score = _score_factor(site, max_plate_nesting)
            if score is not None:
                factors.append(score)
    summed = set(var_ordinals)
    model_only = []
    for site in model_trace.nodes.values():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        name = site["name"]
        infer = site["infer"] or {}
        own = name not in guide_trace.nodes and not site["is_observed"]
        if own and "_enum_num_samples" in infer:
            f = site_log_factor(site, max_plate_nesting)
            var_ordinals[name] = f.ordinal
            factors.extend([f, proposal_weight(site, max_plate_nesting)])
        elif own and is_enumerated(site):
            f = enumerated_site_factor(site, max_plate_nesting)
            var_ordinals[name] = f.ordinal
            factors.append(f)
        else:
            factors.append(dependent_site_factor(site, max_plate_nesting, summed))
            if own:
                model_only.append(site)
        summed = set(var_ordinals)
    for site in model_only:  # a latent site only the model has, drawn once
        score = _score_factor(site, max_plate_nesting)
        if score is not None:
            factors.append(score)
    return factors, var_ordinals


class TraceTMC_ELBO(ELBO):
    """Tensor Monte Carlo estimate of the log evidence (a bound by Jensen), as a loss.

    Mark the sites to draw many times with
    ``infer={"enumerate": "parallel", "num_samples": K}`` (in the guide, or in
    the model for sites the guide does not have, which are then drawn from the
    prior), or use :func:`~ember.infer.enum.config_enumerate`. Sites marked for
    parallel enumeration without ``num_samples`` are summed exactly. As for
    :class:`~ember.infer.traceenum_elbo.TraceEnum_ELBO`, a site outside a plate
    must not depend on sites inside it.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer import config_enumerate
        >>> @config_enumerate(num_samples=2000)
        ... def model():
        ...     z = ember.sample("z", dist.Normal(0.0, 1.0))
        ...     ember.sample("x", dist.Normal(z, 1.0), obs=torch.tensor(0.5))
        >>> _ = ember.set_rng_seed(0)
        >>> loss = TraceTMC_ELBO(max_plate_nesting=0).loss(model, lambda: None)
        >>> exact = -dist.Normal(0.0, 2.0**0.5).log_prob(torch.tensor(0.5))
        >>> abs(loss - float(exact)) < 0.05
        True
    """

    def particle_elbo(self, model, guide, args, kwargs, particle_dim) -> ParticleEstimate:
        if self.max_plate_nesting == math.inf:
            self._guess_max_plate_nesting(model, guide, args, kwargs)
        max_plate_nesting = int(self.max_plate_nesting) + (particle_dim is not None)
        guide_trace = poutine.trace(
            EnumMessenger(first_available_dim=-1 - max_plate_nesting)(
                TMCPopulationMessenger()(guide)
            )
        ).get_trace(*args, **kwargs)
        drop_model_observations(guide, guide_trace)
        reserved = {
            name: site["infer"]["_enumerate_dim"]
            for name, site in guide_trace.nodes.items()
            if site["type"] == "sample" and is_enumerated(site)
        }
        first = min(list(reserved.values()) + [-max_plate_nesting]) - 1
        model_trace = poutine.trace(
            EnumMessenger(first_available_dim=first, reserved=reserved)(
                TMCPopulationMessenger()(poutine.replay(model, trace=guide_trace))
            )
        ).get_trace(*args, **kwargs)
        traces = [guide_trace, model_trace]
        if is_validation_enabled():
            check_model_guide_match(model_trace, guide_trace, max_plate_nesting)
            if self.strict_enumeration_warning and not any(
                site["type"] == "sample" and (site["infer"] or {}).get("enumerate")
                for trace in traces
                for site in trace.nodes.values()
            ):
                warnings.warn(
                    "TraceTMC_ELBO found no sample sites configured for enumeration. If you "
                    "want to enumerate sites, you need to @config_enumerate or set "
                    'infer={"enumerate": "parallel"}; otherwise consider using Trace_ELBO',
                    UserWarning,
                    stacklevel=4,
                )
        factors, var_ordinals = tmc_log_factors(model_trace, guide_trace, max_plate_nesting)
        if not factors:
            return ParticleEstimate(0.0, 0.0, traces)
        estimate = total(contract_tree(factors, var_ordinals))
        if particle_dim is not None:  # the particles' plate summed their estimates
            estimate = estimate / self.num_particles
        return ParticleEstimate(estimate, estimate, traces)
