"""The dependency structure of a model: which sites each site depends on, in the
prior and in the posterior (Pyro's ``pyro.infer.inspect.get_dependencies``).

Dependencies are found with autograd: the model runs once with the value of
every sample site replaced by a fresh leaf tensor, and a site depends on an
upstream site when its log-density is connected to that site's leaf. Only
direct dependencies are found this way (an upstream site's value is a new
leaf), deterministic sites are seen through, and so are masked observations'
values. Dependencies through integer values (discrete sites) or through
operations without gradients (rounding, comparisons) are not seen.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

import torch

from ember import poutine
from ember.poutine.messenger import Messenger
from ember.poutine.subsample_messenger import site_is_subsample
from ember.util import validation_enabled

__all__ = ["get_dependencies", "is_sample_site"]


def is_sample_site(msg) -> bool:
    """Whether a message (or trace site) is a random variable of the model: a sample
    site that is not a plate's subsample site, not an entirely masked observation, and
    not a point mass (``ember.deterministic`` sites and ``Delta`` s).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> def model():
        ...     x = ember.sample("x", dist.Normal(0.0, 1.0))
        ...     ember.deterministic("y", 2 * x)
        >>> trace = ember.poutine.trace(model).get_trace()
        >>> [name for name, site in trace.nodes.items() if is_sample_site(site)]
        ['x']
    """
    if msg["type"] != "sample" or site_is_subsample(msg):
        return False
    if msg["is_observed"] and msg["mask"] is False:
        return False
    fn = msg["fn"]
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return type(fn).__name__ != "Delta"  # deterministic sites and point masses


class _FreshLeaves(Messenger):
    """Replace the value of every random sample site by a fresh leaf requiring grad."""

    def _pyro_post_sample(self, msg) -> None:
        if not is_sample_site(msg):
            return
        value = msg["value"]
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            msg["value"] = value.detach().requires_grad_(True)


@torch.enable_grad()
def get_dependencies(
    model: Callable, model_args: Optional[tuple] = None, model_kwargs: Optional[dict] = None
) -> Dict[str, Dict[str, Dict[str, set]]]:
    """The prior and posterior dependencies of a model's sample sites.

    :return: ``{"prior_dependencies": {d: {u: plates}}, "posterior_dependencies":
        {d: {u: plates}}}``. ``prior_dependencies`` maps every latent and observed
        site ``d`` to the latent sites it depends on (itself included);
        ``posterior_dependencies`` maps every latent site to the sites it depends
        on in the posterior: its children in the prior and, by moralization, the
        other parents of its children (the order is reversed: later sites come
        first). The plate sets name the plates along which a dependency couples
        all elements (e.g. a latent ``a`` in plate ``p`` whose sum is observed
        depends on itself across ``p`` in the posterior).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> def model():
        ...     a = ember.sample("a", dist.Normal(0.0, 1.0))
        ...     b = ember.sample("b", dist.LogNormal(0.0, 1.0))
        ...     c = ember.sample("c", dist.Normal(a, b))
        ...     ember.sample("d", dist.Normal(c, 1.0), obs=torch.tensor(0.0))
        >>> deps = get_dependencies(model)
        >>> deps["prior_dependencies"]["c"]
        {'c': set(), 'a': set(), 'b': set()}
        >>> deps["posterior_dependencies"]["a"]
        {'a': set(), 'c': set(), 'b': set()}
    """
    model_args = () if model_args is None else model_args
    model_kwargs = {} if model_kwargs is None else model_kwargs
    with torch.random.fork_rng(), validation_enabled(False):
        with poutine.block(), _FreshLeaves():
            trace = poutine.trace(model).get_trace(*model_args, **model_kwargs)
    sites = [site for site in trace.nodes.values() if is_sample_site(site)]
    observed = {s["name"] for s in sites if s["is_observed"]}
    plates = {s["name"]: {f.name for f in s["cond_indep_stack"] if f.vectorized} for s in sites}

    prior = {s["name"]: {s["name"]: set()} for s in sites}
    for i, down in enumerate(sites):
        ups = [
            u
            for u in sites[:i]
            if not u["is_observed"]
            and isinstance(u["value"], torch.Tensor)
            and u["value"].requires_grad
            and u["value"].numel()
        ]
        if not ups:
            continue
        log_prob = down["fn"].log_prob(down["value"])
        if not log_prob.requires_grad:
            continue
        grads = torch.autograd.grad(
            log_prob.sum(), [u["value"] for u in ups], retain_graph=True, allow_unused=True
        )
        for up, grad in zip(ups, grads):
            if grad is not None:
                prior[down["name"]][up["name"]] = set()

    posterior = {name: {} for name in plates if name not in observed}
    for d, ups in prior.items():
        for u, p in ups.items():
            if u not in observed:
                posterior[u][d] = set(p)
    # moralize: the latent parents of a site depend on each other in the posterior
    order = {s["name"]: i for i, s in enumerate(reversed(sites))}
    for d, ups in prior.items():
        latent_ups = {u: p for u, p in ups.items() if u not in observed}
        for u1, p1 in latent_ups.items():
            for u2, p2 in latent_ups.items():
                if order[u1] <= order[u2]:
                    coupled = posterior[u2].setdefault(u1, set())
                    coupled |= (plates[u1] & plates[u2]) - plates[d]
                    coupled |= plates[u2] & p1
                    coupled |= plates[u1] & p2
    return {"prior_dependencies": prior, "posterior_dependencies": posterior}
