"""Closed-form linear algebra for small batched matrices (1x1, 2x2, 3x3).

These formulas are used by :mod:`ember.ops.newton`, where a batch of many tiny
Hessians has to be inverted cheaply and differentiably.
"""

import math
import warnings
from contextlib import contextmanager

import torch

__all__ = ["determinant_3d", "eig_3d", "ignore_torch_deprecation_warnings", "inv3d", "rinverse"]


@contextmanager
def ignore_torch_deprecation_warnings():
    """Context manager that silences torch's ``triangular_solve`` deprecation warning.

    Example::

        >>> with ignore_torch_deprecation_warnings():
        ...     pass
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "torch.triangular_solve is deprecated")
        yield


def _check_square(M, size=None):
    if M.dim() < 2 or M.shape[-1] != M.shape[-2]:
        raise ValueError(
            f"expected a batch of square matrices, got shape {tuple(M.shape)}; "
            "the two rightmost dimensions must be equal"
        )
    if size is not None and M.shape[-1] != size:
        raise ValueError(f"expected a batch of {size}x{size} matrices, got {tuple(M.shape)}")


def rinverse(M, sym=False):
    """Inverse of a batch of square matrices over the two rightmost dimensions.

    Sizes 1, 2 and 3 use the explicit cofactor formulas (cheap and differentiable
    for large batches of tiny matrices); larger sizes defer to
    :func:`torch.linalg.inv`.

    :param torch.Tensor M: tensor of shape ``batch + (n, n)``.
    :param bool sym: whether ``M`` is known to be symmetric (the 3x3 formula then
        mirrors the upper triangle of the result).
    :rtype: torch.Tensor

    Example::

        >>> rinverse(torch.tensor([[2.0, 1.0], [1.0, 1.0]]))
        tensor([[ 1., -1.],
                [-1.,  2.]])
    """
    _check_square(M)
    n = M.shape[-1]
    if n == 1:
        return M.reciprocal()
    if n == 2:
        a, b = M[..., 0, 0], M[..., 0, 1]
        c, d = M[..., 1, 0], M[..., 1, 1]
        det = a * d - b * c
        adj = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2)
        return adj / det[..., None, None]
    if n == 3:
        return inv3d(M, sym=sym)
    return torch.linalg.inv(M)


def determinant_3d(H):
    """Determinant of a batch of 3x3 matrices by cofactor expansion along the first row.

    Example::

        >>> determinant_3d(torch.diag(torch.tensor([1.0, 2.0, 3.0])))
        tensor(6.)
    """
    _check_square(H, 3)
    return (
        H[..., 0, 0] * (H[..., 1, 1] * H[..., 2, 2] - H[..., 1, 2] * H[..., 2, 1])
        - H[..., 0, 1] * (H[..., 1, 0] * H[..., 2, 2] - H[..., 1, 2] * H[..., 2, 0])
        + H[..., 0, 2] * (H[..., 1, 0] * H[..., 2, 1] - H[..., 1, 1] * H[..., 2, 0])
    )


def eig_3d(H):
    """Eigenvalues of a batch of symmetric 3x3 matrices, by the trigonometric formula.

    Returns a triple ``(smallest, middle, largest)`` of tensors of the batch shape.

    Example::

        >>> lo, mid, hi = eig_3d(torch.diag(torch.tensor([3.0, 1.0, 2.0])))
        >>> [round(float(v), 4) for v in (lo, mid, hi)]
        [1.0, 2.0, 3.0]
    """
    _check_square(H, 3)
    off = H[..., 0, 1].pow(2) + H[..., 0, 2].pow(2) + H[..., 1, 2].pow(2)
    trace = H[..., 0, 0] + H[..., 1, 1] + H[..., 2, 2]
    q = trace / 3
    dev = (
        (H[..., 0, 0] - q).pow(2) + (H[..., 1, 1] - q).pow(2) + (H[..., 2, 2] - q).pow(2)
    ) + 2 * off
    p = (dev / 6).sqrt()
    eye = torch.eye(3, dtype=H.dtype, device=H.device)
    B = (H - q[..., None, None] * eye) / p[..., None, None]
    r = determinant_3d(B) / 2
    # acos is only defined on [-1, 1]; round-off can leave r slightly outside,
    # and the derivative of acos blows up at the ends, so pin the angle there.
    phi = r.clamp(-1.0, 1.0).acos() / 3
    phi = torch.where(r <= -1 + 1e-6, torch.full_like(phi, math.pi / 3), phi)
    phi = torch.where(r >= 1 - 1e-6, torch.zeros_like(phi), phi)
    largest = q + 2 * p * phi.cos()
    smallest = q + 2 * p * (phi + 2 * math.pi / 3).cos()
    middle = trace - largest - smallest
    return smallest, middle, largest


def inv3d(H, sym=False):
    """Inverse of a batch of 3x3 matrices via the adjugate.

    :param bool sym: if true, ``H`` is assumed symmetric and the lower triangle of
        the adjugate is mirrored from the upper one.

    Example::

        >>> inv3d(torch.diag(torch.tensor([1.0, 2.0, 4.0]))).diagonal()
        tensor([1.0000, 0.5000, 0.2500])
    """
    _check_square(H, 3)

    def cof(i, j):
        # cofactor C_ij = (-1)^(i+j) * minor_ij, using cyclic index order
        i1, i2 = (i + 1) % 3, (i + 2) % 3
        j1, j2 = (j + 1) % 3, (j + 2) % 3
        return H[..., i1, j1] * H[..., i2, j2] - H[..., i1, j2] * H[..., i2, j1]

    # adjugate = transpose of the cofactor matrix
    rows = []
    for i in range(3):
        row = []
        for j in range(3):
            if sym and i > j:
                row.append(cof(i, j))  # adj[i, j] = C_ji = C_ij for symmetric H
            else:
                row.append(cof(j, i))
        rows.append(torch.stack(row, -1))
    adj = torch.stack(rows, -2)
    return adj / determinant_3d(H)[..., None, None]
