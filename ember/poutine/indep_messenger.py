"""Pyro's module path for the independence frame and :class:`IndepMessenger`.

Example::

    >>> from ember.poutine.indep_messenger import CondIndepStackFrame, IndepMessenger
    >>> IndepMessenger.__name__
    'IndepMessenger'
"""

from ember.poutine.plate_messenger import IndepMessenger
from ember.poutine.runtime import CondIndepStackFrame

__all__ = ["CondIndepStackFrame", "IndepMessenger"]
