"""Packed tensors: tensors whose dims carry names instead of broadcast positions.

A *packed* tensor has only its non-trivial dims, and a string attribute
``_pyro_dims`` with one symbol (character) per dim naming it. :func:`pack` turns
an ordinary right-aligned broadcastable tensor into packed form, given a map from
negative dims to symbols; :func:`unpack` goes back. The other functions are
pointwise operations that line packed operands up by name.
"""

import math
import numbers

import torch

from ember.util import ignore_jit_warnings

__all__ = [
    "broadcast_all",
    "exp",
    "gather",
    "mul",
    "neg",
    "pack",
    "rename_equation",
    "scale_and_mask",
    "unpack",
]


def _dims(value, role="operand"):
    dims = getattr(value, "_pyro_dims", None)
    if dims is None:
        raise ValueError(
            f"{role} of shape {tuple(value.shape)} is not packed (no _pyro_dims); "
            "pack it first with ember.ops.packed.pack"
        )
    return dims


def _named(tensor, dims):
    tensor._pyro_dims = dims
    return tensor


def pack(value, dim_to_symbol):
    """Pack a tensor: drop its size-1 dims and name the rest.

    :param value: a number (returned unchanged) or a tensor.
    :param dict dim_to_symbol: map from negative dim (``-1`` rightmost) to a
        one-character symbol, for every dim of ``value`` with size > 1.
    :raises ValueError: if a non-trivial dim has no symbol, or ``value`` is
        already packed.

    Example::

        >>> x = pack(torch.zeros(3, 1, 2), {-3: "a", -1: "b"})
        >>> x.shape, x._pyro_dims
        (torch.Size([3, 2]), 'ab')
    """
    if not isinstance(value, torch.Tensor):
        return value
    if hasattr(value, "_pyro_dims"):
        raise ValueError(f"tried to pack an already-packed tensor (dims {value._pyro_dims!r})")
    shape = value.shape
    offset = len(shape)
    try:
        with ignore_jit_warnings():
            symbols = "".join(dim_to_symbol[i - offset] for i, size in enumerate(shape) if size > 1)
    except KeyError as e:
        allowed = ", ".join(str(d) for d in sorted(dim_to_symbol))
        raise ValueError(
            f"Invalid tensor shape {tuple(shape)}: dim {e.args[0]} has size > 1 but "
            f"only dims {allowed} are allowed. Try adding shape assertions for your "
            "model's sample values and distribution parameters."
        ) from None
    keep = [size for size in shape if size > 1]
    return _named(value.reshape(keep), symbols)


def unpack(value, symbol_to_dim):
    """Inverse of :func:`pack`: put each named dim back at its negative position.

    :param dict symbol_to_dim: map from symbol to negative dim.

    Example::

        >>> x = pack(torch.arange(6.0).reshape(3, 1, 2), {-3: "a", -1: "b"})
        >>> unpack(x, {"a": -3, "b": -1}).shape
        torch.Size([3, 1, 2])
    """
    if not isinstance(value, torch.Tensor):
        return value
    dims = _dims(value)
    if value.dim() != len(dims):
        raise ValueError(f"packed tensor of shape {tuple(value.shape)} has dims {dims!r}")
    if not dims:
        return value[...]  # a fresh view without the _pyro_dims attribute
    positions = [symbol_to_dim[s] for s in dims]
    order = sorted(range(len(dims)), key=lambda i: positions[i])
    value = value.permute(*order)
    shape = [1] * -min(positions)
    for i in order:
        shape[positions[i]] = value.shape[order.index(i)]
    return value.reshape(shape)


def broadcast_all(*values, **kwargs):
    """Broadcast packed tensors against each other by dim name.

    :param str dims: optional order of the output dims (must name exactly the
        union of the operands' dims); by default the sorted union.
    :return: tuple of packed tensors all of the same shape and dims.

    Example::

        >>> x = pack(torch.ones(2), {-1: "b"})
        >>> y = pack(torch.ones(3, 1), {-2: "a"})
        >>> [t.shape for t in broadcast_all(x, y)]
        [torch.Size([3, 2]), torch.Size([3, 2])]
    """
    unknown = set(kwargs) - {"dims"}
    if unknown:
        raise TypeError(f"broadcast_all got unexpected keyword arguments {sorted(unknown)}")
    sizes = {}
    for value in values:
        for symbol, size in zip(_dims(value), value.shape):
            sizes[symbol] = size
    dims = kwargs.get("dims")
    if dims is None:
        dims = "".join(sorted(sizes))
    elif set(dims) != set(sizes):
        raise ValueError(f"dims={dims!r} must name exactly the operands' dims {sorted(sizes)}")
    shape = torch.Size(sizes[s] for s in dims)
    result = []
    for value in values:
        old = value._pyro_dims
        if old != dims:
            value = value.permute([old.index(s) for s in dims if s in old])
            value = value.reshape(tuple(sizes[s] if s in old else 1 for s in dims))
            value = _named(value.expand(shape), dims)
        result.append(value)
    return tuple(result)


