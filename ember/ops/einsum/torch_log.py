"""The log-space einsum backend: ``einsum`` on log-values (``logsumexp`` for sums,
``+`` for products), for ``opt_einsum.contract(..., backend="ember.ops.einsum.torch_log")``.

Example::

    >>> import torch
    >>> from ember.ops.einsum import contract
    >>> x, y = torch.randn(2, 3), torch.randn(3, 4)
    >>> z = contract("ab,bc->ac", x, y, backend="ember.ops.einsum.torch_log")
    >>> bool(torch.allclose(z, (x.exp() @ y.exp()).log()))
    True
"""

from __future__ import annotations

import torch

from ember.ops.einsum import log_einsum
from ember.ops.einsum.util import Tensordot

__all__ = ["einsum", "tensordot", "transpose"]


def transpose(a: torch.Tensor, axes) -> torch.Tensor:
    """Permute the dims of ``a`` (``opt_einsum``'s backend interface)."""
    return a.permute(tuple(axes))


def einsum(equation: str, *operands: torch.Tensor) -> torch.Tensor:
    """``log(torch.einsum(equation, *[x.exp() for x in operands]))``, computed stably.

    The result is always a new tensor object, also when the equation only
    renames or permutes a single operand (adjoint backends attach their
    backward to it and must not touch the operand's).
    """
    if "->" not in equation:
        raise ValueError(f"einsum needs an explicit output, e.g. 'ab,bc->ac'; got {equation!r}")
    result = log_einsum(equation, *operands)
    if any(result is x for x in operands):
        result = result.clone()
    return result


tensordot = Tensordot(einsum)
