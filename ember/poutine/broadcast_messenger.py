"""BroadcastMessenger: expand sample sites' distributions to the plates around them.

Example::

    >>> from ember.poutine.broadcast_messenger import BroadcastMessenger
    >>> BroadcastMessenger.__name__
    'BroadcastMessenger'
"""

from __future__ import annotations

from ember.poutine.broadcast import broadcast_to_plates
from ember.poutine.messenger import Messenger

__all__ = ["BroadcastMessenger"]


class BroadcastMessenger(Messenger):
    """Expand sample sites' distributions to the vectorized plates around them.

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember.poutine.indep_messenger import IndepMessenger
        >>> with ember.poutine.broadcast(), IndepMessenger("i", 4):
        ...     ember.sample("x", dist.Normal(0.0, 1.0)).shape
        torch.Size([4])
    """

    def _pyro_sample(self, msg) -> None:
        if msg["done"]:
            return
        broadcast_to_plates(msg)
