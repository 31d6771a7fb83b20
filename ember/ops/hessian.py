"""Dense Hessian of a scalar with respect to a list of tensors."""

import torch

__all__ = ["hessian"]


def hessian(y, xs):
    """Hessian of the scalar ``y`` with respect to the flattened, concatenated ``xs``.

    Computed row by row with reverse-mode autodiff (one backward pass per input
    coordinate), so it is meant for small numbers of inputs.

    :param torch.Tensor y: a scalar depending differentiably on ``xs``.
    :param xs: a tensor or a sequence of tensors with ``requires_grad=True``.
    :return: a ``(D, D)`` tensor, ``D`` the total number of elements in ``xs``.

    Example::

        >>> x = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> hessian((x[0] ** 2 * x[1]), [x])
        tensor([[4., 2.],
                [2., 0.]])
    """
    if isinstance(xs, torch.Tensor):
        xs = [xs]
    xs = list(xs)
    if y.numel() != 1:
        raise ValueError(f"hessian expects a scalar y, got shape {tuple(y.shape)}")
    grads = torch.autograd.grad(y, xs, create_graph=True)
    flat = torch.cat([g.reshape(-1) for g in grads])
    rows = []
    for gi in flat:
        if gi.requires_grad:
            parts = torch.autograd.grad(gi, xs, retain_graph=True, allow_unused=True)
        else:
            parts = [None] * len(xs)
        rows.append(
            torch.cat(
                [
                    torch.zeros(x.numel(), dtype=flat.dtype, device=flat.device)
                    if p is None
                    else p.reshape(-1)
                    for x, p in zip(xs, parts)
                ]
            )
        )
    return torch.stack(rows)
