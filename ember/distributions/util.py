"""Shape and arithmetic helpers for distributions: broadcasting with clear
errors, summing rightmost dims, scaling and masking log-densities."""

from __future__ import annotations

import numbers
from typing import Sequence

import torch

from ember.util import is_validation_enabled  # noqa: F401  (re-exported for convenience)


def broadcast_shape(*shapes: Sequence[int], strict: bool = False) -> torch.Size:
    """The shape that ``shapes`` broadcast to, or a ``ValueError`` naming them.

    With ``strict=True`` size-1 dims do not stretch: every non-missing dim must
    match exactly.

    Example::

        >>> broadcast_shape((2, 1), (3,))
        torch.Size([2, 3])
    """
    reversed_shape = []
    for shape in shapes:
        for i, size in enumerate(reversed(shape)):
            if i >= len(reversed_shape):
                reversed_shape.append(size)
            elif reversed_shape[i] == 1 and not strict:
                reversed_shape[i] = size
            elif reversed_shape[i] != size and (size != 1 or strict):
                raise ValueError(
                    "shapes cannot be broadcast together: "
                    + ", ".join(str(tuple(s)) for s in shapes)
                    + f" (they disagree at dim {-i - 1})"
                )
    return torch.Size(reversed(reversed_shape))


def sum_rightmost(value, dim: int):
    """Sum out the ``dim`` rightmost dims of ``value`` (all but ``-dim`` if negative).

    Example::

        >>> sum_rightmost(torch.ones(2, 3, 4), 2).shape
        torch.Size([2])
    """
    if isinstance(value, numbers.Number):
        return value
    if dim < 0:
        dim += value.dim()
    if dim == 0:
        return value
    return value.reshape(value.shape[: value.dim() - dim] + (-1,)).sum(-1)


def is_identically_zero(x) -> bool:
    """True only for a Python number equal to zero (never inspects a tensor)."""
    return isinstance(x, numbers.Number) and x == 0


def is_identically_one(x) -> bool:
    """True only for a Python number equal to one (never inspects a tensor)."""
    return isinstance(x, numbers.Number) and x == 1


def scale_and_mask(tensor, scale=1.0, mask=None):
    """``tensor * scale`` with entries where ``mask`` is False set to exactly 0.

    Masked entries become zero even when they are NaN or infinite, so a missing
    observation cannot poison a sum. ``mask`` may be None, a bool or a bool
    tensor; ``scale`` a number or a tensor.
    """
    if is_identically_zero(tensor):
        return tensor
    if mask is None or mask is True:
        return tensor if is_identically_one(scale) else tensor * scale
    if mask is False:
        return torch.zeros_like(tensor) if isinstance(tensor, torch.Tensor) else 0.0
    if not isinstance(tensor, torch.Tensor):
        tensor = torch.as_tensor(tensor, dtype=torch.get_default_dtype(), device=mask.device)
    tensor = torch.where(mask, tensor, tensor.new_zeros(()))
    return tensor if is_identically_one(scale) else tensor * scale


def eye_like(value: torch.Tensor, m: int, n: int = None) -> torch.Tensor:
    """An ``m x n`` identity with ``value``'s dtype and device."""
    n = m if n is None else n
    return torch.eye(m, n, dtype=value.dtype, device=value.device)


def tensor_of(dist):
    """Some tensor attribute of ``dist`` (to take its dtype and device from)."""
    for name in getattr(dist, "arg_constraints", {}):
        value = dist.__dict__.get(name)
        if isinstance(value, torch.Tensor):
            return value
    base = getattr(dist, "base_dist", None)
    if base is not None:
        return tensor_of(base)
    return torch.zeros(())
