"""Tensor variable elimination: sum-product contraction of plated log-factors.

This implements the algorithm of Obermeyer et al. (2019), "Tensor Variable
Elimination for Plated Factor Graphs" (arXiv:1902.03210). A model's log-density
is a sum of log-factors; each factor lives in a set of plates (its *ordinal*)
and depends on some discrete variables. Enumerated variables are summed out
(``logsumexp``) and plates are product dims (their log-values are summed),
working from the innermost plates outwards so every intermediate tensor stays
small. Models whose structure makes this impossible in polynomial time raise
:class:`IntractableError` naming the variable and plate responsible.

Factors are :class:`LogFactor` tuples whose tensors are *packed*: one tensor dim
per name in ``dims`` (plate names for plate dims, variable names for enumerated
dims), with no broadcasting dims.
"""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict
from typing import Dict, Hashable, Iterable, List, Mapping, NamedTuple, Tuple, Union

import opt_einsum
import torch

from ember.ops.einsum import EXACT_PAIR_NUMEL, log_einsum

Ordinal = frozenset


class IntractableError(ValueError):
    """A model whose enumerated variables cannot be summed out by plated variable elimination.

    Example::

        >>> import torch
        >>> x = LogFactor(torch.zeros(3, 2), ("p", "x"), frozenset({"p"}), "x")
        >>> y = LogFactor(torch.zeros(2, 2), ("x", "y"), frozenset(), "y")
        >>> try:
        ...     contract_tree([x, y], {"x": frozenset({"p"}), "y": frozenset()})
        ... except IntractableError as e:
        ...     print(str(e)[:60])
        site 'y' (in no plates) depends on enumerated site 'x', whic
    """


class LogFactor(NamedTuple):
    """One packed log-factor of a plated factor graph.

    ``tensor`` has one dim per entry of ``dims``; each entry is a plate name (one
    of ``ordinal``) or a variable name. ``scale`` multiplies the factor's
    log-density (a number, or a tensor broadcastable to ``tensor``). ``name``
    labels the factor in error messages (usually the sample site).

    Example::

        >>> import torch
        >>> f = LogFactor(torch.zeros(2, 5), ("z", "data"), frozenset({"data"}), name="x")
        >>> f.dims, sorted(f.ordinal)
        (('z', 'data'), ['data'])
    """

    tensor: torch.Tensor
    dims: Tuple[Hashable, ...]
    ordinal: frozenset
    name: str = ""
    scale: Union[float, torch.Tensor] = 1.0


def _fmt_plates(ordinal: Iterable) -> str:
    names = sorted(str(p) for p in ordinal)
    return "{" + ", ".join(repr(n) for n in names) + "}" if names else "no plates"


