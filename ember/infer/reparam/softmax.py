"""GumbelSoftmaxReparam: a RelaxedOneHotCategorical from uniform noise."""

from __future__ import annotations

import torch

import ember.distributions as dist
from ember.infer.reparam.reparam import Reparam
from ember.primitives import sample

__all__ = ["GumbelSoftmaxReparam"]


class GumbelSoftmaxReparam(Reparam):
    """Replace a latent ``RelaxedOneHotCategorical`` site ``x`` by uniform noise
    ``u`` (site ``"<x>_uniform"``, one per category) and the deterministic
    ``x = softmax((logits - log(-log u)) / temperature)``. Turns a multimodal
    posterior into a unimodal one in ``u``. Only for latent sites.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> d = dist.RelaxedOneHotCategorical(torch.tensor(0.5), logits=torch.zeros(3))
        >>> model = lambda: ember.sample("x", d)
        >>> tr = ember.poutine.trace(
        ...     ember.poutine.reparam(model, {"x": GumbelSoftmaxReparam()})).get_trace()
        >>> tr.nodes["x_uniform"]["value"].shape
        torch.Size([3])
    """

    def apply(self, msg):
        name, fn, value = msg["name"], msg["fn"], msg["value"]
        base, event_dim = self.unwrap_independent(fn)
        if not isinstance(base, torch.distributions.RelaxedOneHotCategorical):
            raise TypeError(
                f"GumbelSoftmaxReparam at site {name!r} needs a RelaxedOneHotCategorical, "
                f"got {type(base).__name__}"
            )
        if msg["is_observed"]:
            raise NotImplementedError(
                f"GumbelSoftmaxReparam does not support observe statements (at sample site "
                f"{name!r}); use it on latent sites only"
            )
        logits = base.logits
        u = None
        if value is not None:
            # invert value = softmax(g / T) with g = logits + Gumbel noise, up to a constant
            u = (logits - value.log() * base.temperature).exp().neg().exp()
        u = sample(
            f"{name}_uniform",
            self.wrap_event(
                dist.Uniform(torch.zeros_like(logits), torch.ones_like(logits)), event_dim
            ),
            obs=u,
            infer={"is_observed": False},
        )
        if value is None:
            value = ((logits - u.log().neg().log()) / base.temperature).softmax(dim=-1)
        new_fn = dist.Delta(value, event_dim=event_dim).mask(False)
        return {"fn": new_fn, "value": value, "is_observed": True}
