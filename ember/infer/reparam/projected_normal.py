"""ProjectedNormalReparam: a ProjectedNormal as a normalized Normal vector."""

from __future__ import annotations

import torch

import ember.distributions as dist
from ember.infer.reparam.reparam import Reparam
from ember.ops.tensor_utils import safe_normalize
from ember.primitives import sample

__all__ = ["ProjectedNormalReparam"]


class ProjectedNormalReparam(Reparam):
    """Replace a latent ``ProjectedNormal(concentration)`` site ``x`` by
    ``y ~ Normal(0, 1)`` vectors (site ``"<x>_normal"``) and
    ``x = (y + concentration) / |y + concentration|``. Only for latent sites.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> model = lambda: ember.sample("x", dist.ProjectedNormal(torch.ones(3)))
        >>> tr = ember.poutine.trace(
        ...     ember.poutine.reparam(model, {"x": ProjectedNormalReparam()})).get_trace()
        >>> round(float(tr.nodes["x"]["value"].norm()), 4)
        1.0
    """

    def apply(self, msg):
        name, fn, value = msg["name"], msg["fn"], msg["value"]
        if msg["is_observed"]:
            raise NotImplementedError(
                f"ProjectedNormalReparam does not support observe statements (at site {name!r})"
            )
        base, event_dim = self.unwrap_independent(fn)
        if not isinstance(base, dist.ProjectedNormal):
            raise TypeError(
                f"ProjectedNormalReparam at site {name!r} needs a ProjectedNormal, got "
                f"{type(base).__name__}"
            )
        conc = base.concentration
        normal_value = None if value is None else value - conc
        normal = sample(
            f"{name}_normal",
            self.wrap_event(dist.Normal(torch.zeros_like(conc), 1.0).to_event(1), event_dim),
            obs=normal_value,
            infer={"is_observed": False},
        )
        if value is None:
            value = safe_normalize(normal + conc)
        new_fn = dist.Delta(value, event_dim=event_dim).mask(False)
        return {"fn": new_fn, "value": value, "is_observed": True}
