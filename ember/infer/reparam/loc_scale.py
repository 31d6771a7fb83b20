"""LocScaleReparam: partial (learnable) decentering of location-scale latents."""

from __future__ import annotations

import torch

import ember.distributions as dist
from ember.distributions import constraints
from ember.infer.reparam.reparam import Reparam
from ember.primitives import param, sample
from ember.util import is_validation_enabled

__all__ = ["LocScaleReparam"]


def _is_one(x) -> bool:
    if isinstance(x, torch.Tensor):
        return False  # a tensor may be learned or traced; never short-cut it
    return x is not None and float(x) == 1.0


class LocScaleReparam(Reparam):
    """Decenter a latent site whose distribution has ``loc`` and ``scale``.

    With centeredness ``c`` in ``[0, 1]`` the site ``x ~ D(loc, scale)``
    becomes ``x_decentered ~ D(c * loc, scale ** c)`` and
    ``x = loc + scale ** (1 - c) * (x_decentered - c * loc)``; ``c = 0`` is the
    fully non-centered form, ``c = 1`` leaves the site unchanged. With
    ``centered=None`` a per-element ``c`` is learned as the param
    ``"<name>_centered"`` (initially 0.5). ``shape_params`` names further
    constructor arguments copied unchanged (default: every other argument in
    ``arg_constraints``, such as a StudentT's ``df``). Only for latent sites.

    Example::

        >>> import ember, ember.distributions as dist
        >>> model = lambda: ember.sample("x", dist.Normal(3.0, 2.0))
        >>> rep = ember.poutine.reparam(model, {"x": LocScaleReparam(0.0)})
        >>> tr = ember.poutine.trace(rep).get_trace()
        >>> float(tr.nodes["x"]["value"] - (3.0 + 2.0 * tr.nodes["x_decentered"]["value"]))
        0.0
    """

    def __init__(self, centered=None, shape_params=None):
        if centered is not None and not isinstance(centered, (float, int, torch.Tensor)):
            raise TypeError(
                f"LocScaleReparam: centered must be None, a float or a tensor, "
                f"got {type(centered).__name__}"
            )
        if isinstance(centered, int) and not isinstance(centered, bool):
            centered = float(centered)
        if shape_params is not None:
            if not isinstance(shape_params, (tuple, list)) or not all(
                isinstance(k, str) for k in shape_params
            ):
                raise TypeError(
                    f"LocScaleReparam: shape_params must be a list of argument names, "
                    f"got {shape_params!r}"
                )
        if is_validation_enabled() and centered is not None:
            c = torch.as_tensor(centered)
            if not bool(((c >= 0) & (c <= 1)).all()):
                raise ValueError(f"LocScaleReparam: centered must lie in [0, 1], got {centered!r}")
        self.centered = centered
        self.shape_params = shape_params

    def apply(self, msg):
        name, fn, value = msg["name"], msg["fn"], msg["value"]
        centered = self.centered
        if _is_one(centered):
            return {"fn": fn, "value": value, "is_observed": msg["is_observed"]}
        event_shape = fn.event_shape
        base, event_dim = self.unwrap_independent(fn)
        if not (hasattr(base, "loc") and hasattr(base, "scale")):
            raise TypeError(
                f"LocScaleReparam at site {name!r}: {type(base).__name__} has no loc and "
                "scale; use it on location-scale families (Normal, StudentT, Cauchy, ...)"
            )
        shape_params = self.shape_params
        if shape_params is None:
            shape_params = tuple(k for k in base.arg_constraints if k not in ("loc", "scale"))
            self.shape_params = shape_params
        kwargs = {k: getattr(base, k) for k in shape_params}
        loc, scale = base.loc, base.scale
        if centered is None:
            centered = param(
                f"{name}_centered",
                lambda: loc.new_full(event_shape, 0.5),
                constraint=constraints.unit_interval,
            )
        kwargs["loc"] = loc * centered
        kwargs["scale"] = scale**centered
        decentered_fn = type(base)(**kwargs)
        decentered_value = None
        if value is not None:
            decentered_value = (value - loc) * scale.pow(centered - 1) + centered * loc
        decentered_value = sample(
            f"{name}_decentered",
            self.wrap_event(decentered_fn, event_dim),
            obs=decentered_value,
            infer={"is_observed": msg["is_observed"]},
        )
        if value is None:
            value = loc + scale.pow(1 - centered) * (decentered_value - centered * loc)
        new_fn = dist.Delta(value, event_dim=event_dim).mask(False)
        return {"fn": new_fn, "value": value, "is_observed": True}
