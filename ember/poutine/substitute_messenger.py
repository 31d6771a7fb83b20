"""SubstituteMessenger: give param sites fixed values."""

from __future__ import annotations

from typing import Callable

from ember.poutine.messenger import Messenger


class SubstituteMessenger(Messenger):
    """Replace ``ember.param`` values by ``data[name]`` or ``substitute_fn(msg)``.

    Sites with no substitute (``None``) keep their param-store value.

    Example::

        >>> import torch, ember
        >>> ember.clear_param_store()
        >>> model = lambda: ember.param("w", torch.zeros(2))
        >>> ember.poutine.substitute(model, data={"w": torch.ones(2)})()
        tensor([1., 1.])
    """

    def __init__(self, data: dict | None = None, substitute_fn: Callable | None = None):
        super().__init__()
        if data is None and substitute_fn is None:
            raise ValueError("substitute needs data= (a dict) or substitute_fn=")
        self.data = {} if data is None else data
        self.substitute_fn = substitute_fn

    def _pyro_param(self, msg) -> None:
        value = self.data.get(msg["name"])
        if value is None and self.substitute_fn is not None:
            value = self.substitute_fn(msg)
        if value is not None:
            msg["value"] = value
            msg["done"] = True
