"""StudentTReparam: a StudentT as a Normal with a Gamma-distributed precision scale."""

from __future__ import annotations

import ember.distributions as dist
from ember.infer.reparam.reparam import Reparam
from ember.primitives import sample

__all__ = ["StudentTReparam"]


class StudentTReparam(Reparam):
    """Write ``x ~ StudentT(df, loc, scale)`` as ``g ~ Gamma(df/2, df/2)`` (site
    ``"<x>_gamma"``) and ``x ~ Normal(loc, scale / sqrt(g))``; the site stays (and
    may stay observed) with the conditional Normal. Makes StudentT noise
    conditionally Gaussian (e.g. for :class:`LinearHMMReparam`).

    Example::

        >>> import ember, ember.distributions as dist
        >>> model = lambda: ember.sample("x", dist.StudentT(3.0, 0.0, 1.0))
        >>> tr = ember.poutine.trace(
        ...     ember.poutine.reparam(model, {"x": StudentTReparam()})).get_trace()
        >>> type(tr.nodes["x"]["fn"]).__name__, "x_gamma" in tr.nodes
        ('Normal', True)
    """

    def apply(self, msg):
        name, fn = msg["name"], msg["fn"]
        base, event_dim = self.unwrap_independent(fn)
        if not isinstance(base, dist.StudentT):
            raise TypeError(
                f"StudentTReparam at site {name!r} needs a StudentT, got {type(base).__name__}"
            )
        half_df = base.df * 0.5
        gamma = sample(f"{name}_gamma", self.wrap_event(dist.Gamma(half_df, half_df), event_dim))
        new_fn = self.wrap_event(dist.Normal(base.loc, base.scale * gamma.rsqrt()), event_dim)
        return {"fn": new_fn, "value": msg["value"], "is_observed": msg["is_observed"]}
