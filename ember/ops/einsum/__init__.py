"""Log-space einsum: ``log(einsum(equation, *exp(operands)))`` computed stably,
and ``opt_einsum`` contraction with ember's semiring backends.

:func:`log_einsum`: the contraction order comes from ``opt_einsum``; every
pairwise step is done in log space, either exactly (broadcast add, then
``logsumexp``) when the pair is small, or as a max-shifted exponentiated
``torch.einsum`` when it is large. The resulting list of steps depends only on
the equation and the operand shapes and is cached, so repeated calls (one per
SVI step) only run tensor operations.

:func:`contract` runs an ``opt_einsum`` contraction with a backend named by its
module path. Besides ``"torch"``, the backends are the submodules of this
package (each exposes ``einsum``, ``tensordot`` and ``transpose``):

* ``ember.ops.einsum.torch_log``: sum-product in log space;
* ``ember.ops.einsum.torch_map``: max-sum forward, argmax backward;
* ``ember.ops.einsum.torch_sample``: sum-product forward, sampling backward;
* ``ember.ops.einsum.torch_marginal``: sum-product forward, marginals backward.

The last three record an *adjoint* graph on tensors marked with
:func:`ember.ops.einsum.adjoint.require_backward`; the Pyro spellings
(``"pyro.ops.einsum.torch_log"``, ...) name the same modules when ``pyro`` is
an alias of ``ember``.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from typing import List, Sequence, Tuple

import opt_einsum
import torch

__all__ = [
    "EXACT_PAIR_NUMEL",
    "align_dims",
    "contract",
    "contract_expression",
    "log_einsum",
    "resolve_backend",
]

# Pairwise contractions whose broadcast union has at most this many entries are
# done exactly with ``logsumexp``; larger ones use a shifted ``torch.einsum``.
EXACT_PAIR_NUMEL = 1 << 21


def _parse(equation: str, shapes: Sequence[Tuple[int, ...]]):
    equation = equation.replace(" ", "")
    if "->" not in equation:
        raise ValueError(f"log_einsum needs an explicit output, e.g. 'ab,bc->ac'; got {equation!r}")
    lhs, output = equation.split("->")
    inputs = lhs.split(",")
    if len(inputs) != len(shapes):
        raise ValueError(
            f"log_einsum equation {equation!r} names {len(inputs)} operands but "
            f"{len(shapes)} were given"
        )
    sizes = {}
    for dims, shape in zip(inputs, shapes):
        if len(dims) != len(shape):
            raise ValueError(
                f"log_einsum: operand with dims {dims!r} has shape {tuple(shape)}; "
                "give one letter per dim"
            )
        if len(set(dims)) != len(dims):
            raise ValueError(f"log_einsum does not take repeated dims within an operand: {dims!r}")
        for d, size in zip(dims, shape):
            if sizes.setdefault(d, size) != size and size != 1 and sizes[d] != 1:
                raise ValueError(
                    f"log_einsum: dim {d!r} has size {sizes[d]} in one operand and {size} in "
                    f"another (equation {equation!r})"
                )
            sizes[d] = max(sizes[d], size)
    for d in output:
        if d not in sizes:
            raise ValueError(f"log_einsum: output dim {d!r} appears in no operand ({equation!r})")
    if len(set(output)) != len(output):
        raise ValueError(f"log_einsum: repeated output dim in {equation!r}")
    return inputs, output, sizes


def align_dims(x: torch.Tensor, dims: Sequence, target: Sequence) -> torch.Tensor:
    """Permute and reshape ``x``, whose dims are named ``dims``, to line up with ``target``.

    ``dims`` and ``target`` are sequences of dim names (a string names one dim
    per letter); every name of ``dims`` must be in ``target``. The result has
    one dim per name of ``target``, of size 1 where ``x`` lacks it, so it
    broadcasts against other tensors aligned to ``target``.

    Example::

        >>> import torch
        >>> align_dims(torch.zeros(2, 3), ("a", "b"), ("b", "c", "a")).shape
        torch.Size([3, 1, 2])
    """
    kept = [d for d in target if d in dims]
    if len(kept) != len(dims):
        missing = [d for d in dims if d not in target]
        raise ValueError(f"align_dims: dims {missing} of {tuple(dims)} are not in {tuple(target)}")
    if any(a != b for a, b in zip(kept, dims)):
        x = x.permute([dims.index(d) for d in kept])
    shape = [x.shape[kept.index(d)] if d in dims else 1 for d in target]
    return x.reshape(shape)


def _safe_shift(x: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
    """``amax`` over ``dims`` (kept), detached, with non-finite maxima replaced by 0."""
    if x.numel() == 0:
        return x.new_zeros(())
    shift = x.detach().amax(dim=tuple(dims), keepdim=True) if dims else x.detach()
    return shift.masked_fill(~torch.isfinite(shift), 0.0)


def _log_pair(a: torch.Tensor, da: str, b: torch.Tensor, db: str, out: str, sizes) -> torch.Tensor:
    union = da + "".join(d for d in db if d not in da)
    summed = [d for d in union if d not in out]
    numel = 1
    for d in union:
        numel *= sizes[d]
    if not summed or numel <= EXACT_PAIR_NUMEL:
        full = union if not summed else "".join(d for d in union if d in out) + "".join(summed)
        total = align_dims(a, da, full) + align_dims(b, db, full)
        if summed:
            total = torch.logsumexp(total, dim=list(range(len(full) - len(summed), len(full))))
        kept = full[: len(full) - len(summed)]
        return align_dims(total, kept, out) if kept != out else total
    # Large pair: exponentiate after subtracting per-slice maxima over the summed dims.
    sa = _safe_shift(a, [i for i, d in enumerate(da) if d in summed])
    sb = _safe_shift(b, [i for i, d in enumerate(db) if d in summed])
    prod = torch.einsum(f"{da},{db}->{out}", (a - sa).exp(), (b - sb).exp())
    ka = "".join(d for d in da if d not in summed)
    kb = "".join(d for d in db if d not in summed)
    shift = align_dims(
        sa.reshape([a.shape[i] for i, d in enumerate(da) if d not in summed]), ka, out
    )
    shift = shift + align_dims(
        sb.reshape([b.shape[i] for i, d in enumerate(db) if d not in summed]), kb, out
    )
    return prod.log() + shift


@functools.lru_cache(maxsize=1024)
def _contract_path(equation: str, shapes: tuple) -> tuple:
    """opt_einsum's pairwise contraction order (cached: it depends only on the shapes)."""
    strategy = "auto" if len(shapes) <= 8 else "greedy"
    path, _ = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize=strategy)
    return tuple(path)


