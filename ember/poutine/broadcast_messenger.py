"""Pyro's module path for :class:`BroadcastMessenger`.

Example::

    >>> from ember.poutine.broadcast_messenger import BroadcastMessenger
    >>> BroadcastMessenger.__name__
    'BroadcastMessenger'
"""

from ember.poutine.plate_messenger import BroadcastMessenger

__all__ = ["BroadcastMessenger"]
