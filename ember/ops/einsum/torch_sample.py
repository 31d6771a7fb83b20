"""The sampling einsum backend: forward ``einsum`` is the log-space sum-product,
backward draws every summed dim from its conditional distribution given the
values drawn downstream (forward-filter backward-sample), so that the draws
together come from the normalized product of the operands.

Operands must be packed (carry ``_pyro_dims``); see :mod:`ember.ops.einsum.adjoint`.

Example::

    >>> import torch
    >>> from ember.ops.einsum import contract
    >>> from ember.ops.einsum.adjoint import require_backward
    >>> x = torch.tensor([0.0, -1e9]); x._pyro_dims = "a"  # all mass on a = 0
    >>> require_backward(x)
    >>> z = contract("a->", x, backend="ember.ops.einsum.torch_sample")
    >>> z._pyro_backward(); x._pyro_backward_result.tolist()
    [0]
"""

from __future__ import annotations

import torch

from ember.ops import packed
from ember.ops.einsum import torch_log
from ember.ops.einsum.adjoint import (
    Backward,
    combine_operands,
    einsum_backward_sample,
    transpose,
    unflatten,
)
from ember.ops.einsum.util import Tensordot
from ember.util import jit_iter

__all__ = ["einsum", "tensordot", "transpose"]


class _SampleBackward(Backward):
    def __init__(self, output: str, operands):
        self.output = output
        self.operands = operands

    def process(self, message):
        operands = list(self.operands)
        every = set().union(*(x._pyro_dims for x in operands))
        contract_dims = "".join(sorted(every - set(self.output)))
        if message is not None:
            # fix the dims already chosen downstream at their chosen values
            for dim, index in zip(message._pyro_sample_dims, jit_iter(message)):
                index._pyro_dims = message._pyro_dims[1:]
                operands = [
                    packed.gather(x, index, dim) if dim in x._pyro_dims else x for x in operands
                ]
        batch = "".join(sorted(set().union(*(x._pyro_dims for x in operands)) - set(contract_dims)))
        chosen = None
        if contract_dims:
            logits = combine_operands(operands, batch + contract_dims)
            batch_shape = logits.shape[: len(batch)]
            contract_shape = logits.shape[len(batch) :]
            flat = torch.distributions.Categorical(
                logits=logits.reshape(batch_shape + (-1,))
            ).sample()
            chosen = unflatten(flat, batch, contract_dims, contract_shape)
        return einsum_backward_sample(self.operands, chosen, message)


def einsum(equation: str, *operands: torch.Tensor) -> torch.Tensor:
    """Log-space sum-product of packed ``operands``; the result is packed."""
    equation = packed.rename_equation(equation, *operands)
    output = equation.split("->")[1]
    result = torch_log.einsum(equation, *operands)
    result._pyro_dims = output
    if any(hasattr(x, "_pyro_backward") for x in operands):
        result._pyro_backward = _SampleBackward(output, operands)
    return result


tensordot = Tensordot(einsum)
