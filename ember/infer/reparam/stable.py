"""Auxiliary-variable reparameterizers of :class:`~ember.distributions.Stable` sites.

Stable draws are a deterministic function of a uniform angle and an
exponential variable (Chambers-Mallows-Stuck); a symmetric stable is a
Normal scaled by the square root of a positive (totally skewed) stable; a
skewed one adds a totally skewed stable shift. These give latent-only,
symmetric and general reparameterizations that need no stable density.
"""

from __future__ import annotations

import math

import torch

import ember.distributions as dist
from ember.distributions.stable import standard_stable_s0, standard_stable_s1
from ember.infer.reparam.reparam import Reparam
from ember.primitives import sample
from ember.util import is_validation_enabled

__all__ = ["LatentStableReparam", "StableReparam", "SymmetricStableReparam"]

_HOLE_RADIUS = 0.005  # around stability 1 the skew shift is interpolated


def _check_stable(name: str, fn, who: str):
    base, event_dim = Reparam.unwrap_independent(fn)
    if (
        not isinstance(base, dist.Stable)
        or isinstance(base, dist.StableWithLogProb)
        or base.coords != "S0"
    ):
        raise TypeError(
            f"{who} at site {name!r} needs a Stable distribution in coords='S0' (not a "
            f"StableWithLogProb), got {type(base).__name__}"
        )
    return base, event_dim


def _uniform_exponential(name: str, proto, event_dim: int, prefix: str = ""):
    """Sample the angle ``u ~ Uniform(-pi/2, pi/2)`` and ``e ~ Exponential(1)`` sites."""
    half_pi = proto.new_tensor(math.pi / 2)
    u = sample(
        f"{name}_{prefix}uniform",
        Reparam.wrap_event(dist.Uniform(-half_pi, half_pi).expand(proto.shape), event_dim),
    )
    e = sample(
        f"{name}_{prefix}exponential",
        Reparam.wrap_event(dist.Exponential(proto.new_ones(proto.shape)), event_dim),
    )
    return u, e


def _positive_stable_scale(a, scale, u, e):
    """``scale * sqrt(2 z) * cos(pi a / 4) ** (1 / a)`` with ``z`` a standard totally
    skewed stable of index ``a / 2`` (S coords): the Normal scale that makes a
    ``Stable(a, 0, scale)`` draw."""
    z = standard_stable_s1(a / 2, torch.ones_like(a), u, e)
    s = scale * z.clamp(min=0).sqrt() * (math.pi / 4 * a).cos().pow(a.reciprocal())
    return s.clamp(min=torch.finfo(s.dtype).tiny) * math.sqrt(2.0)


def _skew_shift(a, skew, skew_abs):
    """``(sign(skew) |skew|^(1/a) - skew) tan(pi a / 2)``, the S0 location shift of the
    skewed part; near ``a = 1`` (a removable singularity) it is interpolated linearly
    between ``1 - r`` and ``1 + r``."""

    def raw(alpha):
        return (skew.sign() * skew_abs.pow(alpha.reciprocal()) - skew) * (math.pi / 2 * alpha).tan()

    near = (a - 1).abs() <= _HOLE_RADIUS
    lo = torch.where(near, torch.full_like(a, 1 - _HOLE_RADIUS), a)
    hi = torch.where(near, torch.full_like(a, 1 + _HOLE_RADIUS), a)
    w = ((a - lo) / (2 * _HOLE_RADIUS)).detach()
    w = torch.where(near, w, torch.zeros_like(w))
    return (1 - w) * raw(lo) + w * raw(hi)


