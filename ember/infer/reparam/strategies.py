"""Automatic choice of reparameterizers for every site of a model."""

from __future__ import annotations

from typing import Callable, Dict, Optional, Union

import torch

import ember.distributions as dist
from ember.distributions import constraints
from ember.infer.reparam.loc_scale import LocScaleReparam
from ember.infer.reparam.projected_normal import ProjectedNormalReparam
from ember.infer.reparam.reparam import Reparam
from ember.infer.reparam.softmax import GumbelSoftmaxReparam
from ember.infer.reparam.stable import (
    LatentStableReparam,
    StableReparam,
    SymmetricStableReparam,
)
from ember.infer.reparam.transform import TransformReparam
from ember.poutine.handlers import reparam as reparam_handler

__all__ = ["AutoReparam", "MinimalReparam", "Strategy"]


class Strategy:
    """Base class of reparameterization strategies: a ``config`` function for
    :func:`ember.poutine.reparam` that picks a reparameterizer per site (with
    :meth:`configure`) once and remembers it in ``self.config``.

    ``strategy(model)`` returns the model reparameterized by the strategy.
    """

    def __init__(self):
        self.config: Dict[str, Optional[Reparam]] = {}

    def configure(self, msg: dict) -> Optional[Reparam]:
        """The reparameterizer for the site ``msg`` (None: leave it)."""
        raise NotImplementedError(f"{type(self).__name__} must implement configure(msg)")

    def __call__(self, msg_or_fn: Union[dict, Callable]):
        if isinstance(msg_or_fn, dict):
            name = msg_or_fn["name"]
            if name not in self.config:
                self.config[name] = self.configure(msg_or_fn)
            return self.config[name]
        return reparam_handler(msg_or_fn, self)


def minimal_reparam(fn, is_observed: bool) -> Optional[Reparam]:
    """The reparameterizer a site needs for inference to work at all (sites whose
    distribution has no usable density: Stable, ProjectedNormal), or None."""
    while isinstance(getattr(fn, "base_dist", None), dist.Distribution):
        if isinstance(fn, torch.distributions.TransformedDistribution):
            if minimal_reparam(fn.base_dist, is_observed) is None:
                return None
            return TransformReparam()  # the new base site is then reparameterized
        fn = fn.base_dist
    if isinstance(fn, dist.Stable) and not isinstance(fn, dist.StableWithLogProb):
        if not is_observed:
            return LatentStableReparam()
        if fn.skew.requires_grad or bool(fn.skew.any()):
            return StableReparam()
        return SymmetricStableReparam()
    if isinstance(fn, dist.ProjectedNormal):
        return ProjectedNormalReparam()
    return None


def _is_unconstrained(constraint) -> bool:
    while hasattr(constraint, "base_constraint"):
        constraint = constraint.base_constraint
    return constraint == constraints.real


class MinimalReparam(Strategy):
    """Reparameterize only the sites that need it: Stable sites (latent:
    :class:`LatentStableReparam`; observed: :class:`StableReparam` or
    :class:`SymmetricStableReparam`) and ProjectedNormal sites, also under
    ``TransformedDistribution`` and ``Independent``.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> model = lambda: ember.sample("x", dist.Stable(torch.tensor(1.5), 0.0))
        >>> tr = ember.poutine.trace(MinimalReparam()(model)).get_trace()
        >>> "x_uniform" in tr.nodes
        True
    """

    def configure(self, msg):
        return minimal_reparam(msg["fn"], msg["is_observed"])


class AutoReparam(Strategy):
    """Reparameterize latent sites for easier inference: ``TransformedDistribution``
    sites with :class:`TransformReparam`, ``RelaxedOneHotCategorical`` with
    :class:`GumbelSoftmaxReparam`, real-valued location-scale families with a
    :class:`LocScaleReparam` (learnable centeredness, or ``centered``), and
    what :class:`MinimalReparam` needs.

    Example::

        >>> import ember, ember.distributions as dist
        >>> model = lambda: ember.sample("x", dist.Normal(0.0, 1.0))
        >>> tr = ember.poutine.trace(AutoReparam(centered=0.0)(model)).get_trace()
        >>> "x_decentered" in tr.nodes
        True
    """

    def __init__(self, *, centered: Optional[float] = None):
        if centered is not None and not isinstance(centered, float):
            raise TypeError(f"AutoReparam: centered must be None or a float, got {centered!r}")
        super().__init__()
        self.centered = centered

    def configure(self, msg):
        fn = msg["fn"]
        if not msg["is_observed"]:
            while isinstance(getattr(fn, "base_dist", None), dist.Distribution):
                if isinstance(fn, torch.distributions.TransformedDistribution):
                    return TransformReparam()
                fn = fn.base_dist
            if isinstance(fn, torch.distributions.RelaxedOneHotCategorical):
                return GumbelSoftmaxReparam()
            if "_decentered" not in msg["name"]:  # not the site a LocScaleReparam adds
                params = set(getattr(fn, "arg_constraints", {}))
                if {"loc", "scale"} <= params and _is_unconstrained(fn.support):
                    shape_params = sorted(params - {"loc", "scale"})
                    return LocScaleReparam(centered=self.centered, shape_params=shape_params)
        return minimal_reparam(fn, msg["is_observed"])
