"""Shape and arithmetic helpers for distributions: broadcasting with clear
errors, summing rightmost dims, scaling and masking log-densities."""

from __future__ import annotations

import math
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


_HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


def _stirling_shift(tol: float) -> int:
    """How many recursion steps make the shifted Stirling series accurate to ``tol``.

    With the ``1/(12 z)`` correction, Stirling's series for ``lgamma(z)`` errs by
    less than ``1/(360 z**3)``; three such terms for ``z >= m + 1`` stay below
    ``tol`` once ``(m + 1)**3 >= 1 / (120 tol)``.
    """
    return max(0, math.ceil((1.0 / (120.0 * tol)) ** (1.0 / 3.0)) - 1)


def log_factorial(x, tol: float = 0.0):
    """``log(x!) = lgamma(x + 1)``, exact when ``tol == 0``, else within ``tol``.

    The approximation shifts the argument up by ``m`` (chosen from ``tol``)
    with ``lgamma(z) = lgamma(z + m) - log(z (z+1) ... (z+m-1))`` and applies
    Stirling's series with one correction term at ``z + m``. When ``tol`` is
    so small that more than 8 shifts would be needed, ``lgamma`` is used.

    Example::

        >>> x = torch.tensor([0.0, 1.0, 10.0, 1e6])
        >>> bool(((log_factorial(x, tol=1e-3) - torch.lgamma(x + 1)).abs() < 1e-3).all())
        True
    """
    if tol <= 0:
        return torch.lgamma(x + 1)
    m = _stirling_shift(tol)
    if m > 8:
        return torch.lgamma(x + 1)
    z = x + 1
    shift = 0.0
    for j in range(m):
        shift = shift + torch.log(z + j)
    z = z + m
    return (z - 0.5) * torch.log(z) - z + _HALF_LOG_TWO_PI + 1 / (12 * z) - shift


def log_binomial(n, k, tol: float = 0.0):
    """``log(n choose k)``: exact if ``tol == 0``, else within ``tol`` (see :func:`log_factorial`).

    Example::

        >>> log_binomial(torch.tensor(5.0), torch.tensor(2.0)).exp().round()
        tensor(10.)
    """
    return log_factorial(n, tol) - log_factorial(k, tol) - log_factorial(n - k, tol)
