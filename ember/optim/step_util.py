"""What every hand-written optimizer's ``step`` does around its update rule.

:func:`evaluate_closure` runs the optional closure with gradients on;
:func:`dense_grads` lists a parameter group's parameters that have a gradient,
refusing sparse gradients with a clear error.
"""

from __future__ import annotations

from typing import Callable, Iterator, Tuple

import torch

__all__ = ["dense_grads", "evaluate_closure"]


def evaluate_closure(closure: Callable[[], float] | None) -> float | None:
    """``closure()`` evaluated with gradients on (``step`` runs under ``no_grad``), or None.

    Example::

        >>> evaluate_closure(lambda: 1.5), evaluate_closure(None)
        (1.5, None)
    """
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def dense_grads(group: dict, optimizer: str) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """``(param, grad)`` for each parameter of ``group`` that has a gradient.

    :raises TypeError: for a sparse gradient, naming ``optimizer``, which does
        not support them.

    Example::

        >>> p = torch.zeros(2, requires_grad=True); p.grad = torch.ones(2)
        >>> q = torch.zeros(1, requires_grad=True)
        >>> [g.tolist() for _, g in dense_grads({"params": [p, q]}, "MyOptim")]
        [[1.0, 1.0]]
    """
    for p in group["params"]:
        g = p.grad
        if g is None:
            continue
        if g.is_sparse:
            raise TypeError(
                f"{optimizer} does not support sparse gradients (parameter of shape "
                f"{tuple(p.shape)}); use ember.optim.SparseAdam for those parameters"
            )
        yield p, g
