"""EscapeMessenger: leave a run early with a NonlocalExit."""

from __future__ import annotations

from typing import Callable

from ember.poutine.messenger import Messenger
from ember.poutine.runtime import NonlocalExit


def _raise_exit(msg):
    raise NonlocalExit(msg)


class EscapeMessenger(Messenger):
    """Raise :class:`NonlocalExit` at the first sample site where ``escape_fn(msg)`` is true.

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember.poutine.runtime import NonlocalExit
        >>> model = lambda: ember.sample("x", dist.Bernoulli(0.5))
        >>> try:
        ...     ember.poutine.escape(model, escape_fn=lambda msg: True)()
        ... except NonlocalExit as e:
        ...     print(e.site["name"])
        x
    """

    def __init__(self, escape_fn: Callable):
        super().__init__()
        if not callable(escape_fn):
            raise TypeError("escape: escape_fn must be a callable taking a message")
        self.escape_fn = escape_fn

    def _pyro_sample(self, msg) -> None:
        if self.escape_fn(msg):
            msg["done"] = True
            msg["stop"] = True
            msg["continuation"] = _raise_exit
