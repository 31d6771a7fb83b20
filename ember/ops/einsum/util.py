"""Helpers shared by the einsum backends of :mod:`ember.ops.einsum`."""

from __future__ import annotations

from typing import Callable, Sequence, Tuple, Union

import opt_einsum

__all__ = ["EINSUM_SYMBOLS_BASE", "Tensordot"]

#: The letters einsum equations are written with, in the order they are handed out.
EINSUM_SYMBOLS_BASE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

Axes = Union[int, Tuple[Union[int, Sequence[int]], Union[int, Sequence[int]]]]


def _axis_list(axes: Union[int, Sequence[int]]) -> Tuple[int, ...]:
    return (axes,) if isinstance(axes, int) else tuple(axes)


class Tensordot:
    """A ``tensordot(x, y, axes)`` written as a call of the einsum ``einsum``.

    ``opt_einsum`` contracts some pairs with ``tensordot`` instead of ``einsum``;
    a semiring backend (log space, max-sum, ...) gets its ``tensordot`` from its
    own ``einsum`` this way. ``axes`` is as for :func:`numpy.tensordot`: an int
    (the last ``axes`` dims of ``x`` against the first ``axes`` dims of ``y``)
    or a pair of dims or dim lists. The result keeps the free dims of ``x``
    then those of ``y``, in order.

    Example::

        >>> import torch
        >>> dot = Tensordot(torch.einsum)
        >>> x, y = torch.randn(2, 3), torch.randn(3, 4)
        >>> bool(torch.allclose(dot(x, y, axes=1), x @ y))
        True
    """

    def __init__(self, einsum: Callable):
        self.einsum = einsum

    def equation(self, x_dim: int, y_dim: int, axes: Axes = 2) -> str:
        """The einsum equation of ``tensordot`` for operands with these numbers of dims."""
        if isinstance(axes, int):
            x_axes = tuple(range(x_dim - axes, x_dim))
            y_axes = tuple(range(axes))
        else:
            x_axes, y_axes = _axis_list(axes[0]), _axis_list(axes[1])
        if len(x_axes) != len(y_axes):
            raise ValueError(
                f"tensordot: axes {x_axes} of x and {y_axes} of y must pair up one to one"
            )
        x_axes = tuple(a % x_dim for a in x_axes) if x_dim else x_axes
        y_axes = tuple(a % y_dim for a in y_axes) if y_dim else y_axes
        x_sym = [None] * x_dim
        y_sym = [None] * y_dim
        letters = (opt_einsum.get_symbol(i) for i in range(x_dim + y_dim + 1))
        for a, b in zip(x_axes, y_axes):
            x_sym[a] = y_sym[b] = next(letters)
        out = []
        for syms in (x_sym, y_sym):
            for i, s in enumerate(syms):
                if s is None:
                    syms[i] = next(letters)
                    out.append(syms[i])
        return "".join(x_sym) + "," + "".join(y_sym) + "->" + "".join(out)

    def __call__(self, x, y, axes: Axes = 2):
        return self.einsum(self.equation(x.dim(), y.dim(), axes), x, y)
