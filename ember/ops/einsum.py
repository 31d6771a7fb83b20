"""Log-space einsum: ``log(einsum(equation, *exp(operands)))`` computed stably.

The contraction order comes from ``opt_einsum``; every pairwise step is done in
log space, either exactly (broadcast add, then ``logsumexp``) when the pair is
small, or as a max-shifted exponentiated ``torch.einsum`` when it is large.
"""

from __future__ import annotations

from collections import Counter
from typing import List, Sequence

import opt_einsum
import torch

# Pairwise contractions whose broadcast union has at most this many entries are
# done exactly with ``logsumexp``; larger ones use a shifted ``torch.einsum``.
EXACT_PAIR_NUMEL = 1 << 21


def _parse(equation: str, operands: Sequence[torch.Tensor]):
    equation = equation.replace(" ", "")
    if "->" not in equation:
        raise ValueError(f"log_einsum needs an explicit output, e.g. 'ab,bc->ac'; got {equation!r}")
    lhs, output = equation.split("->")
    inputs = lhs.split(",")
    if len(inputs) != len(operands):
        raise ValueError(
            f"log_einsum equation {equation!r} names {len(inputs)} operands but "
            f"{len(operands)} were given"
        )
    sizes = {}
    for dims, x in zip(inputs, operands):
        if len(dims) != x.dim():
            raise ValueError(
                f"log_einsum: operand with dims {dims!r} has shape {tuple(x.shape)}; "
                "give one letter per dim"
            )
        if len(set(dims)) != len(dims):
            raise ValueError(f"log_einsum does not take repeated dims within an operand: {dims!r}")
        for d, size in zip(dims, x.shape):
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


def _align(x: torch.Tensor, dims: str, target: str) -> torch.Tensor:
    """Permute and unsqueeze ``x`` (with ``dims``) to line up with ``target``."""
    kept = [d for d in target if d in dims]
    if "".join(kept) != dims:
        x = x.permute([dims.index(d) for d in kept])
    shape = [x.shape[kept.index(d)] if d in dims else 1 for d in target]
    return x.reshape(shape)


def _safe_shift(x: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
    """``amax`` over ``dims`` (kept), detached, with non-finite maxima replaced by 0."""
    if x.numel() == 0:
        return x.new_zeros(())
    shift = x.detach().amax(dim=tuple(dims), keepdim=True) if dims else x.detach()
    return shift.masked_fill(~torch.isfinite(shift), 0.0)


def _reduce_one(x: torch.Tensor, dims: str, out: str) -> torch.Tensor:
    summed = [i for i, d in enumerate(dims) if d not in out]
    if summed:
        x = torch.logsumexp(x, dim=summed)
        dims = "".join(d for d in dims if d in out)
    return _align(x, dims, out) if dims != out else x


def _log_pair(a: torch.Tensor, da: str, b: torch.Tensor, db: str, out: str, sizes) -> torch.Tensor:
    union = da + "".join(d for d in db if d not in da)
    summed = [d for d in union if d not in out]
    numel = 1
    for d in union:
        numel *= sizes[d]
    if not summed or numel <= EXACT_PAIR_NUMEL:
        full = union if not summed else "".join(d for d in union if d in out) + "".join(summed)
        total = _align(a, da, full) + _align(b, db, full)
        if summed:
            total = torch.logsumexp(total, dim=list(range(len(full) - len(summed), len(full))))
        kept = full[: len(full) - len(summed)]
        return _align(total, kept, out) if kept != out else total
    # Large pair: exponentiate after subtracting per-slice maxima over the summed dims.
    sa = _safe_shift(a, [i for i, d in enumerate(da) if d in summed])
    sb = _safe_shift(b, [i for i, d in enumerate(db) if d in summed])
    prod = torch.einsum(f"{da},{db}->{out}", (a - sa).exp(), (b - sb).exp())
    ka = "".join(d for d in da if d not in summed)
    kb = "".join(d for d in db if d not in summed)
    shift = _align(sa.reshape([a.shape[i] for i, d in enumerate(da) if d not in summed]), ka, out)
    shift = shift + _align(
        sb.reshape([b.shape[i] for i, d in enumerate(db) if d not in summed]), kb, out
    )
    return prod.log() + shift


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
    inputs, output, sizes = _parse(equation, operands)
    if len(operands) == 1:
        return _reduce_one(operands[0], inputs[0], output)
    ops: List[torch.Tensor] = list(operands)
    dims: List[str] = list(inputs)
    if len(ops) > 2:
        shapes = [tuple(sizes[d] for d in ds) for ds in dims]
        strategy = "auto" if len(ops) <= 8 else "greedy"
        path, _ = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize=strategy)
    else:
        path = [(0, 1)]
    # how many remaining operands (plus the output) mention each dim
    count = Counter(output)
    for ds in dims:
        count.update(ds)
    for pair in list(path) + [(0, 1)] * max(0, len(ops) - 1 - len(path)):
        picked = sorted(pair, reverse=True)
        taken = [(ops.pop(i), dims.pop(i)) for i in picked]
        for _, ds in taken:
            count.subtract(ds)
        if len(taken) == 1:
            (x, dx) = taken[0]
            out = "".join(d for d in dx if count[d] > 0)
            result = _reduce_one(x, dx, out)
        else:
            (a, da), (b, db) = taken[0], taken[1]
            for x, dx in taken[2:]:  # opt_einsum may contract several at once
                union = da + "".join(d for d in dx if d not in da)
                a, da = _log_pair(a, da, x, dx, union, sizes), union
            union = da + "".join(d for d in db if d not in da)
            out = "".join(d for d in union if count[d] > 0)
            result = _log_pair(a, da, b, db, out, sizes)
        count.update(out)
        ops.append(result)
        dims.append(out)
    return _reduce_one(ops[0], dims[0], output)
