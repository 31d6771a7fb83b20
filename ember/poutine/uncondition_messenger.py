"""Pyro's module path for :class:`UnconditionMessenger`.

Example::

    >>> from ember.poutine.uncondition_messenger import UnconditionMessenger
    >>> UnconditionMessenger.__name__
    'UnconditionMessenger'
"""

from ember.poutine.condition_messenger import UnconditionMessenger

__all__ = ["UnconditionMessenger"]