def log_einsum(equation: str, *operands: torch.Tensor) -> torch.Tensor:
    """Contract log-valued tensors: ``log(einsum(equation, *[x.exp() for x in operands]))``.

    Summed dims are combined with ``logsumexp``, so operands may hold values far
    outside the range of ``exp``. Dims of size 1 broadcast. The equation must have
    an explicit output (``"->"``).

    Example::

        >>> import torch
        >>> from ember.ops.einsum import log_einsum
        >>> a, b = torch.randn(3, 4), torch.randn(4, 5)
        >>> out = log_einsum("ij,jk->ik", a - 1000.0, b)
        >>> expected = torch.log(a.exp() @ b.exp()) - 1000.0
        >>> bool(torch.allclose(out, expected))
        True
    """
    shapes = tuple(tuple(x.shape) for x in operands)
    steps = _compile(equation, shapes, EXACT_PAIR_NUMEL)
    slots: List[torch.Tensor] = list(operands)
    for step in steps:
        slots.append(_STEPS[step[0]](step, slots))
    return slots[-1]


# ---------------------------------------------------------------- compiled plans
#
# Which pairs to contract, and how to permute, reshape and reduce each, depends
# only on the equation and the operand shapes: it is worked out once (cached)
# as a list of steps on numbered slots (the operands, then each step's result).


