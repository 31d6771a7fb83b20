"""Arrowhead matrices: symmetric matrices that are dense in their first ``h`` rows and
columns (the "head") and diagonal elsewhere, and their upper-triangular square roots.
They store a dense-block-plus-diagonal mass matrix (HMC with ``full_mass`` on some
sites) in ``O(h * n)`` memory with ``O(h^2 * n)`` factorisation.

A :class:`SymmArrowhead` ``(top, bottom_diag)`` stands for the symmetric ``n x n``
matrix whose first ``h`` rows are ``top`` (shape ``(h, n)``), whose remaining rows
are zero except for ``bottom_diag`` (shape ``(n - h,)``) on the diagonal, and whose
first ``h`` columns mirror ``top``. A :class:`TriuArrowhead` ``(top, bottom_diag)``
stands for the upper-triangular matrix with those first ``h`` rows and that
diagonal below them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["SymmArrowhead", "TriuArrowhead", "sqrt", "triu_gram", "triu_inverse", "triu_matvecmul"]


class SymmArrowhead(NamedTuple):
    """A symmetric arrowhead matrix: the head rows ``top`` ``(h, n)`` and the
    diagonal ``bottom_diag`` ``(n - h,)`` of the rest."""

    top: torch.Tensor
    bottom_diag: torch.Tensor


class TriuArrowhead(NamedTuple):
    """An upper-triangular arrowhead matrix: the head rows ``top`` ``(h, n)`` (zero
    below the diagonal) and the diagonal ``bottom_diag`` ``(n - h,)`` of the rest."""

    top: torch.Tensor
    bottom_diag: torch.Tensor


def _head_size(x) -> int:
    h, n = x.top.shape[-2], x.top.shape[-1]
    if x.top.dim() != 2 or x.bottom_diag.shape != (n - h,):
        raise ValueError(
            f"an arrowhead needs top of shape (h, n) and bottom_diag of shape (n - h,); "
            f"got top {tuple(x.top.shape)} and bottom_diag {tuple(x.bottom_diag.shape)}"
        )
    return h


def _flip_cholesky(a: torch.Tensor) -> torch.Tensor:
    """The upper-triangular ``U`` with ``U @ U.T == a`` (Cholesky of the reversed
    matrix, reversed back)."""
    return torch.linalg.cholesky(a.flip(-2, -1)).flip(-2, -1)


def sqrt(x: SymmArrowhead) -> TriuArrowhead:
    """The upper-triangular arrowhead ``U`` with ``U @ U.T`` equal to the positive
    definite arrowhead ``x``.

    With ``x = [[A, B], [B.T, diag(d)]]``: ``U = [[S, B / sqrt(d)], [0, diag(sqrt(d))]]``
    where ``S`` is the upper-triangular root of the Schur complement
    ``A - B diag(1/d) B.T``.

    Example::

        >>> x = SymmArrowhead(torch.tensor([[4.0, 1.0]]), torch.tensor([1.0]))
        >>> sqrt(x)
        TriuArrowhead(top=tensor([[1.7321, 1.0000]]), bottom_diag=tensor([1.]))
    """
    h = _head_size(x)
    if bool((x.bottom_diag <= 0).any()):
        raise ValueError(
            "sqrt: the arrowhead is not positive definite: bottom_diag has entries <= 0"
        )
    root_d = x.bottom_diag.sqrt()
    if h == 0:
        return TriuArrowhead(x.top, root_d)
    head, cross = x.top[:, :h], x.top[:, h:]
    top_right = cross / root_d
    schur = head - top_right @ top_right.T
    try:
        top_left = _flip_cholesky(schur)
    except RuntimeError as e:  # torch.linalg.LinAlgError subclasses RuntimeError
        raise ValueError(f"sqrt: the arrowhead matrix is not positive definite ({e})") from e
    return TriuArrowhead(torch.cat([top_left, top_right], dim=-1), root_d)


def triu_inverse(x: TriuArrowhead) -> TriuArrowhead:
    """The inverse of an upper-triangular arrowhead (again one):
    ``[[T, C], [0, diag(e)]]^-1 = [[T^-1, -T^-1 C / e], [0, diag(1/e)]]``."""
    h = _head_size(x)
    inv_e = x.bottom_diag.reciprocal()
    if h == 0:
        return TriuArrowhead(x.top, inv_e)
    t, c = x.top[:, :h], x.top[:, h:]
    eye = torch.eye(h, dtype=t.dtype, device=t.device)
    t_inv = torch.linalg.solve_triangular(t, eye, upper=True)
    return TriuArrowhead(torch.cat([t_inv, -(t_inv @ c) * inv_e], dim=-1), inv_e)


def triu_matvecmul(x: TriuArrowhead, y: torch.Tensor, transpose: bool = False) -> torch.Tensor:
    """``U @ y`` (or ``U.T @ y`` when ``transpose``) for an upper-triangular arrowhead
    ``U`` and a vector ``y`` of length ``n``."""
    h = _head_size(x)
    n = x.top.shape[-1] if h else x.bottom_diag.shape[0]
    if y.shape[-1:] != (n,):
        raise ValueError(f"triu_matvecmul: y must end in a dim of size {n}, got {tuple(y.shape)}")
    if transpose:
        out = torch.cat([torch.zeros_like(y[..., :h]), x.bottom_diag * y[..., h:]], dim=-1)
        if h:
            out = out + y[..., :h] @ x.top
        return out
    head = (x.top @ y.unsqueeze(-1)).squeeze(-1) if h else y[..., :0]
    return torch.cat([head, x.bottom_diag * y[..., h:]], dim=-1)


def triu_gram(x: TriuArrowhead) -> torch.Tensor:
    """The Gram matrix ``U.T @ U`` of an upper-triangular arrowhead ``U``; when ``U``
    is diagonal (``h == 0``) just the diagonal of the Gram matrix, as a vector."""
    h = _head_size(x)
    if h == 0:
        return x.bottom_diag.pow(2)
    tail = torch.cat([torch.zeros_like(x.top[0, :h]), x.bottom_diag.pow(2)])
    return x.top.T @ x.top + torch.diag(tail)
