"""The base class of reparameterizers used by :func:`ember.poutine.reparam`."""

from __future__ import annotations

import warnings

import torch

__all__ = ["Reparam"]


class Reparam:
    """Base class of reparameterizers.

    A subclass implements :meth:`apply`, which receives a simplified message
    ``{"name", "fn", "value", "is_observed"}`` for one sample site, usually adds
    new sample sites, and returns ``{"fn", "value", "is_observed"}`` for the
    original site. Subclasses written for the older interface implement
    ``__call__(name, fn, obs) -> (new_fn, value)`` instead; :meth:`apply` then
    calls it (with a ``DeprecationWarning``). Either interface can be called on
    any reparameterizer.

    While a :class:`~ember.poutine.reparam_messenger.ReparamHandler` runs,
    ``self.args_kwargs`` holds the ``(args, kwargs)`` of the model call.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> class Shift(Reparam):
        ...     def apply(self, msg):
        ...         z = ember.sample(msg["name"] + "_z", msg["fn"])
        ...         return {"fn": dist.Delta(z).mask(False), "value": z, "is_observed": True}
        >>> model = lambda: ember.sample("x", dist.Normal(0.0, 1.0))
        >>> tr = ember.poutine.trace(ember.poutine.reparam(model, {"x": Shift()})).get_trace()
        >>> torch.equal(tr.nodes["x"]["value"], tr.nodes["x_z"]["value"])
        True
    """

    args_kwargs = None

    def apply(self, msg: dict) -> dict:
        """Reparameterize the site described by ``msg`` (keys ``name``, ``fn``,
        ``value``, ``is_observed``); return ``{"fn", "value", "is_observed"}``."""
        if type(self).__call__ is Reparam.__call__:
            raise NotImplementedError(
                f"{type(self).__name__} must implement apply(msg) (or the older "
                "__call__(name, fn, obs))"
            )
        warnings.warn(
            "Reparam.__call__() is deprecated in favor of .apply(); "
            f"implement {type(self).__name__}.apply(msg) instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        obs = msg["value"] if msg["is_observed"] else None
        new_fn, value = self(msg["name"], msg["fn"], obs)
        return {"fn": new_fn, "value": value, "is_observed": value is not None}

    def __call__(self, name: str, fn, obs):
        """The older interface: reparameterize site ``name`` with distribution ``fn``
        and observation ``obs`` (or None); return ``(new_fn, value)``."""
        if type(self).apply is Reparam.apply:
            raise NotImplementedError(
                f"{type(self).__name__} must implement apply(msg) (or the older "
                "__call__(name, fn, obs))"
            )
        out = self.apply({"name": name, "fn": fn, "value": obs, "is_observed": obs is not None})
        return out["fn"], out["value"]

    @staticmethod
    def unwrap_independent(fn):
        """``(base, event_dim)``: ``fn`` without its ``Independent`` wrappers, and
        ``fn``'s event dim."""
        event_dim = fn.event_dim
        while isinstance(fn, torch.distributions.Independent):
            fn = fn.base_dist
        return fn, event_dim

    @staticmethod
    def wrap_event(fn, event_dim: int):
        """``fn`` with batch dims moved into the event until its event dim is ``event_dim``."""
        if fn.event_dim < event_dim:
            fn = fn.to_event(event_dim - fn.event_dim)
        if fn.event_dim != event_dim:
            raise ValueError(
                f"cannot wrap {type(fn).__name__} with event_dim {fn.event_dim} to event_dim "
                f"{event_dim}"
            )
        return fn

    # Pyro's reparameterizers call these two names; kept so subclasses written for
    # Pyro run unchanged.
    _unwrap = unwrap_independent
    _wrap = wrap_event
