"""Guides that run as effect handlers around the model ("messenger guides").

A :class:`GuideMessenger` runs the model itself and, at each latent sample site,
replaces the prior with a posterior computed from the prior (which is already
conditioned on the upstream posterior samples): guide and model are
interleaved in one pass. The automatic ones create their parameters lazily,
the first time they meet a site, so a model's structure may vary between runs:

* :class:`AutoNormalMessenger`: a mean-field normal in the unconstrained space;
* :class:`AutoHierarchicalNormalMessenger`: the same, with a mean that adds a
  learned multiple of the (unconstrained) prior mean, so it follows the
  values of upstream sites;
* :class:`AutoRegressiveMessenger`: a learned affine map of the prior itself.

Subclasses may override :meth:`~GuideMessenger.get_posterior` for some sites
and fall back to the automatic family for the others.

Example::

    >>> import torch, ember, ember.distributions as dist
    >>> from ember.infer.autoguide import AutoNormalMessenger
    >>> def model(data):
    ...     loc = ember.sample("loc", dist.Normal(0.0, 1.0))
    ...     with ember.plate("data", len(data)):
    ...         ember.sample("obs", dist.Normal(loc, 1.0), obs=data)
    >>> guide = AutoNormalMessenger(model)
    >>> sorted(guide(torch.zeros(3)))
    ['loc', 'obs']
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

import torch
from torch.distributions import biject_to

from ember.distributions import constraints
from ember.distributions.torch import Normal, TransformedDistribution
from ember.distributions.transforms import AffineTransform
from ember.infer.autoguide.initialization import init_to_feasible, init_to_mean
from ember.infer.autoguide.utils import (
    check_init_scale,
    deep_getattr,
    deep_setattr,
    helpful_support_errors,
)
from ember.nn.module import PyroModule, PyroParam, pyro_method
from ember.ops.tensor_utils import periodic_repeat
from ember.poutine.guide import GuideMessenger
from ember.poutine.runtime import get_plates

__all__ = [
    "AutoHierarchicalNormalMessenger",
    "AutoMessenger",
    "AutoNormalMessenger",
    "AutoRegressiveMessenger",
    "GuideMessenger",
]


class AutoMessenger(GuideMessenger, PyroModule):
    """Base class of the automatic messenger guides (a :class:`GuideMessenger` and a
    :class:`~ember.nn.PyroModule` holding its parameters).

    :param model: the model.
    :param amortized_plates: names of plates whose elements share one set of
        parameters (e.g. a subsampled data plate), instead of one per element.
    """

    def __init__(self, model: Callable, *, amortized_plates: Sequence[str] = ()):
        if isinstance(amortized_plates, str):
            amortized_plates = (amortized_plates,)
        self.amortized_plates = tuple(amortized_plates)
        super().__init__(model)

    @pyro_method
    def __call__(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        # Plates around the guide are particle plates: parameters are never batched by them.
        self._outer_plates = tuple(f.name for f in get_plates())
        try:
            return super().__call__(*args, **kwargs)
        finally:
            del self._outer_plates

    def call(self, *args, **kwargs) -> tuple:
        """The guide's samples as a tuple ordered by site name (for ``torch.jit`` tracing)."""
        result = self(*args, **kwargs)
        return tuple(v for _, v in sorted(result.items()))

    @torch.no_grad()
    def _adjust_plates(self, value: torch.Tensor, event_dim: int) -> torch.Tensor:
        """An initial parameter value from a site's value: averaged over particle and
        amortized plates, repeated to the full size of subsampled plates, without
        leading singleton dims."""
        for frame in get_plates():
            dim = frame.dim - event_dim
            if frame.name in self._outer_plates or frame.name in self.amortized_plates:
                if -value.dim() <= dim:
                    value = value.mean(dim, keepdim=True)
            else:
                full_size = frame.full_size or frame.size
                if frame.size != full_size and -value.dim() <= dim and value.size(dim) > 1:
                    value = periodic_repeat(value, full_size, dim).contiguous()
        while value.dim() > event_dim and value.size(0) == 1:
            value = value.squeeze(0)
        return value

    def _init_unconstrained(self, name, prior, transform):
        """The initial unconstrained value of a site, from the initialization strategy."""
        constrained = self.init_loc_fn({"name": name, "fn": prior, "value": None}).detach()
        if constrained.shape != prior.shape():
            constrained = constrained.expand(prior.shape())
        return transform.inv(constrained)


