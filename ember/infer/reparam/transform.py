"""TransformReparam: sample a TransformedDistribution's base and push it forward."""

from __future__ import annotations

import torch

import ember.distributions as dist
from ember.infer.reparam.reparam import Reparam
from ember.primitives import sample

__all__ = ["TransformReparam"]


class TransformReparam(Reparam):
    """Replace a latent ``TransformedDistribution`` site ``x`` by a site
    ``"<x>_base"`` drawn from the base distribution, with ``x`` the transforms
    applied to it. Useful when the posterior is simple in the base space.
    Only for latent sites.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.distributions.transforms import ExpTransform
        >>> d = dist.TransformedDistribution(dist.Normal(0.0, 1.0), [ExpTransform()])
        >>> model = lambda: ember.sample("x", d)
        >>> tr = ember.poutine.trace(
        ...     ember.poutine.reparam(model, {"x": TransformReparam()})).get_trace()
        >>> bool(torch.isclose(tr.nodes["x"]["value"], tr.nodes["x_base"]["value"].exp()))
        True
    """

    def apply(self, msg):
        name, fn, value = msg["name"], msg["fn"], msg["value"]
        base, event_dim = self.unwrap_independent(fn)
        if not isinstance(base, torch.distributions.TransformedDistribution):
            raise TypeError(
                f"TransformReparam at site {name!r} needs a TransformedDistribution, "
                f"got {type(base).__name__}"
            )
        transforms = base.transforms
        base_value = value
        if value is not None:
            for t in reversed(transforms):
                base_value = t.inv(base_value)
        base_event_dim = event_dim
        for t in reversed(transforms):
            base_event_dim += t.domain.event_dim - t.codomain.event_dim
        base_value = sample(
            f"{name}_base",
            self.wrap_event(base.base_dist, base_event_dim),
            obs=base_value,
            infer={"is_observed": msg["is_observed"]},
        )
        if value is None:
            value = base_value
            for t in transforms:
                value = t(value)
        new_fn = dist.Delta(value, event_dim=event_dim).mask(False)
        return {"fn": new_fn, "value": value, "is_observed": True}