def _partition(factors: List[LogFactor], variables: set):
    """Split ``factors`` into groups connected through shared ``variables``."""
    if len(factors) == 1:
        return [(factors, {d for d in factors[0].dims if d in variables})]
    parent = list(range(len(factors)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: Dict[Hashable, int] = {}
    for i, f in enumerate(factors):
        for d in f.dims:
            if d in variables:
                j = owner.setdefault(d, i)
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[ri] = rj
    groups: OrderedDict[int, Tuple[List[LogFactor], set]] = OrderedDict()
    for i, f in enumerate(factors):
        fs, vs = groups.setdefault(find(i), ([], set()))
        fs.append(f)
        vs.update(d for d in f.dims if d in variables)
    return list(groups.values())


def _same_scale(a, b) -> bool:
    if a is b:
        return True
    if isinstance(a, numbers.Number) and isinstance(b, numbers.Number):
        return a == b
    a = torch.as_tensor(a)
    b = torch.as_tensor(b)
    return a.shape == b.shape and bool(torch.equal(a, b.to(a)))


def _common_scale(factors: List[LogFactor]):
    scale = factors[0].scale
    for f in factors[1:]:
        if not _same_scale(scale, f.scale):
            raise ValueError(
                "enumerated variables can only be summed out of factors sharing one scale, "
                f"but factor {factors[0].name!r} has scale {scale} and factor {f.name!r} has "
                f"scale {f.scale}; apply the same poutine.scale/subsampling to every site that "
                "depends on an enumerated site"
            )
    return scale


# ---------------------------------------------------------------- plans
#
# The contraction order depends only on the factors' dims, plates and shapes,
# not on their values, and SVI evaluates the same model again and again. So
# contract_tree first works out a *plan* (a list of tensor steps on numbered
# slots: the input tensors, then each step's result), caches it under the
# factors' signature, and then just runs the steps.


class _Sym(NamedTuple):
    """A factor without its tensor: enough to plan a contraction."""

    dims: Tuple[Hashable, ...]
    ordinal: frozenset
    shape: Tuple[int, ...]
    name: str
    slot: int


class _Plan:
    """Steps that contract factor tensors, and where the results come from."""

    __slots__ = ("steps", "outputs", "components")

    def __init__(self):
        self.steps: List[tuple] = []
        # (slot, dims, ordinal, name, component) or ("input", index) pass-throughs
        self.outputs: List[tuple] = []
        self.components: List[List[int]] = []  # input indices sharing one scale

    def add(self, step) -> int:
        self.steps.append(step)
        return -len(self.steps)  # result slots are numbered -1, -2, ... in step order

    def run(self, tensors: List[torch.Tensor]) -> List[torch.Tensor]:
        results: List[torch.Tensor] = []
        for step in self.steps:
            results.append(_STEP_FNS[step[0]](step, tensors, results))
        return results


def _slot(tensors, results, slot):
    return tensors[slot] if slot >= 0 else results[-1 - slot]


def _run_broadcast(step, tensors, results):
    _, inputs, sum_axes = step
    total = None
    for slot, perm, shape in inputs:
        x = _slot(tensors, results, slot)
        if perm is not None:
            x = x.permute(perm)
        if shape is not None:
            x = x.reshape(shape)
        total = x if total is None else total + x
    if sum_axes:
        total = torch.logsumexp(total, dim=sum_axes)
    return total


def _run_einsum(step, tensors, results):
    _, slots, equation = step
    return log_einsum(equation, *(_slot(tensors, results, s) for s in slots))


def _run_plate_sum(step, tensors, results):
    _, slot, axes = step
    return _slot(tensors, results, slot).sum(axes)


def _run_same(step, tensors, results):
    return _slot(tensors, results, step[1])


_STEP_FNS = {
    "broadcast": _run_broadcast,
    "einsum": _run_einsum,
    "plate_sum": _run_plate_sum,
    "same": _run_same,
}


def _plan_sumproduct(plan: _Plan, factors: List[_Sym], sum_vars, ordinal) -> _Sym:
    """Plan multiplying ``factors`` (adding logs) and summing out ``sum_vars`` (logsumexp)."""
    names = ", ".join(f.name for f in factors)
    if len(factors) == 1 and not (sum_vars & set(factors[0].dims)):
        f = factors[0]
        return _Sym(f.dims, ordinal, f.shape, names, f.slot)
    sizes: Dict[Hashable, int] = {}
    for f in factors:
        for d, n in zip(f.dims, f.shape):
            sizes[d] = max(sizes.get(d, 1), n)
    numel = math.prod(sizes.values())
    if len(factors) <= 3 and numel <= EXACT_PAIR_NUMEL:
        # small: broadcast-add then logsumexp. The largest factor keeps its layout
        # (new dims go on its left, where broadcasting adds them for free).
        big = max(factors, key=lambda f: math.prod(f.shape))
        extra: List[Hashable] = []
        for f in factors:
            extra.extend(d for d in f.dims if d not in big.dims and d not in extra)
        order = extra + list(big.dims)
        inputs = []
        for f in factors:
            if not f.dims:  # a scalar broadcasts as it is
                inputs.append((f.slot, None, None))
                continue
            perm = [f.dims.index(d) for d in order if d in f.dims]
            first = order.index(f.dims[perm[0]])  # leading dims it lacks broadcast for free
            shape = tuple(f.shape[f.dims.index(d)] if d in f.dims else 1 for d in order[first:])
            permuted = tuple(f.shape[i] for i in perm)
            inputs.append(
                (
                    f.slot,
                    None if perm == list(range(len(perm))) else tuple(perm),
                    None if shape == permuted else shape,
                )
            )
        axes = tuple(i for i, d in enumerate(order) if d in sum_vars)
        out = tuple(d for d in order if d not in sum_vars)
        slot = plan.add(("broadcast", tuple(inputs), axes))
    else:
        dims: List[Hashable] = []
        for f in factors:
            dims.extend(d for d in f.dims if d not in dims)
        out = tuple(d for d in dims if d not in sum_vars)
        symbol = {d: opt_einsum.get_symbol(i) for i, d in enumerate(dims)}
        equation = (
            ",".join("".join(symbol[d] for d in f.dims) for f in factors)
            + "->"
            + "".join(symbol[d] for d in out)
        )
        slot = plan.add(("einsum", tuple(f.slot for f in factors), equation))
    return _Sym(out, ordinal, tuple(sizes[d] for d in out), names, slot)


def _plan_product(plan: _Plan, factor: _Sym, plates: frozenset, ordinal) -> _Sym:
    """Plan multiplying out (summing the logs over) the plate dims in ``plates``."""
    idx = tuple(i for i, d in enumerate(factor.dims) if d in plates)
    if not idx:
        return factor._replace(ordinal=ordinal)
    slot = plan.add(("plate_sum", factor.slot, idx))
    dims = tuple(d for d in factor.dims if d not in plates)
    shape = tuple(n for d, n in zip(factor.dims, factor.shape) if d not in plates)
    return _Sym(dims, ordinal, shape, factor.name, slot)


def _sumproduct(factors: List[LogFactor], sum_vars: set, ordinal) -> LogFactor:
    """Multiply factors (add logs) and sum out ``sum_vars`` (logsumexp)."""
    plan = _Plan()
    syms = [
        _Sym(f.dims, f.ordinal, tuple(f.tensor.shape), f.name, i) for i, f in enumerate(factors)
    ]
    out = _plan_sumproduct(plan, syms, set(sum_vars), ordinal)
    results = plan.run([f.tensor for f in factors])
    tensor = _slot([f.tensor for f in factors], results, out.slot)
    return LogFactor(tensor, out.dims, ordinal, out.name)


def _product(factor: LogFactor, plates: frozenset, ordinal) -> LogFactor:
    """Multiply out (sum the logs over) the plate dims in ``plates``."""
    idx = [i for i, d in enumerate(factor.dims) if d in plates]
    if not idx:
        return LogFactor(factor.tensor, factor.dims, ordinal, factor.name)
    tensor = factor.tensor.sum(idx)
    dims = tuple(d for d in factor.dims if d not in plates)
    return LogFactor(tensor, dims, ordinal, factor.name)


def _check_factors(factors, var_ordinals: Mapping[Hashable, frozenset]):
    for f in factors:
        if len(f.shape) != len(f.dims):
            raise ValueError(
                f"factor {f.name!r} has shape {tuple(f.shape)} but dims {f.dims}; "
                "give one name per tensor dim"
            )
        for d in f.dims:
            if d in f.ordinal:
                continue
            if d not in var_ordinals:
                raise ValueError(
                    f"factor {f.name!r} has a dim named {d!r} that is neither one of its plates "
                    f"{_fmt_plates(f.ordinal)} nor an enumerated variable"
                )
            missing = var_ordinals[d] - f.ordinal
            if missing:
                raise IntractableError(
                    f"site {f.name!r} (in {_fmt_plates(f.ordinal)}) depends on enumerated site "
                    f"{d!r}, which is inside plate {_fmt_plates(missing)}: every element of "
                    f"that plate has its own {d!r}, so {f.name!r} would depend on all of them "
                    f"jointly. Move {f.name!r} inside plate {_fmt_plates(missing)}, or do not "
                    f"enumerate {d!r} (sample it in the guide instead)"
                )


def _plan_tree(syms: List[_Sym], var_ordinals, sum_vars) -> _Plan:
    """The plan of :func:`contract_tree` for factors with these signatures."""
    _check_factors(syms, var_ordinals)
    plan = _Plan()
    for comp_factors, comp_vars in _partition(syms, sum_vars):
        if not comp_vars:
            plan.outputs.extend(("input", f.slot) for f in comp_factors)
            continue
        component = len(plan.components)
        plan.components.append([f.slot for f in comp_factors])
        pending: Dict[frozenset, List[_Sym]] = {}
        for f in comp_factors:
            pending.setdefault(f.ordinal, []).append(f)
        while pending:
            leaf = max(pending, key=lambda o: (len(o), sorted(map(str, o))))
            local = {v for v in comp_vars if var_ordinals[v] == leaf}
            for group, group_vars in _partition(pending.pop(leaf), local):
                term = _plan_sumproduct(plan, group, group_vars, leaf)
                left_sum = [d for d in term.dims if d in sum_vars]
                if not left_sum:
                    plan.outputs.append((term.slot, term.dims, leaf, term.name, component))
                    continue
                held = [d for d in term.dims if d not in leaf]
                parent = frozenset().union(*(var_ordinals[d] for d in held))
                if parent == leaf:
                    _raise_coupled(term, left_sum, held, var_ordinals, leaf)
                term = _plan_product(plan, term, leaf - parent, parent)
                pending.setdefault(parent, []).append(term)
    return plan


_PLANS: Dict[tuple, _Plan] = {}
_MAX_PLANS = 512


def contract_tree(
    factors: Iterable[LogFactor],
    var_ordinals: Mapping[Hashable, frozenset],
    sum_vars: Iterable[Hashable] | None = None,
) -> List[LogFactor]:
    """Sum the variables ``sum_vars`` out of a plated product of log-factors.

    ``var_ordinals`` maps every variable name to the plates it lives in (a
    variable in plate ``p`` has one copy per element of ``p``). Variables not in
    ``sum_vars`` (default: all of them) are kept. Returns log-factors, each at
    its own ordinal, whose plate-summed total equals
    ``log sum_{sum_vars} prod(exp(factors))`` as a function of the kept variables.
    Factors whose variables are all summed out come back as tensors over their
    plates (sum them to get the log-normalizer); each carries its scale.

    The contraction plan depends only on the factors' dims, plates and shapes;
    it is cached, so repeated calls with the same structure (SVI steps) only
    run the tensor operations.

    Example::

        >>> import torch
        >>> prior = LogFactor(torch.tensor([0.3, 0.7]).log(), ("z",), frozenset(), "z")
        >>> lik = LogFactor(torch.randn(2, 4), ("z", "data"), frozenset({"data"}), "x")
        >>> out = contract_tree([prior, lik], {"z": frozenset()})
        >>> [(f.dims, tuple(f.tensor.shape)) for f in out]
        [((), ())]
    """
    factors = list(factors)
    sum_vars = frozenset(var_ordinals) if sum_vars is None else frozenset(sum_vars)
    signature = tuple((f.dims, f.ordinal, f.tensor.shape, f.name) for f in factors)
    try:
        key = (signature, frozenset(var_ordinals.items()), sum_vars)
        plan = _PLANS.get(key)
    except TypeError:  # unhashable dims or ordinals: plan without the cache
        key, plan = None, None
    if plan is None:
        syms = [
            _Sym(f.dims, f.ordinal, tuple(f.tensor.shape), f.name, i) for i, f in enumerate(factors)
        ]
        plan = _plan_tree(syms, var_ordinals, sum_vars)
        if key is not None:
            if len(_PLANS) >= _MAX_PLANS:
                _PLANS.clear()
            _PLANS[key] = plan
    tensors = [f.tensor for f in factors]
    results = plan.run(tensors)
    scales = [_common_scale([factors[i] for i in comp]) for comp in plan.components]
    out: List[LogFactor] = []
    for entry in plan.outputs:
        if entry[0] == "input":
            out.append(factors[entry[1]])
        else:
            slot, dims, ordinal, name, component = entry
            out.append(
                LogFactor(_slot(tensors, results, slot), dims, ordinal, name, scales[component])
            )
    return out


def _raise_coupled(term, left_sum, held, var_ordinals, leaf):
    v = left_sum[0]
    blockers = [d for d in held if not var_ordinals[d] <= var_ordinals[v]]
    w = blockers[0] if blockers else v
    extra = var_ordinals[w] - var_ordinals[v]
    raise IntractableError(
        f"cannot sum out enumerated site {v!r} (in {_fmt_plates(var_ordinals[v])}): factors "
        f"[{term.name}] in {_fmt_plates(leaf)} couple it to site {w!r}, which is inside plate "
        f"{_fmt_plates(extra)}; summing over {v!r} would need every element of that plate at "
        f"once. Enumerate only one of {v!r} and {w!r}, or restructure the plates"
    )


def total(factors: Iterable[LogFactor]) -> torch.Tensor:
    """Sum factors that have no variables left: ``sum(scale * tensor)`` over every dim.

    Example::

        >>> import torch
        >>> total([LogFactor(torch.ones(3), ("data",), frozenset({"data"}), scale=2.0)])
        tensor(6.)
    """
    result = None
    for f in factors:
        value = f.tensor
        if not (isinstance(f.scale, numbers.Number) and f.scale == 1):
            value = value * f.scale
        value = value.sum()
        result = value if result is None else result + value
    if result is None:
        raise ValueError("total() of no factors: give at least one LogFactor")
    return result


def contract_to_scalar(
    factors: Iterable[LogFactor], var_ordinals: Mapping[Hashable, frozenset]
) -> torch.Tensor:
    """``log sum_{all variables} prod(exp(factors))`` with plates multiplied out.

    Example::

        >>> import torch
        >>> a = LogFactor(torch.tensor([0.25, 0.75]).log(), ("z",), frozenset(), "z")
        >>> table = torch.tensor([[0.5, 0.5], [0.1, 0.9]])
        >>> b = LogFactor(table.log(), ("z", "y"), frozenset(), "y")
        >>> contract_to_scalar([a, b], {"z": frozenset(), "y": frozenset()}).abs() < 1e-6
        tensor(True)
    """
    return total(contract_tree(factors, var_ordinals))


def marginal(
    factors: Iterable[LogFactor],
    var_ordinals: Mapping[Hashable, frozenset],
    target_vars: Iterable[Hashable],
    target_ordinal: frozenset,
) -> LogFactor:
    """Log of the normalized marginal over ``target_vars``, batched over ``target_ordinal``.

    The factors define a distribution over all variables (one copy of each per
    element of its plates); the result gives, for each element of the plates in
    ``target_ordinal``, the log-probabilities of the joint values of
    ``target_vars``. Every target variable must live in ``target_ordinal``'s
    plates or fewer. When a target variable is local to a plate, the factors in
    that plate must be normalized conditional distributions (as a guide's sites
    are), so that the other elements' copies sum to one; marginals over
    variables outside every plate of the target are exact for any factors.

    Example::

        >>> import torch
        >>> a = LogFactor(torch.tensor([0.25, 0.75]).log(), ("z",), frozenset(), "z")
        >>> table = torch.tensor([[0.5, 0.5], [0.1, 0.9]])
        >>> b = LogFactor(table.log(), ("z", "y"), frozenset(), "y")
        >>> m = marginal([a, b], {"z": frozenset(), "y": frozenset()}, ["y"], frozenset())
        >>> m.dims, m.tensor.exp()
        (('y',), tensor([0.2000, 0.8000]))
    """
    factors = list(factors)
    targets = list(target_vars)
    target_ordinal = frozenset(target_ordinal)
    for t in targets:
        if not var_ordinals[t] <= target_ordinal:
            raise IntractableError(
                f"cannot take the marginal of {t!r} (in {_fmt_plates(var_ordinals[t])}) at "
                f"{_fmt_plates(target_ordinal)}: it is inside plate "
                f"{_fmt_plates(var_ordinals[t] - target_ordinal)}"
            )
    keep = set(targets)
    terms = []
    for f in contract_tree(factors, var_ordinals, set(var_ordinals) - keep):
        if not keep.intersection(f.dims):
            continue  # a normalizing constant: removed by the normalization below
        extra = f.ordinal - target_ordinal
        terms.append(_product(f, extra, f.ordinal & target_ordinal))
    dims: List[Hashable] = []
    for f in terms:
        dims.extend(d for d in f.dims if d not in dims)
    order = [d for d in dims if d in target_ordinal] + [d for d in targets if d in dims]
    if not terms:
        raise ValueError(f"marginal: no factor depends on the target variables {targets}")
    value = None
    for f in terms:
        aligned = f.tensor.permute([f.dims.index(d) for d in order if d in f.dims]).reshape(
            [f.tensor.shape[f.dims.index(d)] if d in f.dims else 1 for d in order]
        )
        value = aligned if value is None else value + aligned
    n_plates = sum(1 for d in order if d in target_ordinal)
    var_axes = list(range(n_plates, len(order)))
    value = value - torch.logsumexp(value, dim=var_axes, keepdim=True)
    return LogFactor(value, tuple(order), target_ordinal, "marginal")


def ancestral_marginal(
    conditionals: Mapping[Hashable, LogFactor],
    target_vars: Iterable[Hashable],
    target_ordinal: frozenset,
) -> LogFactor:
    """Log marginal of ``target_vars`` in a directed model of normalized conditionals.

    ``conditionals[v]`` is the log-density of variable ``v`` given its parents
    (the other variables among its dims), normalized over ``v``. Only the
    ancestors of the targets matter: every other conditional sums to one. The
    result is batched over the plates of ``target_ordinal`` (one marginal per
    plate element), so plate-local targets are as cheap as global ones.

    Example::

        >>> import torch
        >>> a = LogFactor(torch.tensor([0.25, 0.75]).log(), ("a",), frozenset(), "a")
        >>> table = torch.tensor([[[0.5, 0.5], [0.1, 0.9]]]).expand(3, 2, 2)
        >>> z = LogFactor(table.log(), ("p", "a", "z"), frozenset({"p"}), "z")
        >>> m = ancestral_marginal({"a": a, "z": z}, ["z"], frozenset({"p"}))
        >>> m.dims, m.tensor.exp()[0]
        (('p', 'z'), tensor([0.2000, 0.8000]))
    """
    targets = list(target_vars)
    target_ordinal = frozenset(target_ordinal)
    needed, stack = set(), list(targets)
    while stack:
        v = stack.pop()
        if v in needed:
            continue
        if v not in conditionals:
            raise ValueError(f"ancestral_marginal: no conditional for variable {v!r}")
        f = conditionals[v]
        if not f.ordinal <= target_ordinal:
            raise IntractableError(
                f"cannot take the marginal of {v!r} (in {_fmt_plates(f.ordinal)}) at "
                f"{_fmt_plates(target_ordinal)}: it is inside plate "
                f"{_fmt_plates(f.ordinal - target_ordinal)}"
            )
        needed.add(v)
        stack.extend(d for d in f.dims if d not in f.ordinal)
    factors = [conditionals[v] for v in sorted(needed, key=str)]
    term = _sumproduct(factors, needed - set(targets), target_ordinal)
    return LogFactor(term.tensor, term.dims, target_ordinal, "marginal")
