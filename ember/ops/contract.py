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

The same message passing is also available on Pyro's representation, trees of
packed tensors (``tensor._pyro_dims``) contracted with a ring of
:mod:`ember.ops.rings`: :func:`contract_tensor_tree`, :func:`contract_to_tensor`,
and on top of them the plated, multi-output :func:`einsum` (and its deprecated
log-space name :func:`ubersum`) with every einsum backend (values, logs, and the
map / sample / marginal adjoint backends), checked against the unrolling
reference :func:`naive_ubersum`.
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
import warnings
from collections import OrderedDict
from typing import Dict, Hashable, Iterable, List, Mapping, NamedTuple, Tuple, Union

import opt_einsum
import torch

from ember.ops.einsum import EXACT_PAIR_NUMEL, align_dims, contract, log_einsum
from ember.ops.rings import BACKEND_TO_RING, LinearRing, LogRing, MapRing
from ember.util import ignore_jit_warnings

Ordinal = frozenset


class IntractableError(ValueError, NotImplementedError):
    """A model whose enumerated variables cannot be summed out by plated variable elimination.

    (A ``ValueError``, and a ``NotImplementedError`` as Pyro raises there.) When
    a variable to sum out is coupled through a plate to another variable,
    ``variable`` and ``blocker`` name the two (else they are None).

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

    def __init__(self, message: str, variable=None, blocker=None):
        super().__init__(message)
        self.variable = variable
        self.blocker = blocker


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
                "Expected all enumerated sample sites to share a common poutine.scale: "
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

    __slots__ = ("steps", "outputs", "components", "counts")

    def __init__(self):
        self.steps: List[tuple] = []
        # (slot, dims, ordinal, name, component) or ("input", index) pass-throughs
        self.outputs: List[tuple] = []
        self.components: List[List[int]] = []  # input indices sharing one scale
        self.counts: Dict[str, int] = {}  # how many steps of each kind

    def add(self, step) -> int:
        self.steps.append(step)
        return -len(self.steps)  # result slots are numbered -1, -2, ... in step order

    def run(self, tensors: List[torch.Tensor], ring: str = "log") -> List[torch.Tensor]:
        fns = _RING_STEPS[ring]
        results: List[torch.Tensor] = []
        for step in self.steps:
            results.append(fns[step[0]](step, tensors, results))
        return results


def _slot(tensors, results, slot):
    return tensors[slot] if slot >= 0 else results[-1 - slot]


def _broadcast_inputs(step, tensors, results, combine):
    """The inputs of a broadcast step, laid out alike and combined pairwise."""
    total = None
    for slot, perm, shape in step[1]:
        x = _slot(tensors, results, slot)
        if perm is not None:
            x = x.permute(perm)
        if shape is not None:
            x = x.reshape(shape)
        total = x if total is None else combine(total, x)
    return total


def _run_broadcast(step, tensors, results):
    total = _broadcast_inputs(step, tensors, results, torch.add)
    return torch.logsumexp(total, dim=step[2]) if step[2] else total


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


# The same steps on tensors of plain values (the sum-product ring): products
# instead of sums of logs, sums instead of logsumexps.
def _run_broadcast_linear(step, tensors, results):
    total = _broadcast_inputs(step, tensors, results, torch.mul)
    return total.sum(dim=step[2]) if step[2] else total


def _run_einsum_linear(step, tensors, results):
    _, slots, equation = step
    operands = [_slot(tensors, results, s) for s in slots]
    return opt_einsum.contract(equation, *operands, backend="torch")


def _run_plate_product(step, tensors, results):
    _, slot, axes = step
    x = _slot(tensors, results, slot)
    for axis in sorted(axes, reverse=True):
        x = x.prod(axis)
    return x


_RING_STEPS = {
    "log": _STEP_FNS,
    "linear": {
        "broadcast": _run_broadcast_linear,
        "einsum": _run_einsum_linear,
        "plate_sum": _run_plate_product,
        "same": _run_same,
    },
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
                    _raise_coupled(term, left_sum, held, var_ordinals, leaf, sum_vars)
                term = _plan_product(plan, term, leaf - parent, parent)
                pending.setdefault(parent, []).append(term)
    return plan


_PLANS: Dict[tuple, _Plan] = {}
_MAX_PLANS = 512

#: ``LAST_CACHE_SIZE[0]``: how many tensor operations of each kind (``"broadcast"``,
#: ``"einsum"``, ``"plate_sum"``) the last :func:`contract_tree` call ran, e.g. to
#: watch how a model's contraction grows with its size (the counterpart of Pyro's
#: ``pyro.infer.util.LAST_CACHE_SIZE``, which counts its cached einsum operations).
LAST_CACHE_SIZE: List[Dict[str, int]] = [{}]


def contract_tree(
    factors: Iterable[LogFactor],
    var_ordinals: Mapping[Hashable, frozenset],
    sum_vars: Iterable[Hashable] | None = None,
    ring: str = "log",
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

    With ``ring="linear"`` the tensors hold values rather than their logs: they
    are multiplied and summed (plates multiply their elements), and the result
    is the same contraction in value space (negative values are allowed).

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
        for step in plan.steps:
            plan.counts[step[0]] = plan.counts.get(step[0], 0) + 1
        if key is not None:
            if len(_PLANS) >= _MAX_PLANS:
                _PLANS.clear()
            _PLANS[key] = plan
    if ring not in _RING_STEPS:
        raise ValueError(f"contract_tree: ring must be one of {sorted(_RING_STEPS)}, got {ring!r}")
    LAST_CACHE_SIZE[0] = plan.counts
    tensors = [f.tensor for f in factors]
    results = plan.run(tensors, ring)
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


def _raise_coupled(term, left_sum, held, var_ordinals, leaf, sum_vars):
    v = left_sum[0]
    blockers = [d for d in held if not var_ordinals[d] <= var_ordinals[v]]
    w = blockers[0] if blockers else v
    extra = var_ordinals[w] - var_ordinals[v]
    raise IntractableError(
        f"Expected tree-structured plate nesting: cannot sum out enumerated site {v!r} (in "
        f"{_fmt_plates(var_ordinals[v])}): factors [{term.name}] in {_fmt_plates(leaf)} couple "
        f"it to {'site' if w in sum_vars else 'kept variable'} {w!r}, which is inside plate "
        f"{_fmt_plates(extra)}; summing over {v!r} would need every element of that plate at "
        f"once. Enumerate only one of {v!r} and {w!r}, or restructure the plates (a "
        "sequential plate costs exponentially in its size)",
        variable=v,
        blocker=w,
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
        aligned = align_dims(f.tensor, f.dims, order)
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


# ---------------------------------------------------------------- packed tensor trees
#
# The functions below work on *packed* tensors (``tensor._pyro_dims`` names each
# dim with one character, see :mod:`ember.ops.packed`) grouped into a *tensor
# tree*: a mapping from ordinals (frozensets of plate dim symbols) to the terms
# that live in those plates. Their tensor operations come from a ring
# (:mod:`ember.ops.rings`), so one algorithm serves sum-product, max-product,
# sampling and marginals.

#: Backends of :func:`einsum` and their rings (Pyro's module paths and ember's).
EINSUM_BACKENDS = BACKEND_TO_RING


def partition_terms(ring, terms, dims) -> List[Tuple[list, set]]:
    """Split packed ``terms`` into groups that share sum dims.

    Two terms are in the same group when they are connected through the sum
    dims ``dims`` they mention. Returns ``(terms, dims)`` pairs, one per group,
    with the sum dims the group mentions; terms without sum dims form groups of
    their own. Deterministic, and neither ``terms`` nor ``dims`` is modified.
    ``ring`` is accepted for symmetry with the other tensor-tree functions.

    Example::

        >>> import torch
        >>> from ember.ops.packed import pack
        >>> x = pack(torch.ones(2, 3), {-2: "a", -1: "b"})
        >>> y = pack(torch.ones(3), {-1: "b"})
        >>> z = pack(torch.ones(4), {-1: "c"})
        >>> [(len(ts), sorted(ds)) for ts, ds in partition_terms(None, [x, y, z], {"b", "c"})]
        [(2, ['b']), (1, ['c'])]
    """
    dims = set(dims)
    terms = list(terms)
    root = list(range(len(terms)))

    def find(i):
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    first_term: Dict[str, int] = {}
    for i, term in enumerate(terms):
        for d in term._pyro_dims:
            if d in dims:
                j = first_term.setdefault(d, i)
                ri, rj = find(i), find(j)
                if ri != rj:
                    root[max(ri, rj)] = min(ri, rj)
    groups: Dict[int, Tuple[list, set]] = {}
    for i, term in enumerate(terms):
        group_terms, group_dims = groups.setdefault(find(i), ([], set()))
        group_terms.append(term)
        group_dims.update(d for d in term._pyro_dims if d in dims)
    return list(groups.values())


def _plates_text(ordinal) -> str:
    return ", ".join(sorted(str(p) for p in ordinal)) or "no plates"


def check_plates_are_sensible(kept_dims, missing_plates) -> None:
    """Raise ValueError if sum dims ``kept_dims`` are kept without their plates.

    A sum dim inside plates has one copy per plate element: a result keeping
    that dim must also keep the plates ``missing_plates`` it would otherwise
    lose.

    Example::

        >>> check_plates_are_sensible({"a"}, frozenset())  # nothing missing: fine
        >>> try:
        ...     check_plates_are_sensible({"a"}, frozenset("i"))
        ... except ValueError as e:
        ...     print(str(e)[:52])
        It is nonsensical to preserve a plated dim without p
    """
    if kept_dims and missing_plates:
        raise ValueError(
            "It is nonsensical to preserve a plated dim without preserving all of that dim's "
            f"plates: the result keeps dim(s) {sorted(kept_dims)} without its plate(s) "
            f"[{_plates_text(missing_plates)}]; keep those plates in the output too"
        )


def _tree_error(leaf, term) -> IntractableError:
    return IntractableError(
        "Expected tree-structured plate nesting, but found dependencies on independent "
        f"plates [{_plates_text(leaf)}]: the term with dims {term._pyro_dims!r} couples sum "
        "dims from plates that do not nest, so summing them out would cost exponentially in "
        "the plate sizes. Try converting one of the vectorized plates to a sequential plate "
        "(but beware exponential cost in the size of the sequence)"
    )


def _contract_component(ring, tree, sum_dims, target_dims):
    """Contract one connected component of a tensor tree down to one term.

    ``tree`` (a dict ordinal -> list of terms, consumed here) is contracted by
    message passing from the innermost plates outwards: at each leaf ordinal its
    terms are multiplied and their local sum dims summed out, then the plates
    the result no longer needs are product-contracted and the result moves to
    its parent ordinal. Sum dims in ``target_dims`` are kept; when such a dim
    must leave its plates, the term is split by inclusion-exclusion
    (:meth:`Ring.global_local`) into a global part that moves on and a local
    part kept aside and multiplied back at the end, so the result is exact.

    Returns ``(ordinal, term)``.
    """
    dim_ordinal: Dict[str, frozenset] = {}
    for ordinal, terms in tree.items():
        for term in terms:
            for d in sum_dims.intersection(term._pyro_dims):
                dim_ordinal[d] = dim_ordinal.get(d, ordinal) & ordinal
    dims_at: Dict[frozenset, set] = {}
    for d, ordinal in dim_ordinal.items():
        dims_at.setdefault(ordinal, set()).add(d)

    root = frozenset.intersection(*tree)
    local_terms = []
    local_dims = set(target_dims)
    local_ordinal = frozenset()
    while any(dims_at.values()) or len(tree) > 1:
        leaf = max(tree, key=len)  # no ordinal of the tree lies inside it
        leaf_terms = tree.pop(leaf)
        leaf_dims = dims_at.pop(leaf, set())
        for terms, dims in partition_terms(ring, leaf_terms, leaf_dims):
            term = ring.sumproduct(terms, dims - local_dims)
            if leaf == root:
                tree.setdefault(leaf, []).append(term)
                continue
            pending = sum_dims.intersection(term._pyro_dims)
            outer = [o for o, ds in dims_at.items() if ds & pending]
            parent = frozenset().union(*outer) if outer else root
            if parent == leaf:
                raise _tree_error(leaf, term)
            plates = leaf - parent
            kept = dims & local_dims
            if kept:
                term, local_term = ring.global_local(term, kept, plates)
                local_terms.append(local_term)
                local_dims |= sum_dims.intersection(local_term._pyro_dims)
                local_ordinal |= leaf
            else:
                term = ring.product(term, plates)
            tree.setdefault(parent, []).append(term)
        if leaf == root and not any(dims_at.values()) and len(tree) == 1:
            break

    ordinal, terms = tree.popitem()
    term = terms[0] if len(terms) == 1 else ring.sumproduct(terms, set())
    if local_terms:
        local_terms.append(term)
        term = ring.sumproduct(local_terms, local_dims - set(target_dims))
        ordinal = ordinal | local_ordinal
    return ordinal, term


def _check_tree_args(tensor_tree, sum_dims):
    if not isinstance(tensor_tree, Mapping):
        raise TypeError(
            "tensor_tree must map ordinals (frozensets of plate dims) to lists of packed "
            f"tensors, got {type(tensor_tree).__name__}"
        )
    for ordinal, terms in tensor_tree.items():
        for term in terms:
            if not hasattr(term, "_pyro_dims"):
                raise ValueError(
                    f"a term of shape {tuple(term.shape)} at ordinal {set(ordinal)} is not "
                    "packed (no _pyro_dims); pack it with ember.ops.packed.pack"
                )
    return set(sum_dims)


def _components(ring, tensor_tree, sum_dims):
    """Connected components of a tensor tree, each as a fresh dict ordinal -> terms."""
    ordinal_of = {}
    every = []
    for ordinal, terms in tensor_tree.items():
        for term in terms:
            ordinal_of[id(term)] = ordinal
            every.append(term)
    for terms, dims in partition_terms(ring, every, sum_dims):
        tree: Dict[frozenset, list] = {}
        for term in terms:
            tree.setdefault(ordinal_of[id(term)], []).append(term)
        yield tree, dims


def contract_tensor_tree(tensor_tree, sum_dims, cache=None, ring=None) -> OrderedDict:
    """Sum the ``sum_dims`` out of a tree of packed tensors by message passing.

    ``tensor_tree`` maps ordinals (frozensets of plate dim symbols) to lists of
    packed tensors; ``sum_dims`` is the set of every sum dim (the other dims of
    the terms are plate dims). Each connected component is contracted to one
    term, at the smallest ordinal its sum dims allow (plates are only partially
    product-contracted). Returns a new ``OrderedDict`` ordinal -> terms; the input
    is not modified. ``ring`` defaults to a :class:`~ember.ops.rings.LogRing`
    using ``cache``.

    Example::

        >>> import torch
        >>> from collections import OrderedDict
        >>> from ember.ops.packed import pack
        >>> prior = pack(torch.tensor([0.3, 0.7]).log(), {-1: "a"})
        >>> lik = pack(torch.zeros(2, 4), {-2: "a", -1: "i"})  # one factor per element of i
        >>> out = contract_tensor_tree(OrderedDict([(frozenset(), [prior]),
        ...                                         (frozenset("i"), [lik])]), {"a"})
        >>> [(sorted(o), t._pyro_dims, round(float(t), 4)) for o, ts in out.items() for t in ts]
        [([], '', 0.0)]
    """
    sum_dims = _check_tree_args(tensor_tree, sum_dims)
    if ring is None:
        ring = LogRing(cache)
    result: OrderedDict = OrderedDict()
    for tree, dims in _components(ring, tensor_tree, sum_dims):
        ordinal, term = _contract_component(ring, tree, dims, set())
        result.setdefault(ordinal, []).append(term)
    return result


def contract_to_tensor(
    tensor_tree,
    sum_dims,
    target_ordinal=None,
    target_dims=None,
    cache=None,
    ring=None,
) -> torch.Tensor:
    """Contract a tree of packed tensors to one tensor in the plates ``target_ordinal``.

    Sum dims not in ``target_dims`` are summed out, plates not in
    ``target_ordinal`` are product-contracted, and the result is broadcast to
    the plates of ``target_ordinal`` it lacks (their sizes come from the ring's
    ``dim_to_size``). With ``target_dims`` (a subset of ``sum_dims``) the result
    is exact up to a constant factor: components that do not touch a target dim
    are left out. Raises ValueError when a kept sum dim would lose its plates,
    and :class:`IntractableError` (a NotImplementedError) when the plates do not
    nest. The input is not modified.

    Example::

        >>> import torch
        >>> from collections import OrderedDict
        >>> from ember.ops.packed import pack
        >>> x = pack(torch.tensor([[1.0, 2.0], [3.0, 4.0]]).log(), {-2: "a", -1: "i"})
        >>> z = contract_to_tensor(OrderedDict([(frozenset("i"), [x])]), {"a"})
        >>> z._pyro_dims, round(float(z.exp()), 4)  # (1 + 3) * (2 + 4)
        ('', 24.0)
    """
    sum_dims = _check_tree_args(tensor_tree, sum_dims)
    target_ordinal = frozenset() if target_ordinal is None else frozenset(target_ordinal)
    target_dims = set() if target_dims is None else set(target_dims)
    if not target_dims <= sum_dims:
        raise ValueError(
            f"contract_to_tensor: target_dims {sorted(target_dims - sum_dims)} are not sum dims "
            f"(sum_dims = {sorted(sum_dims)})"
        )
    if ring is None:
        ring = LogRing(cache)
    modulo_total = bool(target_dims)
    results = []
    for tree, dims in _components(ring, tensor_tree, sum_dims):
        if modulo_total and dims.isdisjoint(target_dims):
            continue  # only a constant factor
        ordinal, term = _contract_component(ring, tree, dims, target_dims & dims)
        check_plates_are_sensible(
            target_dims.intersection(term._pyro_dims), ordinal - target_ordinal
        )
        if ordinal - target_ordinal:
            term = ring.product(term, ordinal - target_ordinal)
        results.append(term)
    if not results:
        raise ValueError("contract_to_tensor: the tensor tree has no terms")
    term = results[0] if len(results) == 1 else ring.sumproduct(results, set())
    return ring.broadcast(term, target_ordinal)


# ---------------------------------------------------------------- einsum with plates


def _parse_plated(equation: str, operands, plates):
    """Split and check a plated einsum equation: (inputs, outputs, sizes, plates, ordinals)."""
    if not isinstance(equation, str) or "->" not in equation:
        raise ValueError(f"einsum needs an explicit output, e.g. 'ab,bc->a,c'; got {equation!r}")
    if "." in equation:
        raise NotImplementedError("einsum does not support ellipsis ('...') notation")
    equation = equation.replace(" ", "")
    lhs, rhs = equation.split("->")
    inputs = lhs.split(",")
    outputs = rhs.split(",")
    if len(inputs) != len(operands):
        raise ValueError(
            f"einsum equation {equation!r} names {len(inputs)} operands but {len(operands)} "
            "were given"
        )
    sizes: Dict[str, int] = {}
    with ignore_jit_warnings():
        for dims, x in zip(inputs, operands):
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"einsum operands must be tensors, got {type(x).__name__}")
            if len(dims) != x.dim():
                raise ValueError(
                    f"einsum: operand with dims {dims!r} has shape {tuple(x.shape)}; give one "
                    "letter per dim"
                )
            if len(set(dims)) != len(dims):
                raise ValueError(f"einsum does not take repeated dims within an operand: {dims!r}")
            for d, n in zip(dims, map(int, x.shape)):
                if sizes.setdefault(d, n) != n:
                    raise ValueError(
                        f"einsum: Dimension size mismatch at dim {d!r}: {n} vs {sizes[d]} "
                        f"(equation {equation!r})"
                    )
    plates = frozenset(plates)
    # a sum dim lives in the plates that go with it in every operand it appears in
    var_ordinals: Dict[str, frozenset] = {}
    for dims in inputs:
        ordinal = plates.intersection(dims)
        for d in dims:
            if d not in plates:
                var_ordinals[d] = var_ordinals.get(d, ordinal) & ordinal
    for out in outputs:
        for d in out:
            if d not in sizes:
                raise ValueError(f"einsum: output dim {d!r} appears in no operand ({equation!r})")
        if len(set(out)) != len(out):
            raise ValueError(f"einsum: repeated output dim in {out!r}")
        for d in out:
            if d not in plates:
                check_plates_are_sensible({d}, var_ordinals[d] - plates.intersection(out))
    return inputs, outputs, sizes, plates, var_ordinals


def _ring_class(backend, fn):
    ring = EINSUM_BACKENDS.get(backend)
    if ring is None:
        raise NotImplementedError(
            f"{fn}: backend {backend!r} is not implemented; only the following backends are "
            f"currently implemented: {', '.join(sorted(EINSUM_BACKENDS))}"
        )
    return ring


def einsum(equation: str, *operands: torch.Tensor, **kwargs) -> Tuple[torch.Tensor, ...]:
    """Plated sum-product contraction with one or more outputs.

    Like :func:`torch.einsum` (``"ab,bc->ac"``), except that:

    * several outputs may be requested, comma-separated (``"ab,bc->a,c"``);
      the result is a tuple with one tensor per output;
    * dims named in ``plates`` are *product* dims: along them, the inputs are
      multiplied rather than summed. A sum dim that appears only together with
      a plate dim ``i`` stands for one variable per element of ``i``; an output
      that keeps such a dim must keep its plates too. Each output element is
      the contraction of *all* plate elements, keeping the output's variables
      at that element.

    Keyword arguments: ``plates`` (a string of plate dims), ``backend``
    (``"torch"`` for values; ``"pyro.ops.einsum.torch_log"`` or
    ``"ember.ops.einsum.torch_log"`` for log-values, with ``logsumexp`` for sums
    and ``+`` for products; ``torch_map``, ``torch_sample`` and
    ``torch_marginal`` for the log-space adjoint backends, whose results carry a
    backward pass to inputs marked with
    :func:`~ember.ops.einsum.adjoint.require_backward`), ``cache`` (a dict
    shared between calls to reuse intermediates) and ``modulo_total``. An
    output with dims needs ``modulo_total=True``, which lets each output be off
    by a constant factor (terms that do not touch its dims are left out).
    Contractions whose cost would grow exponentially with a plate size raise
    :class:`IntractableError`, a NotImplementedError.

    Example::

        >>> import torch
        >>> x, y = torch.rand(2, 3), torch.rand(3, 4)
        >>> (z,) = einsum("ab,bc->", x, y)
        >>> bool(torch.isclose(z, (x @ y).sum()))
        True
        >>> w = torch.rand(2, 5)  # five plate elements
        >>> (p,) = einsum("ai->", w, plates="i")  # sum over a, product over i
        >>> bool(torch.isclose(p, w.sum(0).prod()))
        True
    """
    cache = kwargs.pop("cache", None)
    plates = kwargs.pop("plates", "")
    backend = kwargs.pop("backend", "torch")
    modulo_total = kwargs.pop("modulo_total", False)
    if kwargs:
        raise TypeError(f"einsum: unexpected keyword arguments {sorted(kwargs)}")
    ring_class = _ring_class(backend, "einsum")
    inputs, outputs, sizes, plate_set, _ = _parse_plated(equation, operands, plates)
    if not modulo_total and any(outputs):
        raise NotImplementedError(
            "einsum: outputs with dims need modulo_total=True. Try setting modulo_total=True "
            "and ensuring that your use case allows an arbitrary scale factor on each result "
            "plate (fine for unnormalized distributions)"
        )
    # packed views of the operands (the caller's tensors are not modified)
    tree: Dict[frozenset, list] = OrderedDict()
    for dims, x in zip(inputs, operands):
        term = x[...]
        term._pyro_dims = dims
        if hasattr(x, "_pyro_backward"):
            term._pyro_backward = x._pyro_backward
        tree.setdefault(plate_set.intersection(dims), []).append(term)
    ring = ring_class({} if cache is None else cache, dim_to_size=sizes)
    results = []
    for out in outputs:
        sum_dims = set(out).union(*inputs) - plate_set
        if not tree:  # no operands: the empty product
            term = torch.zeros(()) if ring_class is not LinearRing else torch.ones(())
            term._pyro_dims = ""
            term = ring.broadcast(term, plate_set.intersection(out))
        else:
            term = contract_to_tensor(
                tree,
                sum_dims,
                target_ordinal=plate_set.intersection(out),
                target_dims=sum_dims.intersection(out),
                ring=ring,
            )
        if term._pyro_dims != out:
            backward = getattr(term, "_pyro_backward", None)
            term = term.permute(tuple(term._pyro_dims.index(d) for d in out))
            term._pyro_dims = out
            if backward is not None:
                term._pyro_backward = backward
        results.append(term)
    return tuple(results)


def ubersum(equation: str, *operands: torch.Tensor, **kwargs) -> Tuple[torch.Tensor, ...]:
    """Deprecated name of :func:`einsum` in log space (``backend`` defaults to
    ``"pyro.ops.einsum.torch_log"``; ``batch_dims`` is the old name of ``plates``).

    Example::

        >>> import warnings, torch
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     (z,) = ubersum("a->", torch.zeros(3))
        >>> round(float(z.exp()), 4)
        3.0
    """
    warnings.warn(
        "'ubersum' is deprecated, use 'ember.ops.contract.einsum' instead",
        DeprecationWarning,
        stacklevel=2,
    )
    if "batch_dims" in kwargs:
        warnings.warn(
            "'batch_dims' is deprecated, use 'plates' instead", DeprecationWarning, stacklevel=2
        )
        kwargs["plates"] = kwargs.pop("batch_dims")
    kwargs.setdefault("backend", "pyro.ops.einsum.torch_log")
    return einsum(equation, *operands, **kwargs)


def _flat_contract(equation: str, operands, ring_class):
    """Unplated contraction of plain tensors with the forward pass of ``ring_class``."""
    if ring_class is LinearRing:
        return opt_einsum.contract(equation, *operands, backend="torch")
    if ring_class is MapRing:  # max-sum: the map backend names dims by _pyro_dims
        lhs = equation.split("->")[0].split(",")
        named = []
        for dims, x in zip(lhs, operands):
            x = x[...]
            x._pyro_dims = dims
            named.append(x)
        return contract(equation, *named, backend="ember.ops.einsum.torch_map")
    return contract(equation, *operands, backend="ember.ops.einsum.torch_log")


def _unrolled_symbol(symbols: dict, var_ordinals, d: str, at: dict) -> str:
    """The symbol of the copy of sum dim ``d`` at the plate element ``at``."""
    key = (d, tuple((p, at[p]) for p in sorted(var_ordinals[d])))
    if key not in symbols:
        symbols[key] = opt_einsum.get_symbol(len(symbols))
    return symbols[key]


def naive_ubersum(equation: str, *operands: torch.Tensor, **kwargs) -> Tuple[torch.Tensor, ...]:
    """:func:`einsum` by unrolling the plates, as a reference (log space by default,
    like :func:`ubersum`).

    Each sum dim gets one copy per element of its plates and each operand one
    slice per element of its plates; the resulting unplated equation is
    contracted with ``opt_einsum``, once per element of the output's plates
    (keeping that element's copies of the output's sum dims). Works with every
    backend of :func:`einsum` (the adjoint backends by their forward pass:
    log-space sum-product, or max-sum for ``torch_map``) and never raises
    :class:`IntractableError`; it agrees with :func:`einsum` wherever that does
    not raise, up to the constant factors ``modulo_total`` allows. The cost
    grows exponentially with plate sizes: for tests only.

    Example::

        >>> import torch
        >>> x = torch.randn(2, 3)
        >>> (a,) = naive_ubersum("ai->", x, plates="i")
        >>> (b,) = einsum("ai->", x, plates="i", backend="pyro.ops.einsum.torch_log")
        >>> bool(torch.isclose(a, b))
        True
    """
    plates = kwargs.pop("plates", kwargs.pop("batch_dims", ""))
    backend = kwargs.pop("backend", "pyro.ops.einsum.torch_log")
    kwargs.pop("cache", None)
    kwargs.pop("modulo_total", None)
    if kwargs:
        raise TypeError(f"naive_ubersum: unexpected arguments {sorted(kwargs)}")
    ring_class = _ring_class(backend, "naive_ubersum")
    inputs, outputs, sizes, plate_set, var_ordinals = _parse_plated(equation, operands, plates)
    results = []
    for out in outputs:
        if not plate_set:
            results.append(_flat_contract(",".join(inputs) + "->" + out, operands, ring_class))
            continue
        symbols: Dict[tuple, str] = {}
        copy_of = functools.partial(_unrolled_symbol, symbols, var_ordinals)
        flat_inputs, flat_operands = [], []
        for dims, x in zip(inputs, operands):
            local = [d for d in dims if d in plate_set]
            for element in itertools.product(*(range(sizes[p]) for p in local)):
                at = dict(zip(local, element))
                index = tuple(at[d] if d in plate_set else slice(None) for d in dims)
                flat_inputs.append("".join(copy_of(d, at) for d in dims if d not in plate_set))
                flat_operands.append(x[index])
        out_plates = [d for d in out if d in plate_set]
        pieces = []
        for element in itertools.product(*(range(sizes[p]) for p in out_plates)):
            at = dict(zip(out_plates, element))
            flat_out = "".join(copy_of(d, at) for d in out if d not in plate_set)
            pieces.append(
                _flat_contract(",".join(flat_inputs) + "->" + flat_out, flat_operands, ring_class)
            )
        kept = [d for d in out if d not in plate_set]
        value = torch.stack(pieces).reshape(tuple(sizes[d] for d in out_plates + kept))
        order = out_plates + kept
        results.append(value.permute(tuple(order.index(d) for d in out)))
    return tuple(results)


#: Pyro's name of :func:`partition_terms`, for code written against Pyro.
_partition_terms = partition_terms
