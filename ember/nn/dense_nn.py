"""Pyro's module path for :class:`DenseNN` and :class:`ConditionalDenseNN`.

Code written for Pyro imports them from ``pyro.nn.dense_nn``; they live in
:mod:`ember.nn.auto_reg_nn` with the other pure-torch networks.

Example::

    >>> from ember.nn.dense_nn import DenseNN
    >>> import ember.nn
    >>> DenseNN is ember.nn.DenseNN
    True
"""

from ember.nn.auto_reg_nn import ConditionalDenseNN, DenseNN

__all__ = ["ConditionalDenseNN", "DenseNN"]
