"""The adjoint graph of the semiring einsum backends (map, sample, marginal).

A backend's forward ``einsum`` computes a contraction as usual; when one of its
operands was marked with :func:`require_backward` (or is itself the result of
such a contraction) it also attaches a :class:`Backward` to the result, in the
attribute ``_pyro_backward``. Calling the result's ``_pyro_backward()`` then
walks the contraction backwards, depth first, passing each step's *message* to
the steps that produced its operands, and stores what reaches each marked
tensor in its attribute ``_pyro_backward_result``.

Messages of the map and sample backends are *sample tensors*: packed integer
tensors whose dims are ``SAMPLE_SYMBOL`` followed by batch dims, and whose
attribute ``_pyro_sample_dims`` names, for each row along the first dim, the
variable (dim symbol) whose chosen value the row holds. Messages of the
marginal backend are log-value tensors laid out like the step's output.

Example::

    >>> import torch
    >>> from ember.ops.einsum import contract
    >>> x = torch.tensor([[0.0, 5.0], [1.0, 0.0]])  # log-weights over (a, b)
    >>> x._pyro_dims = "ab"
    >>> require_backward(x)
    >>> best = contract("ab->", x, backend="ember.ops.einsum.torch_map")
    >>> best._pyro_backward()
    >>> x._pyro_backward_result.tolist(), x._pyro_backward_result._pyro_sample_dims
    ([0, 1], 'ab')
"""

from __future__ import annotations

import weakref
from abc import ABCMeta, abstractmethod
from typing import Iterable, Optional, Sequence, Tuple

import torch

from ember.ops import packed
from ember.util import jit_iter

__all__ = [
    "SAMPLE_SYMBOL",
    "Backward",
    "combine_operands",
    "einsum_backward_sample",
    "require_backward",
    "transpose",
    "unflatten",
]

#: The name of the first dim of a sample tensor (one row per sampled variable); a
#: character that sorts before every letter and is never a variable's symbol.
SAMPLE_SYMBOL = " "


class Backward(metaclass=ABCMeta):
    """One step of the adjoint graph.

    :meth:`process` takes the message that reached this step and returns the
    ``(backward, message)`` pairs to pass on; calling the object runs the whole
    backward pass from here, depth first.
    """

    is_leaf = False

    def __call__(self) -> None:
        stack = [(self, None)]
        while stack:
            step, message = stack.pop()
            stack.extend(step.process(message))

    @abstractmethod
    def process(self, message) -> Iterable[Tuple[Backward, object]]:
        """The ``(backward, message)`` pairs this step sends given ``message``."""
        raise NotImplementedError


class _LeafBackward(Backward):
    """Stores the message that reaches a marked tensor on that tensor."""

    is_leaf = True

    def __init__(self, target: torch.Tensor):
        # a weak reference: the tensor owns this object, not the other way round
        self.target = weakref.ref(target)

    def process(self, message):
        target = self.target()
        if target is None:
            return ()
        if message is target:
            raise ValueError(
                "require_backward: the message reaching a tensor is the tensor itself, which "
                "would make it keep itself alive; backends must return new tensor objects"
            )
        target._pyro_backward_result = message
        return ()


def require_backward(tensor: torch.Tensor) -> None:
    """Mark ``tensor`` as a leaf of the adjoint graph: after a backward pass of a
    contraction it entered, ``tensor._pyro_backward_result`` holds its message."""
    tensor._pyro_backward = _LeafBackward(tensor)


class _TransposeBackward(Backward):
    def __init__(self, a: torch.Tensor, axes: Sequence[int]):
        self.a = a
        self.axes = tuple(axes)

    def process(self, message):
        if message is not None and not hasattr(message, "_pyro_sample_dims"):
            # a positional message (marginal backend): undo the permutation
            inverse = [0] * len(self.axes)
            for i, j in enumerate(self.axes):
                inverse[j] = i
            message = message.permute(inverse)
        # sample tensors name their dims: they pass through unchanged
        yield self.a._pyro_backward, message


def transpose(a: torch.Tensor, axes: Sequence[int]) -> torch.Tensor:
    """Permute ``a`` (``opt_einsum``'s backend interface), keeping dim names and the
    adjoint graph."""
    axes = tuple(axes)
    result = a.permute(axes)
    dims = getattr(a, "_pyro_dims", None)
    if dims is not None:
        result._pyro_dims = "".join(dims[i] for i in axes)
    if hasattr(a, "_pyro_backward"):
        result._pyro_backward = _TransposeBackward(a, axes)
    return result


