"""Pyro's module path for :class:`SubsampleMessenger` and the subsample distribution.

Example::

    >>> from ember.poutine.subsample_messenger import SubsampleMessenger
    >>> SubsampleMessenger.__name__
    'SubsampleMessenger'
"""

from ember.poutine.plate_messenger import SubsampleMessenger, _Subsample

__all__ = ["SubsampleMessenger", "_Subsample"]
