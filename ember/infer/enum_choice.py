"""Joint choice of enumerated variables: variable elimination with back-tracking.

:func:`choose_enumerated` draws every variable of a plated product of packed
log-factors (:class:`~ember.ops.contract.LogFactor`) jointly from the
normalized product, or finds its joint maximum:

* forward, the variables are eliminated one at a time, plates from the
  innermost outwards (as :func:`~ember.ops.contract.contract_tree` sums them
  out): the factors that mention a variable are added into one table, which is
  kept, and the variable is summed out (``logsumexp``; ``max`` for the MAP);
* backward, in the reverse order, each variable is drawn from its kept table
  (``argmax`` for the MAP) with the variables eliminated after it fixed at the
  values already chosen, separately for every element of its plates.

This is forward-filtering backward-sampling (or the Viterbi algorithm) for any
tree of plates; a Markov chain costs time linear in its length.
:func:`chosen_value` turns a choice into the value of an enumerated sample site.
:func:`~ember.infer.discrete.infer_discrete` and
:meth:`~ember.infer.traceenum_elbo.TraceEnum_ELBO.sample_posterior` use them.
"""

from __future__ import annotations

from typing import Dict, Hashable, Iterable, List, Mapping, Tuple

import torch

from ember.infer.enum_factors import plate_frames
from ember.ops.contract import LogFactor
from ember.ops.einsum import align_dims

__all__ = ["choose_enumerated", "chosen_value"]


class _Table:
    """A log-valued tensor with named dims (plate names and variable names)."""

    __slots__ = ("tensor", "dims")

    def __init__(self, tensor: torch.Tensor, dims: Tuple[Hashable, ...]):
        self.tensor = tensor
        self.dims = dims


def _add_tables(tables: List[_Table]) -> _Table:
    dims: List[Hashable] = []
    for t in tables:
        dims.extend(d for d in t.dims if d not in dims)
    total = None
    for t in tables:
        x = align_dims(t.tensor, list(t.dims), dims) if list(t.dims) != dims else t.tensor
        total = x if total is None else total + x
    return _Table(total, tuple(dims))


def _pick(table: _Table, var: Hashable, index: torch.Tensor, index_dims) -> _Table:
    """``table`` with ``var`` fixed at ``index`` (a tensor over the plates ``index_dims``)."""
    axis = table.dims.index(var)
    others = [d for d in table.dims if d != var]
    for d in index_dims:  # plates the table lacks: the index varies along them
        if d not in others:
            others.insert(0, d)
    tensor = table.tensor.movedim(axis, -1)
    kept = [d for d in table.dims if d != var]
    tensor = align_dims(tensor, kept + [var], others + [var])
    shape = list(tensor.shape[:-1])
    idx = align_dims(index, list(index_dims), others)
    shape = [max(a, b) for a, b in zip(shape, idx.shape)]
    tensor = tensor.expand(shape + [tensor.shape[-1]])
    picked = tensor.gather(-1, idx.expand(shape).unsqueeze(-1)).squeeze(-1)
    return _Table(picked, tuple(others))


