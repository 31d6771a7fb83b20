"""NeuTraReparam: neural transport through a trained autoguide's flow."""

from __future__ import annotations

from contextlib import ExitStack

import ember.distributions as dist
from ember.distributions import biject_to
from ember.distributions.util import sum_rightmost
from ember.infer.autoguide.guides import AutoContinuous
from ember.infer.reparam.reparam import Reparam
from ember.poutine.handlers import reparam as reparam_handler
from ember.poutine.plate_messenger import block_plate
from ember.poutine.runtime import get_mask
from ember.primitives import sample

__all__ = ["NeuTraReparam"]


class NeuTraReparam(Reparam):
    """Reparameterize all latents of a model jointly through the flow of a
    trained :class:`~ember.infer.autoguide.AutoContinuous` guide.

    The first latent site draws one shared latent ``z`` (site
    ``"<first site>_shared_latent"``) from the guide's base distribution; the
    guide's transform maps it to the joint unconstrained latent, which is cut
    into the model's sites and constrained. Each site carries the model's log
    density plus the Jacobian terms, so the model's posterior becomes a density
    over ``z`` that is close to the base distribution when the guide fits well
    (easier geometry for HMC/NUTS). All sites must share one instance and the
    model's structure must be static. Only for latent sites.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer.autoguide import AutoIAFNormal
        >>> def model():
        ...     ember.sample("x", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        >>> guide = AutoIAFNormal(model, hidden_dim=[4])
        >>> sorted(guide())
        ['x']
        >>> neutra = NeuTraReparam(guide)
        >>> tr = ember.poutine.trace(neutra.reparam(model)).get_trace()
        >>> "x_shared_latent" in tr.nodes
        True
    """

    def __init__(self, guide):
        if not isinstance(guide, AutoContinuous):
            raise TypeError(
                f"NeuTraReparam expected an AutoContinuous guide, but got {type(guide)}"
            )
        self.guide = guide
        self.transform = None
        self.x_unconstrained = {}

    def reparam_config(self, site):
        """This reparameterizer for the guide's latent sites, None for the others
        (a ``config`` function for :func:`ember.poutine.reparam`)."""
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
                f"At ember.sample({name!r},...), NeuTraReparam does not support observe statements."
            )
        log_density = 0.0
        compute_density = get_mask() is not False
        if name not in self.x_unconstrained:  # the first latent site of a run
            try:
                self.transform = self.guide.get_transform()
            except (NotImplementedError, TypeError) as e:
                raise ValueError(
                    "NeuTraReparam only supports guides that implement a `get_transform` "
                    "method that does not depend on the model's `*args, **kwargs`"
                ) from e
            with ExitStack() as stack:
                for plate in self.guide.plates.values():
                    stack.enter_context(block_plate(dim=plate.dim, strict=False))
                z = sample(f"{name}_shared_latent", self.guide.get_base_dist().mask(False))
            x_unconstrained = self.transform(z)
            if compute_density:
                log_density = self.transform.log_abs_det_jacobian(z, x_unconstrained)
                # an elementwise transform gives per-element terms: sum over the latent
                log_density = sum_rightmost(log_density, log_density.dim() - (z.dim() - 1))
            self.x_unconstrained = {
                site["name"]: (site, piece)
                for site, piece in self.guide.unpack_latent(x_unconstrained)
            }
        site, unconstrained = self.x_unconstrained.pop(name)
        transform = biject_to(fn.support)
        value = transform(unconstrained)
        if compute_density:
            logdet = transform.log_abs_det_jacobian(unconstrained, value)
            logdet = sum_rightmost(logdet, logdet.dim() - value.dim() + fn.event_dim)
            log_density = log_density + fn.log_prob(value) + logdet
        new_fn = dist.Delta(value, log_density, event_dim=fn.event_dim)
        return {"fn": new_fn, "value": value, "is_observed": True}

    def transform_sample(self, latent):
        """The model's latent values ``{name: tensor}`` for samples ``latent`` of the
        shared latent (batch dims left of the model's plates are kept)."""
        x_unconstrained = self.transform(latent)
        out = {}
        for site, value in self.guide.unpack_latent(x_unconstrained):
            out[site["name"]] = biject_to(site["fn"].support)(value)
        return out