def _align_recipe(dims: str, shape: Tuple[int, ...], target: str):
    """``(perm or None, shape or None)`` doing :func:`align_dims` on a tensor of ``shape``."""
    kept = [d for d in target if d in dims]
    perm = tuple(dims.index(d) for d in kept)
    permuted = tuple(shape[i] for i in perm)
    aligned = tuple(shape[dims.index(d)] if d in dims else 1 for d in target)
    return (
        None if perm == tuple(range(len(perm))) else perm,
        None if aligned == permuted else aligned,
    ), aligned


def _apply(x: torch.Tensor, recipe) -> torch.Tensor:
    perm, shape = recipe
    if perm is not None:
        x = x.permute(perm)
    if shape is not None:
        x = x.reshape(shape)
    return x


def _plan_reduce(slot: int, dims: str, shape, out: str):
    summed = tuple(i for i, d in enumerate(dims) if d not in out)
    kept = "".join(d for d in dims if d in out)
    kept_shape = tuple(n for d, n in zip(dims, shape) if d in out)
    if kept == out:
        return ("reduce", slot, summed, (None, None)), kept_shape
    recipe, aligned = _align_recipe(kept, kept_shape, out)
    return ("reduce", slot, summed, recipe), aligned


def _plan_pair(sa: int, da: str, shape_a, sb: int, db: str, shape_b, out: str, sizes, limit):
    union = da + "".join(d for d in db if d not in da)
    summed = [d for d in union if d not in out]
    size_a, size_b = dict(zip(da, shape_a)), dict(zip(db, shape_b))
    out_shape = tuple(max(size_a.get(d, 1), size_b.get(d, 1)) for d in out)
    if summed and math.prod(sizes[d] for d in union) > limit:
        return ("large", sa, da, sb, db, out, dict(sizes)), out_shape
    full = union if not summed else "".join(d for d in union if d in out) + "".join(summed)
    ra, _ = _align_recipe(da, shape_a, full)
    rb, _ = _align_recipe(db, shape_b, full)
    axes = tuple(range(len(full) - len(summed), len(full)))
    # ``out`` keeps the dims in union order, as ``full`` does: no final alignment
    return ("exact", sa, ra, sb, rb, axes), out_shape


def _run_reduce(step, slots):
    _, slot, summed, recipe = step
    x = slots[slot]
    if summed:
        x = torch.logsumexp(x, dim=summed)
    return _apply(x, recipe)


def _run_exact(step, slots):
    _, sa, ra, sb, rb, axes = step
    total = _apply(slots[sa], ra) + _apply(slots[sb], rb)
    return torch.logsumexp(total, dim=axes) if axes else total


def _run_large(step, slots):
    _, sa, da, sb, db, out, sizes = step
    return _log_pair(slots[sa], da, slots[sb], db, out, sizes)


_STEPS = {"reduce": _run_reduce, "exact": _run_exact, "large": _run_large}


@functools.lru_cache(maxsize=1024)
def _compile(equation: str, shapes: tuple, limit: int) -> tuple:
    """The steps of :func:`log_einsum` for operands of these shapes."""
    inputs, output, sizes = _parse(equation, shapes)
    steps = []
    if len(inputs) == 1:
        steps.append(_plan_reduce(0, inputs[0], shapes[0], output)[0])
        return tuple(steps)
    if len(inputs) > 2:
        path = _contract_path(
            ",".join(inputs) + "->" + output, tuple(tuple(sizes[d] for d in ds) for ds in inputs)
        )
    else:
        path = ((0, 1),)
    alive = list(range(len(inputs)))  # slot of each operand still to contract
    dims: List[str] = list(inputs)
    shape_of = {i: tuple(s) for i, s in enumerate(shapes)}
    # how many remaining operands (plus the output) mention each dim
    count = Counter(output)
    for ds in dims:
        count.update(ds)

    def emit(step, shape):
        slot = len(shapes) + len(steps)
        steps.append(step)
        shape_of[slot] = shape
        return slot

    for pair in list(path) + [(0, 1)] * max(0, len(alive) - 1 - len(path)):
        picked = sorted(pair, reverse=True)
        taken = [(alive.pop(i), dims.pop(i)) for i in picked]
        for _, ds in taken:
            count.subtract(ds)
        if len(taken) == 1:
            (sx, dx) = taken[0]
            out = "".join(d for d in dx if count[d] > 0)
            slot = emit(*_plan_reduce(sx, dx, shape_of[sx], out))
        else:
            (sa, da), (sb, db) = taken[0], taken[1]
            for sx, dx in taken[2:]:  # opt_einsum may contract several at once
                union = da + "".join(d for d in dx if d not in da)
                sa = emit(
                    *_plan_pair(sa, da, shape_of[sa], sx, dx, shape_of[sx], union, sizes, limit)
                )
                da = union
            union = da + "".join(d for d in db if d not in da)
            out = "".join(d for d in union if count[d] > 0)
            slot = emit(*_plan_pair(sa, da, shape_of[sa], sb, db, shape_of[sb], out, sizes, limit))
        count.update(out)
        alive.append(slot)
        dims.append(out)
    emit(*_plan_reduce(alive[0], dims[0], shape_of[alive[0]], output))
    return tuple(steps)