def choose_enumerated(
    factors: Iterable[LogFactor],
    var_ordinals: Mapping[Hashable, frozenset],
    temperature: float = 1,
) -> Dict[Hashable, Tuple[torch.Tensor, Tuple[Hashable, ...]]]:
    """Jointly choose every variable of a plated product of log-factors.

    ``var_ordinals`` maps each variable to the plates it lives in (one copy per
    plate element). With ``temperature=1`` the choices are one draw from the
    normalized product of ``exp(factors)``; with ``temperature=0`` they maximize
    it (the joint MAP). Returns, for each variable, ``(index, plates)``: the
    chosen values (as indices along the variable's dim) as a tensor with one
    dim per name in ``plates`` (plates of size 1 are left out).

    Each factor's ``scale`` multiplies its log-values. A variable outside a plate
    cannot be coupled by a factor to variables of different elements of that
    plate (the same restriction as summing out, see
    :func:`~ember.ops.contract.contract_tree`); such models raise ValueError.

    Example::

        >>> import torch
        >>> prior = LogFactor(torch.tensor([0.5, 0.5]).log(), ("z",), frozenset(), "z")
        >>> lik = LogFactor(torch.tensor([[0.0, -9.0], [-9.0, 0.0]]), ("z", "x"), frozenset(), "x")
        >>> x = LogFactor(torch.tensor([-9.0, 0.0]), ("x",), frozenset(), "obs")
        >>> out = choose_enumerated([prior, lik, x], {"z": frozenset(), "x": frozenset()}, 0)
        >>> int(out["z"][0]), int(out["x"][0])
        (1, 1)
    """
    if temperature not in (0, 1):
        raise ValueError(
            f"temperature must be 0 (MAP) or 1 (posterior sample), got {temperature!r}"
        )
    variables = set(var_ordinals)
    pending: Dict[frozenset, List[_Table]] = {}
    order: Dict[Hashable, int] = {}  # first appearance: eliminate the latest first
    for f in factors:
        tensor = f.tensor
        scale = f.scale
        if not (isinstance(scale, (int, float)) and scale == 1):
            tensor = tensor * scale
        for d in f.dims:
            if d in variables:
                order.setdefault(d, len(order))
                if not var_ordinals[d] <= f.ordinal:
                    raise ValueError(
                        f"factor {f.name!r} (in plates {sorted(map(str, f.ordinal))}) depends "
                        f"on variable {d!r}, which lives in plates "
                        f"{sorted(map(str, var_ordinals[d]))}: it would couple every "
                        "element of the missing plates; move it into those plates"
                    )
            elif d not in f.ordinal:
                raise ValueError(
                    f"factor {f.name!r} has a dim {d!r} that is neither one of its plates nor "
                    "a variable"
                )
        pending.setdefault(frozenset(f.ordinal), []).append(_Table(tensor, tuple(f.dims)))
    records: List[Tuple[Hashable, _Table]] = []
    reduce = torch.logsumexp if temperature == 1 else (lambda x, dim: x.amax(dim))
    while pending:
        leaf = max(pending, key=lambda o: (len(o), sorted(map(str, o))))
        tables = pending.pop(leaf)
        local = sorted(
            {d for t in tables for d in t.dims if d in variables and var_ordinals[d] == leaf},
            key=lambda v: -order[v],
        )
        # tables by the variables they mention
        live: Dict[int, _Table] = dict(enumerate(tables))
        mention: Dict[Hashable, set] = {}
        for i, t in live.items():
            for d in t.dims:
                if d in variables:
                    mention.setdefault(d, set()).add(i)
        next_id = len(tables)
        for v in local:
            ids = mention.pop(v, set())
            joint = _add_tables([live.pop(i) for i in sorted(ids)])
            records.append((v, joint))
            axis = joint.dims.index(v)
            rest = _Table(
                reduce(joint.tensor, dim=axis), joint.dims[:axis] + joint.dims[axis + 1 :]
            )
            live[next_id] = rest
            for d in rest.dims:
                if d in variables:
                    mention.setdefault(d, set()).difference_update(ids)
                    mention[d].add(next_id)
            next_id += 1
        for t in live.values():
            held = [d for d in t.dims if d in variables]
            if not held:
                continue  # a constant: it does not change the choices
            parent = frozenset().union(*(var_ordinals[d] for d in held))
            if parent == leaf:
                raise ValueError(
                    f"cannot eliminate variables {sorted(map(str, held))} jointly: they live in "
                    f"different plates of {sorted(map(str, leaf))} and a factor couples them, "
                    "so every element of those plates would depend on all the others"
                )
            axes = [i for i, d in enumerate(t.dims) if d in leaf and d not in parent]
            tensor = t.tensor.sum(axes) if axes else t.tensor
            dims = tuple(d for i, d in enumerate(t.dims) if i not in axes)
            pending.setdefault(parent, []).append(_Table(tensor, dims))
    chosen: Dict[Hashable, Tuple[torch.Tensor, Tuple[Hashable, ...]]] = {}
    for v, table in reversed(records):
        for u in [d for d in table.dims if d in variables and d != v]:
            index, index_dims = chosen[u]
            table = _pick(table, u, index, index_dims)
        logits = table.tensor.movedim(table.dims.index(v), -1)
        plates = tuple(d for d in table.dims if d != v)
        if temperature == 0:
            index = logits.argmax(-1)
        else:
            index = torch.distributions.Categorical(logits=logits).sample()
        chosen[v] = (index, plates)
    return chosen


def _plate_shape(frames) -> List[int]:
    width = max((-f.dim for f in frames), default=0)
    shape = [1] * width
    for f in frames:
        shape[width + f.dim] = f.size
    return shape


def chosen_value(site, index: torch.Tensor, index_dims) -> torch.Tensor:
    """The value of the enumerated sample ``site`` at the chosen ``index`` (support
    indices, a tensor over the plates ``index_dims``), shaped as the site's plates
    lay it out (plus its event shape)."""
    frames = sorted(plate_frames(site), key=lambda f: f.dim)
    names = [f.name for f in frames]
    shape = _plate_shape(frames)
    index = align_dims(index, list(index_dims), names)
    index = index.expand([f.size for f in frames]).reshape(shape) if frames else index
    fn = site["fn"]
    support = fn.enumerate_support(expand=False)
    support = support.reshape(support.shape[:1] + fn.event_shape)
    return support[index]
