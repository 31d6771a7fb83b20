"""StructuredReparam: reparameterize a model through a trained AutoStructured guide."""

from __future__ import annotations

from contextlib import ExitStack

import ember.distributions as dist
from ember.infer.autoguide.structured import AutoStructured
from ember.infer.reparam.reparam import Reparam
from ember.poutine.condition_messenger import ConditionMessenger
from ember.poutine.handlers import reparam as reparam_handler
from ember.poutine.mask_messenger import MaskMessenger
from ember.poutine.plate_messenger import block_plate
from ember.poutine.runtime import get_mask

__all__ = ["StructuredReparam"]


class StructuredReparam(Reparam):
    """Reparameterize the latents of a model with the (frozen) structure of a
    trained :class:`~ember.infer.autoguide.AutoStructured` guide: the guide's
    auxiliary sites become the model's latents and its deterministic maps give
    the original sites, which carry the model's log density plus the guide's
    Jacobian terms (a "whitened" geometry for MCMC). All sites must share one
    instance. Only for latent sites.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer.autoguide import AutoStructured
        >>> def model():
        ...     ember.sample("x", dist.Normal(0.0, 1.0))
        >>> guide = AutoStructured(model, conditionals={"x": "normal"})
        >>> sorted(guide())
        ['x']
        >>> rep = StructuredReparam(guide)
        >>> tr = ember.poutine.trace(rep.reparam(model)).get_trace()
        >>> tr.nodes["x"]["is_observed"]
        True
    """

    def __init__(self, guide):
        if not isinstance(guide, AutoStructured):
            raise TypeError(
                f"StructuredReparam expected an AutoStructured guide, but got {type(guide)}"
            )
        self.guide = guide.requires_grad_(False)
        self.deltas = {}

    def reparam_config(self, site):
        """This reparameterizer for the guide's latent sites, None for the others."""
        if site["name"] in self.guide.prototype_trace:
            return self
        return None

    def reparam(self, fn=None):
        """``fn`` (or a handler) reparameterized at every latent site of the guide."""
        return reparam_handler(fn, config=self.reparam_config)

    def apply(self, msg):
        name, fn, value = msg["name"], msg["fn"], msg["value"]
        if name not in self.guide.prototype_trace.nodes:
            return {"fn": fn, "value": value, "is_observed": msg["is_observed"]}
        if msg["is_observed"]:
            raise NotImplementedError(
                f"At ember.sample({name!r},...), StructuredReparam does not support observe "
                "statements"
            )
        if name not in self.deltas:  # the first latent site of a run
            with ExitStack() as stack:
                for plate in self.guide.plates.values():
                    stack.enter_context(block_plate(dim=plate.dim, strict=False))
                self.deltas = self.guide.get_deltas()
        new_fn = self.deltas.pop(name)
        value = new_fn.v
        if get_mask() is not False:
            log_density = new_fn.log_density + fn.log_prob(value)
            new_fn = dist.Delta(value, log_density, new_fn.event_dim)
        return {"fn": new_fn, "value": value, "is_observed": True}

    def transform_samples(self, aux_samples, save_params=None):
        """The model's latent values ``{name: tensor}`` for samples of the guide's
        auxiliary sites ``aux_samples`` (``save_params`` as in ``get_deltas``)."""
        with ConditionMessenger(data=aux_samples), MaskMessenger(mask=False):
            deltas = self.guide.get_deltas(save_params)
        return {name: delta.v for name, delta in deltas.items()}
