"""The marginal einsum backend: forward ``einsum`` is the log-space sum-product,
backward gives every marked operand the (unnormalized) log-marginal of the whole
product over that operand's dims.

Example::

    >>> import torch
    >>> from ember.ops.einsum import contract
    >>> from ember.ops.einsum.adjoint import require_backward
    >>> x, y = torch.randn(2, 3), torch.randn(3)
    >>> require_backward(x)
    >>> z = contract("ab,b->", x, y, backend="ember.ops.einsum.torch_marginal")
    >>> z._pyro_backward()
    >>> bool(torch.allclose(x._pyro_backward_result, x + y))
    True
"""

from __future__ import annotations

import torch

from ember.ops.einsum import torch_log
from ember.ops.einsum.adjoint import Backward, transpose
from ember.ops.einsum.util import Tensordot

__all__ = ["einsum", "tensordot", "transpose"]


class _MarginalBackward(Backward):
    def __init__(self, equation: str, operands):
        self.equation = equation
        self.operands = operands

    def process(self, message):
        lhs, output = self.equation.split("->")
        inputs = lhs.split(",")
        operands = list(self.operands)
        if message is not None:
            if message.dim() != len(output):
                raise ValueError(
                    f"marginal backward: message of shape {tuple(message.shape)} does not "
                    f"match the output {output!r} of {self.equation!r}"
                )
            inputs.append(output)
            operands.append(message)
        for i, x in enumerate(self.operands):
            backward = getattr(x, "_pyro_backward", None)
            if backward is None:
                continue
            # a leaf gets the whole product; an intermediate result gets what lies
            # outside it (its own operands add themselves further back)
            keep = [j for j in range(len(operands)) if backward.is_leaf or j != i]
            if not keep:
                yield backward, None
                continue
            others = ",".join(inputs[j] for j in keep)
            target = "".join(d for d in inputs[i] if d in others)
            msg = torch_log.einsum(others + "->" + target, *(operands[j] for j in keep))
            if target != inputs[i]:
                for pos, d in enumerate(inputs[i]):
                    if d not in target:
                        msg = msg.unsqueeze(pos)
                msg = msg.expand(x.shape)
            yield backward, msg


def einsum(equation: str, *operands: torch.Tensor) -> torch.Tensor:
    """Log-space sum-product of ``operands`` (the adjoint needs no dim names)."""
    result = torch_log.einsum(equation, *operands)
    if any(hasattr(x, "_pyro_backward") for x in operands):
        result._pyro_backward = _MarginalBackward(equation, operands)
    return result


tensordot = Tensordot(einsum)
