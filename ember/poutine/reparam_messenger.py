"""ReparamMessenger: replace sample sites by reparameterized computations.

A reparameterizer (see :mod:`ember.infer.reparam`) takes a site's distribution
and turns it into other sample sites plus a deterministic map; the original
site then carries the transformed value under a distribution that contributes
no log density of its own.
"""

from __future__ import annotations

import warnings
from typing import Callable

from ember.poutine.broadcast import broadcast_to_plates
from ember.poutine.messenger import Messenger
from ember.poutine.runtime import get_stack
from ember.poutine.subsample_messenger import SubsampleIndices

__all__ = ["ReparamHandler", "ReparamMessenger"]


class ReparamMessenger(Messenger):
    """Reparameterize sample sites with reparameterizers from :mod:`ember.infer.reparam`.

    ``config`` is either a dict from site names to reparameterizers or a
    function ``config(msg)`` returning a reparameterizer or ``None``. A
    reparameterizer sees the site's distribution broadcast to every plate
    between the site and this handler (as in Pyro, where each plate broadcasts
    before the handlers outside it run). Wrapping a function with
    ``reparam(fn, config)`` also hands its call arguments to the
    reparameterizers as ``reparam.args_kwargs`` (used by
    :class:`~ember.infer.reparam.StructuredReparam`).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer.reparam import LocScaleReparam
        >>> def model():
        ...     return ember.sample("x", dist.Normal(1.0, 2.0))
        >>> reparam_model = ember.poutine.reparam(model, {"x": LocScaleReparam(0.0)})
        >>> tr = ember.poutine.trace(reparam_model).get_trace()
        >>> sorted(tr.nodes)[:3]
        ['_INPUT', '_RETURN', 'x']
        >>> "x_decentered" in tr.nodes
        True
    """

    def __init__(self, config):
        super().__init__()
        if not (isinstance(config, dict) or callable(config)):
            raise TypeError(
                "reparam: config must be a dict from site names to reparameterizers or a "
                f"function msg -> reparameterizer or None, got {type(config).__name__}"
            )
        self.config = config
        self._args_kwargs = None

    def __call__(self, fn: Callable) -> ReparamHandler:
        if not callable(fn):
            raise ValueError(
                f"ReparamMessenger can only wrap a callable, got {type(fn).__name__}; "
                "use it as a decorator on a function or as a `with` block"
            )
        return ReparamHandler(self, fn)

    def _pyro_sample(self, msg) -> None:
        if isinstance(msg["fn"], SubsampleIndices):
            return
        config = self.config
        if isinstance(config, dict):
            reparam = config.get(msg["name"])
        else:
            reparam = config(msg)
        if reparam is None:
            return
        if not hasattr(reparam, "apply"):
            raise TypeError(
                f"reparam: the reparameterizer for site {msg['name']!r} must have an "
                f".apply(msg) method (an ember.infer.reparam.Reparam), got "
                f"{type(reparam).__name__}"
            )
        # Plates inside this handler may not have broadcast the site yet (only the
        # outermost plate does); reparameterizers need the distribution with the batch
        # shape of every plate seen so far.
        if msg["cond_indep_stack"]:
            broadcast_to_plates(msg)
        if msg["value"] is None:
            for m in early_init_messengers():
                try:
                    m._process_message(msg)
                except (ValueError, NotImplementedError):
                    # The strategy cannot initialize the original site (e.g. a spherical
                    # support); it will initialize the sites the reparameterizer adds.
                    msg["value"] = None
                    break

        reparam.args_kwargs = self._args_kwargs
        try:
            new_msg = reparam.apply(
                {
                    "name": msg["name"],
                    "fn": msg["fn"],
                    "value": msg["value"],
                    "is_observed": msg["is_observed"],
                }
            )
        finally:
            reparam.args_kwargs = None

        new_value = new_msg["value"]
        if new_value is not None and getattr(msg["fn"], "_validation_enabled", False):
            msg["fn"]._validate_sample(new_value)
        old_value = msg["value"]
        if new_value is not None and old_value is not None and new_value is not old_value:
            if new_value.shape != old_value.shape:
                raise ValueError(
                    f"reparam: {type(reparam).__name__} at site {msg['name']!r} changed the "
                    f"value's shape from {tuple(old_value.shape)} to {tuple(new_value.shape)}"
                )
            # an initial value chosen by the user (not by a default strategy) is lost
            if getattr(old_value, "_pyro_custom_init", True):
                warnings.warn(
                    f"At ember.sample({msg['name']!r},...), {type(reparam).__name__} does not "
                    "commute with initialization; falling back to default initialization.",
                    RuntimeWarning,
                    stacklevel=2,
                )
        msg["fn"] = new_msg["fn"]
        msg["value"] = new_value
        msg["is_observed"] = new_msg["is_observed"]


def early_init_messengers():
    """The handlers on the stack that ask to run before a reparameterizer
    (``applies_before_reparam = True``, as initialization handlers do), innermost first.

    Running them early lets a reparameterizer see an initial value of the
    original site; they do not overwrite values, so running again later is harmless.
    """
    return [m for m in reversed(get_stack()) if getattr(m, "applies_before_reparam", False)]


class ReparamHandler:
    """A function wrapped by a :class:`ReparamMessenger`; each call records its
    arguments on the messenger (``args_kwargs``) for the reparameterizers."""

    def __init__(self, msngr: ReparamMessenger, fn: Callable):
        self.msngr = msngr
        self.fn = fn
        self.__wrapped__ = fn
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        self.__doc__ = getattr(fn, "__doc__", None)

    def __call__(self, *args, **kwargs):
        self.msngr._args_kwargs = args, kwargs
        try:
            with self.msngr:
                return self.fn(*args, **kwargs)
        finally:
            self.msngr._args_kwargs = None