def gather(value, index, dim):
    """Select along the named dim ``dim`` of ``value`` at the (packed) ``index``,
    broadcasting the other dims; the result no longer has ``dim``.

    Example::

        >>> v = pack(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), {-2: "a", -1: "b"})
        >>> i = pack(torch.tensor([1, 0]), {-1: "a"})
        >>> out = gather(v, i, "b")
        >>> out.tolist(), out._pyro_dims
        ([2.0, 3.0], 'a')
    """
    vdims, idims = _dims(value, "value"), _dims(index, "index")
    if dim not in vdims:
        raise ValueError(f"gather dim {dim!r} is not among the value's dims {vdims!r}")
    if dim in idims:
        raise ValueError(f"gather dim {dim!r} must not be among the index's dims {idims!r}")
    value, index = broadcast_all(value, index)
    pos = value._pyro_dims.index(dim)
    out_dims = value._pyro_dims.replace(dim, "")
    index = index.narrow(pos, 0, 1)
    return _named(value.gather(pos, index).squeeze(pos), out_dims)


def mul(lhs, rhs):
    """Multiply packed tensors (or numbers), broadcasting by dim name.

    Example::

        >>> x = pack(torch.tensor([1.0, 2.0]), {-1: "b"})
        >>> y = pack(torch.tensor([[1.0], [10.0]]), {-2: "a"})
        >>> z = mul(x, y)
        >>> z.tolist(), z._pyro_dims
        ([[1.0, 2.0], [10.0, 20.0]], 'ab')
    """
    if isinstance(lhs, torch.Tensor) and isinstance(rhs, torch.Tensor):
        ldims, rdims = _dims(lhs), _dims(rhs)
        dims = "".join(sorted(set(ldims + rdims)))
        return _named(torch.einsum(f"{ldims},{rdims}->{dims}", lhs, rhs), dims)
    result = lhs * rhs
    if isinstance(lhs, torch.Tensor):
        return _named(result, _dims(lhs))
    if isinstance(rhs, torch.Tensor):
        return _named(result, _dims(rhs))
    return result


def _is_one(x):
    return isinstance(x, numbers.Number) and x == 1


def scale_and_mask(tensor, scale=1.0, mask=None):
    """Multiply a packed tensor by a scalar ``scale`` and zero it where ``mask`` is
    false, skipping work that would not change it.

    :param scale: a number or a scalar tensor.
    :param mask: ``None``/``True`` (keep all), ``False`` (zero all) or a packed
        boolean tensor, broadcast by dim name.

    Example::

        >>> t = pack(torch.tensor([1.0, 2.0, 3.0]), {-1: "a"})
        >>> m = pack(torch.tensor([True, False, True]), {-1: "a"})
        >>> scale_and_mask(t, 2.0, m).tolist()
        [2.0, 0.0, 6.0]
    """
    if isinstance(scale, torch.Tensor) and scale.dim():
        raise NotImplementedError(
            f"non-scalar scale is not supported (got shape {tuple(scale.shape)}); "
            "multiply by a packed tensor with mul instead"
        )
    dims = _dims(tensor)
    if not _is_one(scale):
        tensor = _named(tensor * scale, dims)
    if mask is None or mask is True:
        return tensor
    if mask is False:
        return _named(torch.zeros_like(tensor), dims)
    tensor, mask = broadcast_all(tensor, mask)
    return _named(torch.where(mask, tensor, tensor.new_zeros(())), tensor._pyro_dims)


def neg(value):
    """Packed negation (numbers pass through as ``-value``).

    Example::

        >>> neg(pack(torch.tensor([1.0, -2.0]), {-1: "a"})).tolist()
        [-1.0, 2.0]
    """
    if isinstance(value, torch.Tensor):
        return _named(-value, _dims(value))
    return -value


def exp(value):
    """Packed pointwise exponential (numbers go through :func:`math.exp`).

    Example::

        >>> exp(0.0), exp(pack(torch.zeros(2), {-1: "a"}))._pyro_dims
        (1.0, 'a')
    """
    if isinstance(value, torch.Tensor):
        return _named(value.exp(), _dims(value))
    return math.exp(value)


def rename_equation(equation, *operands):
    """Rename the symbols of an einsum equation to the ``_pyro_dims`` of the packed
    ``operands`` (position by position); other symbols are kept.

    Example::

        >>> x = pack(torch.ones(2, 3), {-2: "c", -1: "d"})
        >>> rename_equation("ab->a", x)
        'cd->c'
    """
    if "->" not in equation:
        raise ValueError(f"equation must contain '->', got {equation!r}")
    inputs = equation.split("->")[0].split(",")
    if len(inputs) != len(operands):
        raise ValueError(
            f"equation {equation!r} has {len(inputs)} inputs but {len(operands)} operands "
            "were given"
        )
    rename = {}
    for term, operand in zip(inputs, operands):
        rename.update(zip(term, _dims(operand)))
    return "".join(rename.get(s, s) for s in equation)
