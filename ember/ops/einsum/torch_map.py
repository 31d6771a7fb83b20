"""The max-sum einsum backend: forward ``einsum`` maximizes over summed dims (in log
space), backward recovers the maximizing values (argmax) of every summed dim.

Operands must be packed (carry ``_pyro_dims``); see :mod:`ember.ops.einsum.adjoint`.

Example::

    >>> import torch
    >>> from ember.ops.einsum import contract
    >>> from ember.ops.einsum.adjoint import require_backward
    >>> x = torch.tensor([[0.0, 1.0], [3.0, 0.0]]); x._pyro_dims = "ab"
    >>> require_backward(x)
    >>> best = contract("ab->", x, backend="ember.ops.einsum.torch_map")
    >>> float(best)
    3.0
    >>> best._pyro_backward(); x._pyro_backward_result.flatten().tolist()
    [1, 0]
"""

from __future__ import annotations

import torch

from ember.ops import packed
from ember.ops.einsum.adjoint import (
    Backward,
    combine_operands,
    einsum_backward_sample,
    transpose,
    unflatten,
)
from ember.ops.einsum.util import Tensordot

__all__ = ["einsum", "tensordot", "transpose"]


class _MapBackward(Backward):
    def __init__(self, operands, argmax):
        self.operands = operands
        self.argmax = argmax

    def process(self, message):
        return einsum_backward_sample(self.operands, self.argmax, message)


def einsum(equation: str, *operands: torch.Tensor) -> torch.Tensor:
    """Max-sum contraction of packed log-value ``operands``; the result is packed."""
    equation = packed.rename_equation(equation, *operands)
    output = equation.split("->")[1]
    needs_backward = any(hasattr(x, "_pyro_backward") for x in operands)
    every = set().union(*(x._pyro_dims for x in operands))
    contract_dims = "".join(sorted(every - set(output)))
    result = combine_operands(operands, output + contract_dims)
    argmax = None
    if contract_dims:
        out_shape = result.shape[: len(output)]
        contract_shape = result.shape[len(output) :]
        result, flat = result.reshape(out_shape + (-1,)).max(-1)
        if needs_backward:
            argmax = unflatten(flat, output, contract_dims, contract_shape)
    elif any(result is x for x in operands):
        result = result.clone()
    result._pyro_dims = output
    if needs_backward:
        result._pyro_backward = _MapBackward(operands, argmax)
    return result


tensordot = Tensordot(einsum)