class LatentStableReparam(Reparam):
    """Replace a latent ``Stable`` site ``x`` by a uniform angle and an exponential
    variable (sites ``"<x>_uniform"``, ``"<x>_exponential"``) and the
    deterministic Chambers-Mallows-Stuck map. Only for latent sites.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> model = lambda: ember.sample("x", dist.Stable(torch.tensor(1.5), 0.5))
        >>> tr = ember.poutine.trace(
        ...     ember.poutine.reparam(model, {"x": LatentStableReparam()})).get_trace()
        >>> sorted(k for k in tr.nodes if k.startswith("x"))
        ['x', 'x_exponential', 'x_uniform']
    """

    def apply(self, msg):
        name = msg["name"]
        fn, event_dim = _check_stable(name, msg["fn"], "LatentStableReparam")
        if msg["is_observed"]:
            raise NotImplementedError(
                f"At ember.sample({name!r},...), LatentStableReparam does not support observe "
                "statements; use StableReparam or SymmetricStableReparam"
            )
        u, e = _uniform_exponential(name, fn.stability, event_dim)
        value = fn.loc + fn.scale * standard_stable_s0(fn.stability, fn.skew, u, e)
        new_fn = dist.Delta(value, event_dim=event_dim).mask(False)
        return {"fn": new_fn, "value": value, "is_observed": True}


class SymmetricStableReparam(Reparam):
    """Write a symmetric ``Stable(a, 0, scale, loc)`` site (``a < 2``) as a Normal
    with a random scale from a totally skewed stable of index ``a / 2`` (sites
    ``"<x>_uniform"``, ``"<x>_exponential"``); the site stays (and may be
    observed) with the conditional Normal.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> model = lambda: ember.sample("x", dist.Stable(torch.tensor(1.5), 0.0))
        >>> tr = ember.poutine.trace(
        ...     ember.poutine.reparam(model, {"x": SymmetricStableReparam()})).get_trace()
        >>> type(tr.nodes["x"]["fn"]).__name__
        'Normal'
    """

    def apply(self, msg):
        name = msg["name"]
        fn, event_dim = _check_stable(name, msg["fn"], "SymmetricStableReparam")
        if is_validation_enabled():
            if not (fn.skew == 0).all():
                raise ValueError(
                    f"SymmetricStableReparam found nonzero skew at site {name!r}; use StableReparam"
                )
            if not (fn.stability < 2).all():
                raise ValueError(
                    f"SymmetricStableReparam found stability >= 2 at site {name!r}; a "
                    "stability-2 Stable is a Normal"
                )
        a = fn.stability
        u, e = _uniform_exponential(name, a, event_dim)
        scale = _positive_stable_scale(a, fn.scale, u, e)
        new_fn = self.wrap_event(dist.Normal(fn.loc, scale), event_dim)
        return {"fn": new_fn, "value": msg["value"], "is_observed": msg["is_observed"]}


class StableReparam(Reparam):
    """Write a ``Stable(a, skew, scale, loc)`` site as a Normal whose scale comes
    from a totally skewed stable of index ``a / 2`` and whose location is shifted
    by a totally skewed stable of index ``a`` (sites ``"<x>_z_uniform"``,
    ``"<x>_z_exponential"``, ``"<x>_t_uniform"``, ``"<x>_t_exponential"``); the
    site stays (and may be observed) with the conditional Normal.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> model = lambda: ember.sample("x", dist.Stable(torch.tensor(1.5), 0.5))
        >>> tr = ember.poutine.trace(
        ...     ember.poutine.reparam(model, {"x": StableReparam()})).get_trace()
        >>> type(tr.nodes["x"]["fn"]).__name__
        'Normal'
    """

    def apply(self, msg):
        name = msg["name"]
        fn, event_dim = _check_stable(name, msg["fn"], "StableReparam")
        a = fn.stability
        zu, ze = _uniform_exponential(name, a, event_dim, prefix="z_")
        tu, te = _uniform_exponential(name, a, event_dim, prefix="t_")
        t = standard_stable_s0(a, torch.ones_like(a), tu, te)
        eps = torch.finfo(a.dtype).eps
        skew_abs = fn.skew.abs().clamp(min=eps, max=1 - eps)
        a_inv = a.reciprocal()
        t_scale = skew_abs.pow(a_inv)
        s_scale = (1 - skew_abs).pow(a_inv)
        loc = fn.loc + fn.scale * (fn.skew.sign() * t_scale * t + _skew_shift(a, fn.skew, skew_abs))
        scale = _positive_stable_scale(a, fn.scale * s_scale, zu, ze)
        new_fn = self.wrap_event(dist.Normal(loc, scale), event_dim)
        return {"fn": new_fn, "value": msg["value"], "is_observed": msg["is_observed"]}
