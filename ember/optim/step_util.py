"""What every hand-written optimizer's ``step`` does around its update rule.

:func:`evaluate_closure` runs the optional closure with gradients on;
:func:`dense_grads` lists a parameter group's parameters that have a gradient,
refusing sparse gradients with a clear error; :func:`check_adam_args` checks the
hyperparameters the Adam variants share.
"""

from __future__ import annotations

from typing import Callable, Iterator, Tuple

import torch

__all__ = ["check_adam_args", "dense_grads", "evaluate_closure"]


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


def check_adam_args(optimizer: str, lr, betas, eps, clip_norm, lrd) -> None:
    """Refuse, naming ``optimizer``, Adam hyperparameters out of range: ``lr >= 0``,
    ``eps >= 0``, two ``betas`` in ``[0, 1)``, ``clip_norm > 0`` and ``lrd > 0``.

    Example::

        >>> check_adam_args("MyAdam", 0.1, (0.9, 0.999), 1e-8, 10.0, 1.0)
        >>> check_adam_args("MyAdam", -0.1, (0.9, 0.999), 1e-8, 10.0, 1.0)
        Traceback (most recent call last):
        ...
        ValueError: MyAdam: invalid learning rate lr=-0.1; expected lr >= 0
    """
    if not 0.0 <= lr:
        raise ValueError(f"{optimizer}: invalid learning rate lr={lr}; expected lr >= 0")
    if not 0.0 <= eps:
        raise ValueError(f"{optimizer}: invalid eps={eps}; expected eps >= 0")
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"{optimizer}: invalid betas={betas}; expected two numbers in [0, 1)")
    if not 0.0 < clip_norm:
        raise ValueError(f"{optimizer}: invalid clip_norm={clip_norm}; expected clip_norm > 0")
    if not 0.0 < lrd:
        raise ValueError(f"{optimizer}: invalid lrd={lrd}; expected lrd > 0")