# ---------------------------------------------------------------- opt_einsum front end

_EXPRESSIONS: dict = {}


def contract_expression(equation: str, *shapes, **kwargs):
    """An ``opt_einsum`` contraction expression for operands of ``shapes``, cached.

    The contraction path depends only on the equation, the shapes and the
    options, so it is worked out once. ``cache_path=False`` skips the cache.

    Example::

        >>> import torch
        >>> expr = contract_expression("ab,bc->ac", (2, 3), (3, 4))
        >>> expr(torch.ones(2, 3), torch.ones(3, 4), backend="torch").shape
        torch.Size([2, 4])
    """
    use_cache = kwargs.pop("cache_path", True)
    shapes = tuple(tuple(s) for s in shapes)
    if not use_cache:
        return opt_einsum.contract_expression(equation, *shapes, **kwargs)
    key = (equation, shapes, tuple(sorted(kwargs.items())))
    try:
        expr = _EXPRESSIONS.get(key)
    except TypeError:  # an unhashable option: no cache
        return opt_einsum.contract_expression(equation, *shapes, **kwargs)
    if expr is None:
        if len(_EXPRESSIONS) >= 4096:
            _EXPRESSIONS.clear()
        expr = _EXPRESSIONS[key] = opt_einsum.contract_expression(equation, *shapes, **kwargs)
    return expr


def resolve_backend(backend: str) -> str:
    """The importable module path of an einsum backend name.

    Pyro's spelling ``"pyro.ops.einsum.torch_log"`` (and ``torch_map``,
    ``torch_sample``, ``torch_marginal``) names ember's module of the same name,
    so that it works whether or not ``pyro`` is an alias of ``ember``; other
    names (``"torch"``, ``"ember.ops.einsum.torch_log"``, ...) are returned as they are.

    Example::

        >>> resolve_backend("pyro.ops.einsum.torch_map")
        'ember.ops.einsum.torch_map'
        >>> resolve_backend("torch")
        'torch'
    """
    prefix = "pyro.ops.einsum."
    if isinstance(backend, str) and backend.startswith(prefix):
        return "ember.ops.einsum." + backend[len(prefix) :]
    return backend


def contract(equation: str, *operands: torch.Tensor, **kwargs):
    """``opt_einsum.contract`` with a cached contraction path and a named backend.

    :param str backend: ``"torch"`` (plain sums of products) or the module path
        of a semiring backend, e.g. ``"ember.ops.einsum.torch_log"``.
    :param bool cache_path: whether to cache the contraction path (default True).

    Example::

        >>> import torch
        >>> x, y = torch.randn(2, 3), torch.randn(3)
        >>> z = contract("ab,b->a", x, y, backend="ember.ops.einsum.torch_log")
        >>> bool(torch.allclose(z, (x + y).logsumexp(-1)))
        True
    """
    backend = resolve_backend(kwargs.pop("backend", "torch"))
    out = kwargs.pop("out", None)
    cache_path = kwargs.pop("cache_path", True)
    if kwargs:
        raise TypeError(f"contract: unexpected keyword arguments {sorted(kwargs)}")
    expr = contract_expression(equation, *(tuple(x.shape) for x in operands), cache_path=cache_path)
    return expr(*operands, backend=backend, out=out)
