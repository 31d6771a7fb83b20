"""UnitJacobianReparam: move a site through a volume-preserving transform."""

from __future__ import annotations

import ember.distributions as dist
from ember.distributions import biject_to
from ember.distributions.transforms import ComposeTransform
from ember.infer.reparam.reparam import Reparam
from ember.primitives import sample

__all__ = ["UnitJacobianReparam"]


class UnitJacobianReparam(Reparam):
    """Sample ``t(u(x))`` as the site ``"<x>_<suffix>"`` instead of ``x``, where
    ``u`` maps ``x``'s support to the reals and ``transform`` (whose Jacobian
    determinant is one) acts on the unconstrained value; ``x`` is recovered by
    the inverse. The transform must act on event dims of the site
    (``experimental_allow_batch=True``, coupling batch dims, is not supported).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.distributions.transforms import PermuteTransform
        >>> d = dist.Normal(torch.arange(3.0), 1.0).to_event(1)
        >>> model = lambda: ember.sample("x", d)
        >>> rep = UnitJacobianReparam(PermuteTransform(torch.tensor([2, 0, 1])))
        >>> tr = ember.poutine.trace(ember.poutine.reparam(model, {"x": rep})).get_trace()
        >>> x, y = tr.nodes["x"]["value"], tr.nodes["x_transformed"]["value"]
        >>> bool((y == x[[2, 0, 1]]).all())
        True
    """

    def __init__(self, transform, suffix: str = "transformed", *, experimental_allow_batch=False):
        self.transform = transform.with_cache()
        self.suffix = suffix
        self.experimental_allow_batch = experimental_allow_batch

    def apply(self, msg):
        name, fn, value = msg["name"], msg["fn"], msg["value"]
        event_dim = fn.event_dim
        if self.transform.event_dim > event_dim:
            if not self.experimental_allow_batch:
                raise ValueError(
                    f"UnitJacobianReparam at site {name!r}: cannot transform along a batch "
                    f"dimension (transform event_dim {self.transform.event_dim} > site "
                    f"event_dim {event_dim}); try converting a batch dimension to an event "
                    "dimension with .to_event()"
                )
            raise NotImplementedError(
                f"UnitJacobianReparam at site {name!r}: experimental_allow_batch=True "
                "(coupling across batch dims) is not supported; use .to_event() on the "
                "site's distribution instead"
            )
        transform = ComposeTransform([biject_to(fn.support).inv.with_cache(), self.transform])
        value_trans = None if value is None else transform(value)
        value_trans = sample(
            f"{name}_{self.suffix}",
            dist.TransformedDistribution(fn, transform),
            obs=value_trans,
            infer={"is_observed": msg["is_observed"]},
        )
        if value is None:
            value = transform.inv(value_trans)
        new_fn = dist.Delta(value, event_dim=event_dim)
        return {"fn": new_fn, "value": value, "is_observed": True}