def _site_transform(name, prior):
    with helpful_support_errors({"name": name, "fn": prior}):
        return biject_to(prior.support)


class _LocScaleMessenger(AutoMessenger):
    """The common part of the messenger guides with a learned location and scale
    per site in the unconstrained space (parameters ``locs.<site>`` and
    ``scales.<site>``)."""

    def __init__(
        self,
        model: Callable,
        *,
        init_loc_fn: Callable = init_to_mean(fallback=init_to_feasible),
        init_scale: float = 0.1,
        amortized_plates: Sequence[str] = (),
    ):
        self._init_scale = check_init_scale(init_scale)
        super().__init__(model, amortized_plates=amortized_plates)
        self.init_loc_fn = init_loc_fn

    def _initial_unconstrained(self, name: str, prior):
        """The site's bijection to the unconstrained space, its event dim there, and
        the initial unconstrained value, shaped for the site's parameters."""
        transform = _site_transform(name, prior)
        event_dim = transform.domain.event_dim
        with torch.no_grad():
            init_loc = self._adjust_plates(
                self._init_unconstrained(name, prior, transform), event_dim
            )
        return transform, event_dim, init_loc

    def _initial_loc(self, init_loc: torch.Tensor) -> torch.Tensor:
        return init_loc

    def _add_loc_scale(self, name: str, init_loc: torch.Tensor, event_dim: int) -> None:
        init_scale = torch.full_like(init_loc, self._init_scale)
        deep_setattr(self, "locs." + name, PyroParam(init_loc, event_dim=event_dim))
        deep_setattr(
            self,
            "scales." + name,
            PyroParam(init_scale, constraint=constraints.positive, event_dim=event_dim),
        )

    def _get_params(self, name: str, prior):
        try:
            return deep_getattr(self.locs, name), deep_getattr(self.scales, name)
        except AttributeError:
            pass
        _, event_dim, init_loc = self._initial_unconstrained(name, prior)
        self._add_loc_scale(name, self._initial_loc(init_loc), event_dim)
        return self._get_params(name, prior)


