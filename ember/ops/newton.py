"""Batched Newton steps for many independent low-dimensional problems, optionally
restricted to a trust region. The result stays differentiable with respect to
the loss's parameters (the Newton fixed point is differentiable)."""

import torch
from torch.autograd import grad

from ember.ops.linalg import eig_3d, rinverse
from ember.util import warn_if_nan

__all__ = ["newton_step", "newton_step_1d", "newton_step_2d", "newton_step_3d"]


def newton_step(loss, x, trust_radius=None):
    """One Newton step minimizing a scalar ``loss`` over a batch of small vectors ``x``.

    ``x`` has shape ``batch + (D,)`` with ``D`` in ``{1, 2, 3}``; the loss must be a
    scalar (e.g. a sum over the batch) so that batch elements are independent
    problems. Returns ``(x_new, cov)`` where ``x_new`` has ``x``'s shape and ``cov``
    (shape ``batch + (D, D)``) is the inverse of the (regularized) Hessian, i.e. a
    Laplace covariance when ``loss`` is a negative log density. ``x_new`` is
    detached from ``x`` but differentiable with respect to anything else ``loss``
    depends on. With ``trust_radius`` the Hessian is shifted so that the step stays
    within that distance of ``x``.

    In a loop, detach ``x`` and set ``requires_grad`` before each loss evaluation.

    Example::

        >>> x = torch.zeros(4, 2, requires_grad=True)
        >>> target = torch.tensor([1.0, -2.0])
        >>> loss = ((x - target) ** 2).sum()
        >>> mode, cov = newton_step(loss, x)
        >>> mode[0].tolist(), cov[0].diagonal().tolist()
        ([1.0, -2.0], [0.5, 0.5])
    """
    if x.dim() < 1:
        raise ValueError(f"Expected x to have at least one dimension, actual shape {x.shape}")
    dim = x.shape[-1]
    if dim == 1:
        return newton_step_1d(loss, x, trust_radius)
    if dim == 2:
        return newton_step_2d(loss, x, trust_radius)
    if dim == 3:
        return newton_step_3d(loss, x, trust_radius)
    raise NotImplementedError(
        f"newton_step supports a rightmost size of 1, 2 or 3, got shape {tuple(x.shape)}"
    )


def _check(loss, x, size):
    if loss.shape != ():
        raise ValueError(f"Expected loss to be a scalar, actual shape {loss.shape}")
    if x.dim() < 1 or x.shape[-1] != size:
        raise ValueError(f"Expected x to have rightmost size {size}, actual shape {x.shape}")


def _grad_and_hessian(loss, x, size):
    g = grad(loss, [x], create_graph=True)[0]
    cols = [grad(g[..., i].sum(), [x], create_graph=True)[0] for i in range(size)]
    H = torch.stack(cols, -1)
    warn_if_nan(g, "g")
    warn_if_nan(H, "H")
    return g, H


def newton_step_1d(loss, x, trust_radius=None):
    """Newton step for ``x`` with rightmost size 1; see :func:`newton_step`.

    The curvature is clamped below at ``1e-8`` (so a non-convex point still moves
    downhill), and with ``trust_radius`` the step is clipped to that length.

    Example::

        >>> x = torch.tensor([[0.0]], requires_grad=True)
        >>> mode, cov = newton_step_1d(2 * (x - 3).pow(2).sum(), x)
        >>> mode.tolist(), cov.tolist()
        ([[3.0]], [[[0.25]]])
    """
    _check(loss, x, 1)
    g = grad(loss, [x], create_graph=True)[0]
    H = grad(g.sum(), [x], create_graph=True)[0]
    warn_if_nan(g, "g")
    warn_if_nan(H, "H")
    Hinv = H.clamp(min=1e-8).reciprocal()
    dx = -g * Hinv
    dx = torch.where(torch.isnan(dx), torch.zeros_like(dx), dx)
    if trust_radius is not None:
        dx = dx.clamp(min=-trust_radius, max=trust_radius)
    return x.detach() + dx, Hinv.unsqueeze(-1)


def _regularize(H, g, min_eig, trust_radius):
    # Shift the spectrum so that |step| <= |g| / (min_eig + shift) <= trust_radius.
    shift = (g.pow(2).sum(-1).sqrt() / trust_radius - min_eig).clamp(min=1e-8)
    warn_if_nan(shift, "regularizer")
    eye = torch.eye(H.shape[-1], dtype=H.dtype, device=H.device)
    return H + shift[..., None, None] * eye


def _apply(x, g, H):
    Hinv = rinverse(H, sym=True)
    warn_if_nan(Hinv, "Hinv")
    x_new = x.detach() - (Hinv @ g.unsqueeze(-1)).squeeze(-1)
    return x_new, Hinv


def newton_step_2d(loss, x, trust_radius=None):
    """Newton step for ``x`` with rightmost size 2; see :func:`newton_step`.

    Example::

        >>> x = torch.zeros(2, requires_grad=True)
        >>> A = torch.tensor([[2.0, 1.0], [1.0, 2.0]])
        >>> b = torch.tensor([1.0, 1.0])
        >>> mode, _ = newton_step_2d(0.5 * x @ A @ x - b @ x, x)
        >>> [round(v, 4) for v in mode.tolist()]  # solves A x = b
        [0.3333, 0.3333]
    """
    _check(loss, x, 2)
    g, H = _grad_and_hessian(loss, x, 2)
    if trust_radius is not None:
        det = H[..., 0, 0] * H[..., 1, 1] - H[..., 0, 1] * H[..., 1, 0]
        mean = (H[..., 0, 0] + H[..., 1, 1]) / 2
        min_eig = mean - (mean.pow(2) - det).clamp(min=0).sqrt()
        H = _regularize(H, g, min_eig, trust_radius)
    return _apply(x, g, H)


def newton_step_3d(loss, x, trust_radius=None):
    """Newton step for ``x`` with rightmost size 3; see :func:`newton_step`.

    Example::

        >>> x = torch.zeros(3, requires_grad=True)
        >>> target = torch.tensor([1.0, 2.0, 3.0])
        >>> mode, _ = newton_step_3d(((x - target) ** 2).sum(), x)
        >>> mode.tolist()
        [1.0, 2.0, 3.0]
    """
    _check(loss, x, 3)
    g, H = _grad_and_hessian(loss, x, 3)
    if trust_radius is not None:
        min_eig, _, _ = eig_3d(H)
        H = _regularize(H, g, min_eig, trust_radius)
    return _apply(x, g, H)