def _named_sample(tensor: torch.Tensor, dims: str, sample_dims: str) -> torch.Tensor:
    tensor._pyro_dims = dims
    tensor._pyro_sample_dims = sample_dims
    return tensor


def _align_sample(sample: torch.Tensor, batch: str, sizes: dict) -> torch.Tensor:
    """``sample`` with its batch dims permuted and expanded to ``batch``."""
    own = sample._pyro_dims[1:]
    perm = [0] + [1 + own.index(d) for d in batch if d in own]
    x = sample.permute(perm)
    x = x.reshape((x.shape[0],) + tuple(sizes[d] if d in own else 1 for d in batch))
    return x.expand((x.shape[0],) + tuple(sizes[d] for d in batch))


def einsum_backward_sample(operands, sample1, sample2):
    """Combine the choices made at an einsum step with those passed to it, and send
    each operand (that takes part in the backward pass) the choices of its dims.

    :param operands: the step's operands (packed tensors).
    :param sample1: the sample tensor chosen at this step (for the dims it summed
        out, indexed by its output dims), or None.
    :param sample2: the sample tensor that reached this step (for some of its
        output dims), or None.
    :return: ``(backward, message)`` pairs.
    """
    if sample1 is None:
        sample = sample2
    elif sample2 is None:
        sample = sample1
    else:
        overlap = set(sample1._pyro_sample_dims) & set(sample2._pyro_sample_dims)
        if overlap:
            raise ValueError(f"einsum backward: dims {sorted(overlap)} were chosen twice")
        # this step's choices depend on the output dims chosen downstream: pick them there
        for dim, index in zip(sample2._pyro_sample_dims, jit_iter(sample2)):
            if dim in sample1._pyro_dims:
                index._pyro_dims = sample2._pyro_dims[1:]
                rows = []
                for row in jit_iter(sample1):
                    row._pyro_dims = sample1._pyro_dims[1:]
                    rows.append(packed.gather(row, index, dim))
                batch = rows[0]._pyro_dims
                stacked = torch.stack(
                    packed.broadcast_all(*rows, dims=batch) if len(rows) > 1 else rows
                )
                sample1 = _named_sample(stacked, SAMPLE_SYMBOL + batch, sample1._pyro_sample_dims)
        sizes = {}
        for s in (sample1, sample2):
            sizes.update(zip(s._pyro_dims[1:], s.shape[1:]))
        batch = "".join(sorted(sizes))
        sample = torch.cat([_align_sample(s, batch, sizes) for s in (sample1, sample2)])
        _named_sample(
            sample,
            SAMPLE_SYMBOL + batch,
            sample1._pyro_sample_dims + sample2._pyro_sample_dims,
        )
    for x in operands:
        backward = getattr(x, "_pyro_backward", None)
        if backward is None:
            continue
        if sample is None:
            yield backward, None
            continue
        mine = [d for d in sample._pyro_sample_dims if d in x._pyro_dims]
        if not mine:
            yield backward, None
        elif len(mine) == len(sample._pyro_sample_dims):
            yield backward, sample
        else:
            mine = sorted(mine)
            rows = sample[[sample._pyro_sample_dims.index(d) for d in mine]]
            yield backward, _named_sample(rows, sample._pyro_dims, "".join(mine))


def unflatten(
    flat_sample: torch.Tensor, output_dims: str, contract_dims: str, contract_shape
) -> torch.Tensor:
    """A sample tensor from flat indices into the joint values of ``contract_dims``
    (row-major over ``contract_shape``), batched over ``output_dims``."""
    if not contract_dims:
        raise ValueError("unflatten needs at least one contracted dim")
    rows = []
    rest = flat_sample
    for size in reversed(tuple(contract_shape)):
        rows.append(rest % size)
        rest = rest // size
    sample = torch.stack(rows[::-1])
    return _named_sample(sample, SAMPLE_SYMBOL + output_dims, contract_dims)


def combine_operands(operands, dims: str) -> torch.Tensor:
    """The sum of the packed ``operands``, broadcast to the dims ``dims`` in order
    (a product in log space)."""
    sizes = {}
    for x in operands:
        sizes.update(zip(x._pyro_dims, x.shape))
    if set(sizes) != set(dims):
        raise ValueError(f"combine_operands: dims {dims!r} must name exactly {sorted(sizes)}")
    total: Optional[torch.Tensor] = None
    for x in operands:
        own = x._pyro_dims
        if own != dims:
            if own:
                x = x.permute([own.index(d) for d in dims if d in own])
            x = x.reshape(tuple(sizes[d] if d in own else 1 for d in dims))
        total = x if total is None else total + x
    return total.expand(tuple(sizes[d] for d in dims))
