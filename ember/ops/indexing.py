"""Indexing helpers for code that must work with scalars, batches and enumeration.

* :func:`index` / :class:`Index`: ordinary indexing, but an index may be a
  nested tuple (e.g. built from pieces) and repeated ``...`` are merged.
* :func:`vindex` / :class:`Vindex`: *vectorized* advanced indexing. Tensor
  indices broadcast with one another and with the indexed tensor's batch dims
  (everything left of the indexed dims), and ``:`` keeps a dim as an event dim
  on the right. This is what selecting a mixture component ``locs[z]`` needs
  when ``z`` carries plate and enumeration dims.
"""

from __future__ import annotations

import torch

__all__ = ["Index", "Vindex", "index", "vindex"]


def _flatten(args, out: list) -> None:
    if isinstance(args, tuple):
        for arg in args:
            _flatten(arg, out)
    elif not (args is Ellipsis and out and out[-1] is Ellipsis):
        out.append(args)


def index(tensor: torch.Tensor, args) -> torch.Tensor:
    """``tensor[args]`` where ``args`` may nest tuples; consecutive ``...`` count once.

    Lets code write ``x[..., t]`` once for ``t`` an int, a slice or a reshaping
    like ``(Ellipsis, None)`` (which would otherwise nest a tuple in the index).

    Example::

        >>> x = torch.arange(6.0).reshape(2, 3)
        >>> index(x, (Ellipsis, (Ellipsis, None))).shape  # x[..., None]
        torch.Size([2, 3, 1])
    """
    if not isinstance(args, tuple):
        return tensor[args]
    if not args:
        return tensor
    flat: list = []
    _flatten(args, flat)
    return tensor[tuple(flat)]


class Index:
    """``Index(x)[args]`` is :func:`index` ``(x, args)``.

    Example::

        >>> Index(torch.zeros(2, 3))[..., (Ellipsis, None)].shape
        torch.Size([2, 3, 1])
    """

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor

    def __getitem__(self, args) -> torch.Tensor:
        return index(self.tensor, args)


def _is_batched(arg) -> bool:
    return isinstance(arg, torch.Tensor) and arg.dim() > 0


def vindex(tensor: torch.Tensor, args) -> torch.Tensor:
    """Vectorized advanced indexing: ``tensor[args]`` with broadcasting tensor indices.

    Each entry of ``args`` is ``slice(None)`` (``:``), an int, or an integer
    tensor (with batch dims only). Without a leading ``...``, ``args`` index the
    leading dims of ``tensor`` (missing trailing entries are ``:``). With a
    leading ``...``, ``args`` index the rightmost dims and the dims left of them
    are *batch* dims, which broadcast with the tensor indices. The result has
    shape ``broadcast(batch dims, index shapes) + (sizes of the ':' dims)``.

    Example::

        >>> x = torch.arange(24.0).reshape(2, 3, 4)   # batch 2, then a 3 x 4 table
        >>> i = torch.tensor([[0], [2]])             # (2, 1): broadcasts with the batch
        >>> vindex(x, (Ellipsis, i, slice(None))).shape
        torch.Size([2, 2, 4])
        >>> y = vindex(x, (Ellipsis, i, slice(None)))  # y[r, b] = x[b, i[r, 0], :]
        >>> torch.equal(y[1, 0], x[0, 2]), torch.equal(y[0, 1], x[1, 0])
        (True, True)
    """
    if not isinstance(args, tuple):
        return tensor[args]
    if not args:
        return tensor
    if args[0] is Ellipsis:
        args = args[1:]
        if not args:
            return tensor
        event_dim = len(args)
        if event_dim > tensor.dim():
            raise IndexError(
                f"vindex: {event_dim} indices after '...' for a tensor with {tensor.dim()} dims"
            )
        args = (slice(None),) * (tensor.dim() - event_dim) + args
    else:
        if len(args) > tensor.dim():
            raise IndexError(f"vindex: {len(args)} indices for a tensor with {tensor.dim()} dims")
        event_dim = tensor.dim()
        args = args + (slice(None),) * (tensor.dim() - len(args))
    if any(a is Ellipsis for a in args):
        raise NotImplementedError("vindex: '...' is only supported as the first index")
    for a in args:
        if isinstance(a, slice) and a != slice(None):
            raise NotImplementedError(f"vindex: only ':' slices are supported, got {a}")
        if isinstance(a, torch.Tensor) and (a.dtype.is_floating_point or a.dtype == torch.bool):
            raise IndexError(f"vindex: tensor indices must be integers, got dtype {a.dtype}")
    batch_dim = tensor.dim() - event_dim
    batched = any(_is_batched(a) for a in args[batch_dim:])
    if not batched:
        return tensor[args]  # ordinary indexing already means the same
    # Every dim gets a tensor index; the ':' dims of the event part become the
    # rightmost result dims, in order, and everything else broadcasts left of them.
    new_event = sum(1 for a in args[batch_dim:] if isinstance(a, slice))
    full = []
    later_slices = 0
    for pos in reversed(range(tensor.dim())):
        a = args[pos]
        size = tensor.size(pos)
        if pos >= batch_dim and isinstance(a, slice):
            idx = torch.arange(size, device=tensor.device).reshape((size,) + (1,) * later_slices)
            later_slices += 1
        elif pos < batch_dim:  # a batch dim: aligned with the indices' rightmost batch dims
            offset = batch_dim - 1 - pos
            idx = torch.arange(size, device=tensor.device)
            idx = idx.reshape((size,) + (1,) * (offset + new_event))
        elif isinstance(a, torch.Tensor):
            idx = a.reshape(a.shape + (1,) * new_event)
        else:  # an int
            idx = torch.as_tensor(a, device=tensor.device)
        full.append(idx)
    full.reverse()
    return tensor[tuple(full)]


class Vindex:
    """``Vindex(x)[args]`` is :func:`vindex` ``(x, args)``.

    Example::

        >>> probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
        >>> z = torch.tensor([[0], [1]])  # e.g. an enumerated value along dim -2
        >>> Vindex(probs)[z, :].shape
        torch.Size([2, 1, 2])
    """

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor

    def __getitem__(self, args) -> torch.Tensor:
        return vindex(self.tensor, args)
