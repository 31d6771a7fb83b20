"""ConjugateReparam: replace a prior by its conjugate update with a guide likelihood."""

from __future__ import annotations

import ember.distributions as dist
from ember.infer.reparam.reparam import Reparam
from ember.poutine.runtime import get_mask
from ember.primitives import sample

__all__ = ["ConjugateReparam"]


class ConjugateReparam(Reparam):
    """Sample a site from its prior updated by a likelihood ``guide``
    (``fn.conjugate_update(guide)``), the site ``"<x>_updated"``, and weight
    ``x`` by ``log_normalizer - guide.log_prob(x)`` so the joint density is
    unchanged. ``guide`` is a distribution or a function of the model's
    ``(*args, **kwargs)`` returning one (the model must then be wrapped with
    ``poutine.reparam(model, ...)``). When ``guide`` is the exact likelihood
    the posterior is the updated prior and the guide can be empty.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> def model():
        ...     ember.sample("p", dist.Beta(2.0, 2.0))
        >>> rep = ConjugateReparam(dist.Beta(torch.tensor(4.0), 2.0))  # 3 of 4 successes
        >>> tr = ember.poutine.trace(ember.poutine.reparam(model, {"p": rep})).get_trace()
        >>> tr.nodes["p"]["is_observed"], "p_updated" in tr.nodes  # drawn, not traced
        (True, False)
    """

    def __init__(self, guide):
        self.guide = guide

    def apply(self, msg):
        name, fn, value = msg["name"], msg["fn"], msg["value"]
        guide = self.guide
        if not isinstance(guide, dist.Distribution):
            if self.args_kwargs is None:
                raise ValueError(
                    f"ConjugateReparam at site {name!r}: a guide given as a function needs the "
                    "model's arguments; wrap the model with poutine.reparam(model, config)"
                )
            args, kwargs = self.args_kwargs
            guide = guide(*args, **kwargs)
        if not isinstance(guide, dist.Distribution):
            raise TypeError(
                f"ConjugateReparam at site {name!r}: the guide must be a distribution, got "
                f"{type(guide).__name__}"
            )
        updated, log_normalizer = fn.conjugate_update(guide)
        if not updated.has_rsample:
            raise NotImplementedError(
                "ConjugateReparam inference supports only reparameterized distributions, but "
                f"got {type(updated).__name__} at site {name!r}"
            )
        value = sample(
            f"{name}_updated",
            updated,
            obs=value,
            infer={"is_observed": msg["is_observed"], "is_auxiliary": True, "_do_not_trace": True},
        )
        log_density = 0.0 if get_mask() is False else log_normalizer - guide.log_prob(value)
        new_fn = dist.Delta(value, log_density=log_density, event_dim=updated.event_dim)
        return {"fn": new_fn, "value": value, "is_observed": True}