class AutoNormalMessenger(_LocScaleMessenger):
    """A messenger guide with a mean-field normal posterior in the unconstrained
    space at each site (parameters ``locs.<site>``, ``scales.<site>``), like
    :class:`~ember.infer.autoguide.AutoNormal` but created site by site as the
    model runs, and customizable by overriding :meth:`get_posterior`.

    :param model: the model.
    :param init_loc_fn: the initialization strategy (default: the prior mean,
        else a feasible point).
    :param init_scale: the initial scale in the unconstrained space.
    :param amortized_plates: see :class:`AutoMessenger`.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer.autoguide import AutoNormalMessenger
        >>> def model():
        ...     ember.sample("s", dist.LogNormal(1.0, 1.0))
        >>> guide = AutoNormalMessenger(model)
        >>> _ = guide(); guide.median()["s"]
        tensor(4.4817)
    """

    def __init__(
        self,
        model: Callable,
        *,
        init_loc_fn: Callable = init_to_mean(fallback=init_to_feasible),
        init_scale: float = 0.1,
        amortized_plates: Sequence[str] = (),
    ):
        super().__init__(
            model, init_loc_fn=init_loc_fn, init_scale=init_scale, amortized_plates=amortized_plates
        )
        self._computing_median = False

    def get_posterior(self, name: str, prior):
        transform = _site_transform(name, prior)
        loc, scale = self._get_params(name, prior)
        if self._computing_median:
            return transform(loc)
        base = Normal(loc, scale).to_event(transform.domain.event_dim)
        return TransformedDistribution(base, transform.with_cache())

    @torch.no_grad()
    def median(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        """The posterior median of each site (with the model's other sites, as a call
        returns them)."""
        self._computing_median = True
        try:
            return self(*args, **kwargs)
        finally:
            self._computing_median = False


class AutoHierarchicalNormalMessenger(AutoNormalMessenger):
    """:class:`AutoNormalMessenger` whose unconstrained mean at a site is
    ``loc + weight * transform.inv(prior.mean)``: it moves with the values of the
    site's upstream sites, as hierarchical models need. Sites not in
    ``hierarchical_sites`` (when given) are mean-field.

    :param init_weight: the initial weight of the prior mean.
    :param hierarchical_sites: the sites with the hierarchical mean (default all).

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember.infer.autoguide import AutoHierarchicalNormalMessenger
        >>> def model():
        ...     mu = ember.sample("mu", dist.Normal(0.0, 1.0))
        ...     ember.sample("x", dist.Normal(mu, 1.0))
        >>> guide = AutoHierarchicalNormalMessenger(model)
        >>> _ = guide(); sorted(n for n, _ in guide.named_pyro_params())
        ['locs.mu', 'locs.x', 'scales.mu', 'scales.x', 'weights.mu', 'weights.x']
    """

    #: ``"element-wise"`` (one weight per element) or ``"scalar"``.
    weight_type = "element-wise"

    def __init__(
        self,
        model: Callable,
        *,
        init_loc_fn: Callable = init_to_mean(fallback=init_to_feasible),
        init_scale: float = 0.1,
        amortized_plates: Sequence[str] = (),
        init_weight: float = 1.0,
        hierarchical_sites: Optional[Sequence[str]] = None,
    ):
        super().__init__(
            model,
            init_loc_fn=init_loc_fn,
            init_scale=init_scale,
            amortized_plates=amortized_plates,
        )
        self._init_weight = init_weight
        self._hierarchical_sites = None if hierarchical_sites is None else set(hierarchical_sites)

    def _is_hierarchical(self, name: str) -> bool:
        return self._hierarchical_sites is None or name in self._hierarchical_sites

    def get_posterior(self, name: str, prior):
        if not self._is_hierarchical(name):
            return super().get_posterior(name, prior)
        transform = _site_transform(name, prior)
        loc, scale, weight = self._get_params(name, prior)
        loc = loc + transform.inv(prior.mean) * weight
        if self._computing_median:
            return transform(loc)
        base = Normal(loc, scale).to_event(transform.domain.event_dim)
        return TransformedDistribution(base, transform.with_cache())

    def _get_params(self, name: str, prior):
        if not self._is_hierarchical(name):
            return super()._get_params(name, prior)
        try:
            return (
                deep_getattr(self.locs, name),
                deep_getattr(self.scales, name),
                deep_getattr(self.weights, name),
            )
        except AttributeError:
            pass
        transform, event_dim, init_loc = self._initial_unconstrained(name, prior)
        with torch.no_grad():
            if self.weight_type == "scalar":
                init_weight = init_loc.new_full((), self._init_weight)
            else:
                init_weight = torch.full_like(init_loc, self._init_weight)
            # start at the initial value: subtract the prior mean's contribution
            prior_mean = self._adjust_plates(transform.inv(prior.mean), event_dim)
            init_loc = init_loc - init_weight * prior_mean
        self._add_loc_scale(name, init_loc, event_dim)
        weight_event_dim = None if self.weight_type == "scalar" else event_dim
        deep_setattr(
            self,
            "weights." + name,
            PyroParam(init_weight, constraint=constraints.positive, event_dim=weight_event_dim),
        )
        return self._get_params(name, prior)


class AutoRegressiveMessenger(_LocScaleMessenger):
    """A messenger guide whose posterior at each site is the prior (conditioned on
    the upstream posterior samples) pushed through a learned elementwise affine
    map in the unconstrained space: ``transform(loc + scale * transform.inv(z))``
    for ``z`` drawn from the prior. Continuous sites with reparameterizable
    priors only.

    :param model: the model.
    :param init_loc_fn: the initialization strategy.
    :param init_scale: the initial ``scale`` (the initial posterior is
        ``init_scale * prior + (1 - init_scale) * init value`` in the
        unconstrained space).
    :param amortized_plates: see :class:`AutoMessenger`.

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember.infer.autoguide import AutoRegressiveMessenger
        >>> def model():
        ...     ember.sample("p", dist.Beta(2.0, 2.0))
        >>> guide = AutoRegressiveMessenger(model)
        >>> p = guide()["p"]
        >>> bool(0 < p < 1), p.requires_grad
        (True, True)
    """

    def get_posterior(self, name: str, prior):
        transform = _site_transform(name, prior)
        loc, scale = self._get_params(name, prior)
        affine = AffineTransform(loc, scale, event_dim=transform.domain.event_dim, cache_size=1)
        return TransformedDistribution(
            prior, [transform.inv.with_cache(), affine, transform.with_cache()]
        )

    def _initial_loc(self, init_loc: torch.Tensor) -> torch.Tensor:
        # The affine map starts near the identity: loc shrunk as scale is below 1.
        return init_loc * (1 - self._init_scale)
