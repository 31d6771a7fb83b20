"""Argument and support validation for distributions, and the constructors and ``expand``
of ember's wrappers of torch distributions.

Validation is on by default, so it must be cheap. torch decides
``constraint.check(value).all()`` with an elementwise kernel, a reduction and a host read
for every parameter of every distribution it builds, and again for every value given to
``log_prob``. Here:

* the common constraints (real, bounds, intervals, integer ranges, and ``independent``
  versions of them) are decided from one reduction: ``min`` and ``max`` propagate NaN, so
  ``lower < value.min()`` fails exactly when some entry is not above ``lower`` or is NaN;
  ``real`` is ``torch.equal(value, value)`` (NaN equals nothing). simplex, lower_cholesky
  and lower_triangular take two or three ops instead of seven to ten. A Python number, or
  a tensor holding a single distinct value (a number broadcast to the batch shape), is
  compared in Python. On accelerators every check of one call is combined into a single
  boolean read. The answer is always the one ``constraint.check(value).all()`` gives
  (:func:`decide`, :func:`first_violation`);
* the errors name the distribution, the parameter, its shape and the offending entries
  (:func:`check_parameters`, :func:`check_value`, :func:`parameter_error`);
* a tensor a distribution drew itself lies in its support by construction, so its
  ``log_prob`` does not check it again while it provably still holds the drawn values
  (:func:`enable_fast_validation`, :func:`remember_valid`).

The wrappers in :mod:`ember.distributions.torch` build themselves with one pattern: a
wrapper either keeps torch's constructor (its parameters are then checked once by
:class:`~ember.distributions.torch_distribution.TorchDistributionMixin`) or has a
constructor that builds the instance with torch's checks off and ends in
:func:`finish_init`, which checks the parameters once, naming the wrapper's own
parameters (:func:`broadcast_init`, :func:`construct_quietly`, :func:`quiet_init`). A
wrapper with its own constructor gets its ``expand`` from :func:`wrapper_expand`
(:func:`finish_wrapper` installs it).
"""

from __future__ import annotations

import functools
import inspect
import math
import struct
import warnings
import weakref
from typing import Iterable

import torch
from torch.distributions import constraints as _tc
from torch.distributions.utils import lazy_property

from ember.distributions.util import (
    broadcast_params,
    is_broadcast_failure,
    number_like,
    parameter_shape_error,
)

_EMPTY = torch.Size()
_TorchBase = torch.distributions.Distribution

# --- deciding a constraint ------------------------------------------------------------------

_MISS = object()
_INFINITIES = (math.inf, -math.inf)
_FLOAT_DTYPES = frozenset((torch.float32, torch.float64, torch.float16, torch.bfloat16))
_INT_DTYPES = frozenset((torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8))
_SIMPLE = {
    # constraint type -> (lower attr, lower strict, upper attr, upper strict, integer valued)
    _tc._Real: (None, False, None, False, False),
    _tc._GreaterThan: ("lower_bound", True, None, False, False),
    _tc._GreaterThanEq: ("lower_bound", False, None, False, False),
    _tc._LessThan: (None, False, "upper_bound", True, False),
    _tc._Interval: ("lower_bound", False, "upper_bound", False, False),
    _tc._HalfOpenInterval: ("lower_bound", False, "upper_bound", True, False),
    _tc._IntegerInterval: ("lower_bound", False, "upper_bound", False, True),
    _tc._IntegerGreaterThan: ("lower_bound", False, None, False, True),
    _tc._IntegerLessThan: (None, False, "upper_bound", False, True),
}
_FORMS = {}  # long-lived constraint object -> its form (below) or None
_FORMS_BY_BOUNDS = {}  # (kind, lower, upper, min_dim) -> form, for constraints made per call
_NUMBER_TYPES = (int, float, bool)


def constraint_form(constraint, lasting: bool = False):
    """The range ``constraint`` describes, as a tuple, or None if it is not a plain range.

    The tuple is ``(lower, lower_strict, upper, upper_strict, integer, min_dim, exact,
    real)``: ``constraint`` (seen through ``independent``, which needs ``min_dim`` dims)
    must be a range with Python-number bounds; ``exact`` says whether the bounds are the
    same in every float dtype (small integers or infinities); ``real`` that the
    constraint is ``real`` (anything but NaN). ``lasting`` constraints (module or class
    attributes) are remembered by identity; the ones built at each call (dependent
    supports) by their bounds.

    Example::

        >>> from torch.distributions import constraints
        >>> constraint_form(constraints.positive)
        (0.0, True, None, False, False, 0, True, False)
        >>> constraint_form(constraints.simplex) is None
        True
    """
    form = _FORMS.get(constraint, _MISS)
    if form is not _MISS:
        return form
    base, min_dim = constraint, 0
    while type(base) is _tc._IndependentConstraint:
        min_dim += base.reinterpreted_batch_ndims
        base = base.base_constraint
    kind = type(base)
    if kind is _tc._Boolean:
        spec, lower, upper = ("lower", False, "upper", False, True), 0, 1
    else:
        spec = _SIMPLE.get(kind)
        if spec is None:
            form = None
            if lasting and len(_FORMS) < 4096:
                _FORMS[constraint] = form
            return form
        lower = None if spec[0] is None else getattr(base, spec[0])
        upper = None if spec[2] is None else getattr(base, spec[2])
    if (lower is not None and type(lower) not in _NUMBER_TYPES) or (
        upper is not None and type(upper) not in _NUMBER_TYPES
    ):
        return None  # tensor bounds: compare elementwise (and never keep the tensors)
    key = (kind, lower, upper, min_dim)
    form = _FORMS_BY_BOUNDS.get(key)
    if form is None:
        bounds = [b for b in (lower, upper) if b is not None]
        exact = all(b in _INFINITIES or (b == int(b) and abs(b) <= 256) for b in bounds)
        real = lower is None and upper is None and not spec[4]
        form = (lower, spec[1], upper, spec[3], spec[4], min_dim, exact, real)
        if len(_FORMS_BY_BOUNDS) < 4096:
            _FORMS_BY_BOUNDS[key] = form
    if lasting and len(_FORMS) < 4096:
        _FORMS[constraint] = form
    return form


for _c in vars(_tc).values():  # torch's constraint objects live as long as the process
    if isinstance(_c, _tc.Constraint):
        constraint_form(_c, lasting=True)
del _c

_ROUNDED_BOUNDS = {}


def _rounded(bound, dtype):
    """``bound`` as torch sees it when it compares it with a tensor of ``dtype``."""
    if dtype not in _FLOAT_DTYPES:
        dtype = torch.get_default_dtype()  # int tensor vs Python float: both promoted
        if type(bound) is int:
            return bound
    if dtype is torch.float64:
        return bound
    key = (bound, dtype)
    rounded = _ROUNDED_BOUNDS.get(key)
    if rounded is None:
        rounded = torch.tensor(bound, dtype=dtype).item()
        if len(_ROUNDED_BOUNDS) < 4096:
            _ROUNDED_BOUNDS[key] = rounded
    return rounded


def _within(low, high, form, dtype) -> bool:
    """Whether every entry lies in ``form``, from the entries' min ``low`` and max ``high``."""
    lower, lower_strict, upper, upper_strict, integer, _, exact, _ = form
    if low != low or high != high:  # NaN
        return False
    if lower is not None:
        if not exact:
            lower = _rounded(lower, dtype)
        if (low <= lower) if lower_strict else (low < lower):
            return False
    if upper is not None:
        if not exact:
            upper = _rounded(upper, dtype)
        if (high >= upper) if upper_strict else (high > upper):
            return False
    return not integer or low % 1 == 0


def _in_dtype(x, dtype):
    """The Python number ``x`` rounded as a tensor of ``dtype`` stores it (None: unknown)."""
    if dtype is torch.float64:
        return float(x)
    if dtype is torch.float32:
        try:
            return _F32.unpack(_F32.pack(x))[0]
        except OverflowError:
            return math.copysign(math.inf, x)
    return None


_F32 = struct.Struct("f")


def single_value(value: torch.Tensor):
    """The Python number held by a CPU tensor whose entries all alias one element, else None.

    That is the case for one-element tensors and for numbers broadcast with
    ``expand`` (all strides zero); reading it needs no kernel.

    Example::

        >>> single_value(torch.tensor(2.5).expand(3, 4))
        2.5
        >>> single_value(torch.ones(2)) is None
        True
    """
    n = value.numel()
    if n == 1:
        return value.item()
    if n == 0 or any(value.stride()):
        return None
    return value.as_strided((), ()).item()


def decide(constraint, value, form=_MISS, dtype=None):
    """Whether ``value`` satisfies ``constraint`` everywhere: True/False, or off the CPU a
    0-dim bool tensor still to be read (so that several can be read at once, see
    :func:`read_pending`).

    ``value`` is a tensor or a Python number (to be stored with ``dtype``, by
    default the default dtype); ``form`` is ``constraint_form(constraint)`` when
    the caller has it at hand.

    Example::

        >>> from torch.distributions import constraints
        >>> decide(constraints.positive, torch.tensor([1.0, 2.0]))
        True
        >>> decide(constraints.unit_interval, 1.5)
        False
    """
    if isinstance(value, torch.Tensor):
        if not value.is_cpu:
            if value.is_meta:
                return True  # no values to check
            return constraint.check(value.detach()).all()
        if form is _MISS:
            form = constraint_form(constraint)
        if form is not None:
            if value.layout is torch.strided:
                decided = _decide_range(form, value)
                if decided is not None:
                    return decided
        elif type(constraint) in _TRIANGULAR:
            decided = _decide_triangular(value, type(constraint) is _tc._LowerCholesky)
            if decided is not None:
                return decided
        elif type(constraint) is _tc._Simplex:
            decided = decide_simplex(value)
            if decided is not None:
                return decided
        if value.requires_grad:
            value = value.detach()
        return bool(constraint.check(value).all())
    if type(value) is float or type(value) is int:  # a Python number: no tensor at all
        dtype = torch.get_default_dtype() if dtype is None else dtype
        if form is _MISS:
            form = constraint_form(constraint)
        x = _in_dtype(value, dtype)
        if form is not None and x is not None:
            return _within(x, x, form, dtype)
    try:
        tensor = torch.as_tensor(value, dtype=dtype)
    except (RuntimeError, TypeError, ValueError) as err:
        raise TypeError(
            f"expected a number or a tensor, got {type(value).__name__} ({err})"
        ) from None
    return decide(constraint, tensor, form)


def _decide_range(form, value):
    """``decide`` for a range constraint and a strided CPU tensor (None: check elementwise)."""
    if value.dim() < form[5]:
        return None  # the elementwise check raises torch's error
    dtype = value.dtype
    if dtype in _FLOAT_DTYPES:
        floating = True
        if form[7]:  # real: NaN is the only invalid value, and NaN equals nothing
            return torch.equal(value, value)
    elif dtype in _INT_DTYPES:
        floating = False
    else:
        return None
    n = value.numel()
    if n == 1:
        x = value.item()
        return _within(x, x, form, dtype)
    if n == 0:
        return True
    if not any(value.stride()):  # a broadcast number: one distinct entry
        x = single_value(value)
        return _within(x, x, form, dtype)
    lower, upper, integer = form[0], form[2], form[4]
    if not floating:
        if lower is None and upper is None:
            return True  # integers are real and integral
    if value.requires_grad:
        value = value.detach()
    if integer and floating:  # in range (so finite) and equal to its integer part
        low, high = torch.aminmax(value)
        low, high = low.item(), high.item()
        if low in _INFINITIES or high in _INFINITIES or not _within(low, high, form, dtype):
            return False
        return torch.equal(value, value.trunc())
    if upper is None:
        low = value.min().item()
        return _within(low, low, form, dtype)
    if lower is None:
        high = value.max().item()
        return _within(high, high, form, dtype)
    low, high = torch.aminmax(value)
    return _within(low.item(), high.item(), form, dtype)


_TRIANGULAR = (_tc._LowerTriangular, _tc._LowerCholesky)


def decide_simplex(value: torch.Tensor):
    """``constraints.simplex`` for a CPU tensor from two reductions; None if not applicable.

    Entries must be ``>= 0`` and every row (last dim) must sum to 1 within
    ``1e-6``, as torch decides it. Returns None for integer dtypes, non-strided
    layouts or 0-dim tensors (the caller then asks the constraint itself).

    Example::

        >>> decide_simplex(torch.tensor([[0.25, 0.75], [0.5, 0.5]]))
        True
        >>> decide_simplex(torch.tensor([0.5, 0.6]))
        False
    """
    dtype = value.dtype
    if value.dim() < 1 or dtype not in _FLOAT_DTYPES or value.layout is not torch.strided:
        return None
    if value.numel() == 0:
        return True
    if value.requires_grad:
        value = value.detach()
    if value.numel() <= _SMALL_SIMPLEX:  # read the row sums (as torch rounds them) and entries
        tol = _rounded(1e-6, dtype)
        sums = value.sum(-1).reshape(-1).tolist()
        # s - 1 is exact in the dtype for s near 1 (and far from the bound otherwise)
        if not all(abs(s - 1.0) < tol for s in sums):
            return False
        return all(x >= 0 for x in value.reshape(-1).tolist())  # (NaN fails)
    low = value.min().item()
    if not low >= 0:  # (NaN too)
        return False
    error = (value.sum(-1) - 1).abs().max().item()
    return error < _rounded(1e-6, dtype)


_SMALL_SIMPLEX = 256  # up to this many entries, the simplex check reads them all


def _decide_triangular(value, positive_diagonal):
    """lower_triangular / lower_cholesky in two or three tensor ops (torch's check takes ten).

    ``torch.equal`` with the lower triangle fails exactly when some entry above
    the diagonal is not zero or some entry is NaN (NaN equals nothing).
    """
    if value.dim() < 2 or value.layout is not torch.strided:
        return None
    if value.numel() == 0:
        return True
    if not torch.equal(value.tril(), value):
        return False
    return not positive_diagonal or value.diagonal(dim1=-2, dim2=-1).min().item() > 0


def read_pending(pending):
    """Read the undecided ``(key, 0-dim bool tensor)`` pairs with one host read if possible;
    the key of the first False one, else None.

    Example::

        >>> read_pending([("a", torch.tensor(True)), ("b", torch.tensor(False))])
        'b'
    """
    if len(pending) > 1 and len({r.device for _, r in pending}) == 1:
        if bool(torch.stack([r for _, r in pending]).all()):  # the one device read
            return None
    for i, r in pending:
        if not bool(r):
            return i
    return None


def first_violation(checks: Iterable) -> int | None:
    """Index of the first ``(constraint, value)`` pair whose value breaks its constraint.

    Returns None when all hold. Decides each pair from as little work as
    possible (see :func:`decide`) and reads accelerator results once, all
    together; the answer equals ``constraint.check(value).all()`` for each pair.

    Example::

        >>> from torch.distributions import constraints
        >>> first_violation([(constraints.real, torch.zeros(3)),
        ...                  (constraints.positive, torch.tensor([1.0, -1.0]))])
        1
        >>> first_violation([(constraints.positive, 2.0)]) is None
        True
    """
    pending = None
    for i, (constraint, value) in enumerate(checks):
        decided = decide(constraint, value)
        if decided is True:
            continue
        if decided is False:
            return i
        if pending is None:
            pending = []
        pending.append((i, decided))
    return None if pending is None else read_pending(pending)


def describe_violation(constraint, value, limit: int = 3) -> str:
    """Which entries of ``value`` break ``constraint``: count, positions and values.

    Example::

        >>> from torch.distributions import constraints
        >>> describe_violation(constraints.positive, torch.tensor([1.0, -2.0, 0.0]))
        'found 2 invalid values out of 3: -2.0 at index (1,), 0.0 at index (2,)'
    """
    value = torch.as_tensor(value).detach()
    ok = torch.as_tensor(constraint.check(value))
    bad = ~ok.bool()
    count, total = int(bad.sum()), bad.numel()
    if bad.dim() == 0:
        return f"found the invalid value {_show(value)}"
    where = bad.nonzero()[:limit].tolist()
    shown = ", ".join(f"{_show(value[tuple(idx)])} at index {tuple(idx)}" for idx in where)
    more = ", ..." if count > limit else ""
    noun = "value" if count == 1 else "values"
    return f"found {count} invalid {noun} out of {total}: {shown}{more}"


def _show(x: torch.Tensor) -> str:
    digits = {torch.float32: 7, torch.float16: 4, torch.bfloat16: 3}.get(x.dtype)

    def number(v):  # shortest form that identifies the value in its dtype
        return repr(float(f"{v:.{digits}g}")) if digits and isinstance(v, float) else repr(v)

    if x.numel() == 1:
        return number(x.item())
    if x.numel() <= 16:
        flat = x.reshape(-1).tolist()
        return f"[{', '.join(number(v) for v in flat)}]" + (
            f" (shape {tuple(x.shape)})" if x.dim() > 1 else ""
        )
    return f"<tensor of shape {tuple(x.shape)}, min {x.min().item()}, max {x.max().item()}>"


# --- checking parameters and values ---------------------------------------------------------

_UNSET = object()
_NOT_COMPUTED = object()
_ARG_PLANS = {}


def _is_lazy(cls, name) -> bool:
    return isinstance(inspect.getattr_static(cls, name, None), lazy_property)


def argument_plan(cls):
    """``(name, constraint, form, lazy)`` for each checked parameter of ``cls``, or None if
    its constraints depend on the instance (``arg_constraints`` is a property).

    Dependent constraints are skipped; ``form`` is :func:`constraint_form`'s answer;
    ``lazy`` says whether the parameter is computed on demand from another one (as
    ``probs`` from ``logits``), so that only the one given is checked. Computed once
    per class.

    Example::

        >>> import ember.distributions as dist
        >>> [(name, lazy) for name, _, _, lazy in argument_plan(dist.Bernoulli)]
        [('probs', True), ('logits', True)]
    """
    plan = _ARG_PLANS.get(cls, _NOT_COMPUTED)
    if plan is _NOT_COMPUTED:
        static = inspect.getattr_static(cls, "arg_constraints", None)
        plan = _plan_of(cls, static, lasting=True) if isinstance(static, dict) else None
        _ARG_PLANS[cls] = plan
    return plan


def _plan_of(cls, arg_constraints, lasting=False):
    return tuple(
        (name, c, parameter_form(name, constraint_form(c, lasting)), _is_lazy(cls, name))
        for name, c in arg_constraints.items()
        if not _tc.is_dependent(c)
    )


def parameter_form(name: str, form):
    """The range a parameter must lie in: ``form`` with infinite values excluded.

    A bounded parameter that is infinite (a scale or a rate of ``inf``) gives NaN
    draws and NaN log-densities, so it must be finite; the check costs nothing extra
    (the same one reduction). ``logits`` over categories (with event dims) may be
    ``-inf`` (an impossible category) but not ``+inf``; other logits must be finite.
    Any other real parameter (a location) is only checked for NaN, as torch does: an
    infinite location gives infinite, not NaN, log-densities at finite values, and
    excluding it would cost a reduction where NaN costs one comparison. Non-range
    constraints are unchanged.

    Example::

        >>> from torch.distributions import constraints
        >>> parameter_form("rate", constraint_form(constraints.positive))[:4]
        (0.0, True, inf, True)
    """
    if form is None or form[4] or (form[7] and "logits" not in name):
        return form  # a real parameter: only NaN is refused (one comparison, no reduction)
    lower, lower_strict, upper, upper_strict, integer, min_dim, exact, _ = form
    if "logits" in name and min_dim:
        pass  # (-inf: an impossible category, normalized away)
    elif lower is None or lower == -math.inf:
        lower, lower_strict = -math.inf, True
    if upper is None or upper == math.inf:
        upper, upper_strict = math.inf, True
    return (lower, lower_strict, upper, upper_strict, integer, min_dim, exact, False)


def check_parameters(dist) -> None:
    """Raise a ValueError naming the first parameter of ``dist`` that breaks its constraint.

    Checks what torch checks (every ``arg_constraints`` entry that is not
    dependent and, for lazily computed parameters such as ``probs``/``logits``,
    only the one given), with the same answer, at a fraction of the cost.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.Normal(torch.zeros(3), 1.0, validate_args=False)
        >>> d.scale = torch.tensor([1.0, float("nan"), 2.0])
        >>> check_parameters(d)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Expected parameter scale (Tensor of shape (3,)) ... nan at index (1,)...
    """
    cls = type(dist)
    plan = _ARG_PLANS.get(cls, _NOT_COMPUTED)  # (argument_plan, inlined: a hot path)
    if plan is _NOT_COMPUTED:
        plan = argument_plan(cls)
    if plan is None:
        plan = _plan_of(cls, dist.arg_constraints)
    _check_plan(cls, plan, dist.__dict__, dist)


def check_arguments(cls, params: dict, dtype=None) -> None:
    """Raise a ValueError naming the parameter in ``params`` that breaks ``cls``'s constraint.

    Like :func:`check_parameters`, for parameters given to a constructor rather
    than stored on an instance: ``params`` maps names of ``cls.arg_constraints``
    to tensors or Python numbers (the latter as stored with ``dtype``); None
    entries and names without a constraint are skipped.

    Example::

        >>> import ember.distributions as dist
        >>> check_arguments(dist.Gamma, {"concentration": 2.0, "rate": -1.0})
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Expected parameter rate (the Python number -1.0, ...) of distribution Gamma...
    """
    plan = _ARG_PLANS.get(cls, _NOT_COMPUTED)  # (argument_plan, inlined: a hot path)
    if plan is _NOT_COMPUTED:
        plan = argument_plan(cls)
    if plan is None:  # constraints that depend on the instance: not for raw parameters
        raise TypeError(
            f"{cls.__name__}.arg_constraints depends on the instance; check a built "
            "instance with check_parameters instead"
        )
    _check_plan(cls, plan, params, None, dtype)


def _check_plan(cls, plan, values, dist=None, dtype=None):
    """Check the parameters in ``values`` (a dict) against ``plan``; raise for the first
    bad one. A parameter missing from ``values`` is skipped, or, if ``dist`` is given and
    the parameter is not lazily derived from another one, read from ``dist``."""
    pending = None
    for name, constraint, form, lazy in plan:
        value = values.get(name)
        if value is None:
            if dist is None or lazy:
                continue  # not given (lazy: derived from the parameter that was)
            value = getattr(dist, name)
        if isinstance(value, torch.Tensor) and value.numel() == 0:
            check_event_size(cls.__name__, name, value, constraint)
        try:
            decided = decide(constraint, value, form, dtype)
        except TypeError as err:
            raise TypeError(f"parameter {name} of distribution {cls.__name__}: {err}") from None
        if decided is True:
            continue
        if decided is False:
            raise parameter_error(cls.__name__, name, value, constraint, dtype)
        if pending is None:
            pending = []
        pending.append(((name, value, constraint, dtype), decided))
    if pending is not None:
        bad = read_pending(pending)
        if bad is not None:
            raise parameter_error(cls.__name__, *bad)


def check_event_size(dist_name: str, name: str, value: torch.Tensor, constraint) -> None:
    """Raise a ValueError if the tensor ``value`` of parameter ``name`` has no entries along
    the event dims its ``constraint`` gives it (``probs`` of shape ``(0,)``: no categories).

    An empty *batch* (``probs`` of shape ``(0, 3)``) is allowed.

    Example::

        >>> from torch.distributions import constraints
        >>> check_event_size("Categorical", "probs", torch.zeros(0), constraints.simplex)
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Categorical: parameter probs has shape (0,), with size 0 in its event dim...
    """
    event_dim = getattr(constraint, "event_dim", 0)
    if not event_dim:
        return
    event_shape = value.shape[value.dim() - event_dim :] if value.dim() >= event_dim else ()
    if len(event_shape) < event_dim or 0 in event_shape:
        raise ValueError(
            f"{dist_name}: parameter {name} has shape {tuple(value.shape)}, with size 0 in its "
            f"event dim(s) (the rightmost {event_dim}), so the distribution has nothing to "
            f"draw from; hint: {name} needs at least one entry along each event dim, e.g. "
            "shape (k,) with k >= 1 for k categories"
        )


def parameter_error(dist_name: str, name: str, value, constraint, dtype=None) -> ValueError:
    """The ValueError for parameter ``name`` of ``dist_name`` breaking ``constraint``.

    ``value`` is the tensor, or the Python number given (stored with ``dtype``).

    Example::

        >>> from torch.distributions import constraints
        >>> print(parameter_error("Normal", "scale", -1.0, constraints.positive))
        ... # doctest: +ELLIPSIS
        Expected parameter scale (the Python number -1.0, stored as -1.0) of distribution ...
    """
    if isinstance(value, torch.Tensor):
        what = f"Tensor of shape {tuple(value.shape)}"
    else:
        what = f"the Python number {value!r}"
        value = torch.as_tensor(value, dtype=dtype)
        what += f", stored as {value.item()!r}" if value.numel() == 1 else ""
    detail = None
    if value.is_floating_point():
        x = value.detach()
        keep_minus_inf = "logits" in name and getattr(constraint, "event_dim", 0)
        infinite = x == math.inf if keep_minus_inf else torch.isinf(x)
        if infinite.any() and bool(constraint.check(x).all()):
            # (an error path: the extra ops cost nothing on valid input)
            where = tuple(int(i) for i in infinite.nonzero()[0]) if x.dim() else ()
            entry = x[where].item() if where else x.item()
            detail = (
                f"found the infinite value {entry}"
                + (f" at index {where}" if where else "")
                + "; a parameter must be finite"
            )
    if detail is None:
        detail = describe_violation(constraint, value)
    return ValueError(
        f"Expected parameter {name} ({what}) of distribution {dist_name} to satisfy the "
        f"constraint {constraint!r}, but {detail}."
        f"\nhint: check how {name} is computed; a learned parameter stays valid when declared "
        f"with ember.param(..., constraint={_constraint_name(constraint)})"
    )


def _constraint_name(constraint) -> str:
    for name, obj in vars(_tc).items():
        if obj is constraint and not name.startswith("_"):
            return f"constraints.{name}"
    return repr(constraint)


def check_value(dist, value) -> None:
    """Raise a ValueError unless ``value`` fits ``dist``'s shapes and lies in its support.

    Example::

        >>> import torch, ember.distributions as dist
        >>> check_value(dist.Exponential(torch.ones(2)), torch.tensor([0.5, -1.0]))
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Expected value argument (Tensor of shape (2,)) ... -1.0 at index (1,)...
    """
    name = type(dist).__name__
    if not isinstance(value, torch.Tensor):
        raise ValueError(
            f"The value argument to {name}.log_prob must be a Tensor, got "
            f"{type(value).__name__}; hint: convert it with torch.as_tensor(value)"
        )
    event_shape, batch_shape = dist.event_shape, dist.batch_shape
    shape = value.shape
    n = len(event_shape)
    if n and shape[len(shape) - n :] != event_shape:
        raise ValueError(
            f"The rightmost dims of the value (shape {tuple(shape)}) given to {name}.log_prob "
            f"must match its event_shape {tuple(event_shape)}; hint: the value needs shape "
            f"sample_shape + batch_shape + event_shape = (...) + {tuple(batch_shape)} + "
            f"{tuple(event_shape)}"
        )
    expected = batch_shape + event_shape
    for i, j in zip(reversed(shape), reversed(expected)):
        if i != 1 and j != 1 and i != j:
            raise ValueError(
                f"The value (shape {tuple(shape)}) given to {name}.log_prob does not broadcast "
                f"with batch_shape + event_shape = {tuple(expected)}; hint: sizes must be "
                "equal or 1, aligned from the right"
            )
    try:
        support = dist.support
    except NotImplementedError:
        warnings.warn(
            f"{type(dist)} does not define `support`, so values cannot be validated; "
            "construct it with validate_args=False to silence this warning",
            stacklevel=3,
        )
        return
    decided = decide(support, value)
    if decided is not True and (decided is False or not bool(decided)):
        raise ValueError(
            f"Expected value argument (Tensor of shape {tuple(shape)}) of {name}.log_prob "
            f"to lie in the support {support!r}, but {describe_violation(support, value)}."
            "\nhint: values outside the support have probability zero; check the data given "
            "as obs= (or to log_prob), or mask such entries out"
        )


# --- fast validation of a class --------------------------------------------------------------


class _ValidateArgs:
    """The ``_validate_args`` flag of a class with fast validation.

    Reads like torch's attribute (the instance's value, else the global
    default), except inside torch's ``Distribution.__init__`` (``_batch_shape``
    already set, the mixin's ``__init__`` not yet run), where it reads False:
    torch then skips its own parameter check and the mixin runs ember's.
    """

    # torch offers no getter for its global default (set by
    # Distribution.set_default_validate_args): it is the class attribute itself.

    def __get__(self, obj, owner=None):
        if obj is None:
            return _TorchBase._validate_args
        d = obj.__dict__
        value = d.get("_validate_args", _UNSET)
        if "_ember_constructed" not in d and "_batch_shape" in d:
            return False
        return _TorchBase._validate_args if value is _UNSET else value

    def __set__(self, obj, value):
        obj.__dict__["_validate_args"] = value


def enable_fast_validation(cls):
    """Give the torch-derived distribution class ``cls`` ember's fast validation; returns ``cls``.

    Parameters are then checked by :func:`check_parameters`, values given to
    ``log_prob`` by :func:`check_value` (skipped for a tensor the instance drew
    itself with ``sample``/``rsample`` and did not change since). Subclasses
    inherit the behaviour. Which checks run is unchanged: ``validate_args=``
    and :func:`ember.enable_validation` decide, as for torch. Applying it twice
    changes nothing.

    Example::

        >>> import torch
        >>> from ember.distributions.torch_distribution import TorchDistributionMixin
        >>> @enable_fast_validation
        ... class Exp(torch.distributions.Exponential, TorchDistributionMixin):
        ...     pass
        >>> Exp(torch.tensor([1.0, -2.0]))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Expected parameter rate (Tensor of shape (2,)) ... Exp ... at index (1,)...
    """
    if "_validate_args" not in cls.__dict__:  # (Independent delegates the flag to its base)
        cls._validate_args = _ValidateArgs()
    cls._ember_fast_validation = True
    if "_validate_sample" not in cls.__dict__:
        cls._validate_sample = _validate_sample
    for name in ("sample", "rsample"):
        method = getattr(cls, name, None)
        if inspect.isfunction(method) and not getattr(method, "_ember_records_draws", False):
            setattr(cls, name, _recording(method))
    cls._ember_remembers_draws = _remembers_draws(cls)
    return cls


def _remembers_draws(cls) -> bool:
    """Whether draws of ``cls`` may be worth remembering (see :func:`remember_valid`).

    False when the class's support is a range constraint set on the class: deciding
    it takes one reduction, so copying and comparing draws would cost more. Not
    remembering is always safe (``log_prob`` then checks), so a support an instance
    replaces later needs no care here.
    """
    support = inspect.getattr_static(cls, "support", None)
    return not (isinstance(support, _tc.Constraint) and constraint_form(support) is not None)


def record_draws(cls) -> None:
    """Wrap the ``sample``/``rsample`` that ``cls`` defines itself so that their results
    count as valid (see :func:`remember_valid`).

    :class:`~ember.distributions.torch_distribution.TorchDistributionMixin` calls it
    for every subclass of a class with fast validation.
    """
    for name in ("sample", "rsample"):
        method = cls.__dict__.get(name)
        if inspect.isfunction(method) and not getattr(method, "_ember_records_draws", False):
            setattr(cls, name, _recording(method))
    cls._ember_remembers_draws = _remembers_draws(cls)


def _recording(method):
    params = list(inspect.signature(method).parameters.values())
    if [p.name for p in params] == ["self", "sample_shape"]:  # the usual signature: fast call
        default = params[1].default

        def draw(self, sample_shape=default):
            x = method(self, sample_shape)
            if self._ember_remembers_draws:
                remember_valid(self, x)
            return x

    else:

        def draw(self, *args, **kwargs):
            x = method(self, *args, **kwargs)
            if self._ember_remembers_draws:
                remember_valid(self, x)
            return x

    draw = functools.wraps(method)(draw)
    draw._ember_records_draws = True
    return draw


_weak = weakref.ref


#: Draws with more entries than this are not remembered (their values would be copied):
#: their ``log_prob`` checks the support like any other value.
MAX_REMEMBERED_DRAW = 1 << 20


def remember_valid(dist, x) -> None:
    """Note that tensor ``x`` (as it is now) lies in ``dist``'s support.

    ``dist.log_prob(x)`` then skips the support check while ``x`` is the same tensor
    holding the same values. Neither the version counter nor the storage address
    proves that: writes through ``x.data``, ``x.numpy()`` or another alias of the
    memory change the values without bumping the counter. So a copy of the values
    is kept and compared exactly (``torch.equal``, one pass over memory); any
    difference, or a NaN, means a full check. That pays only where the support
    check costs more than the copy and the comparison: nothing is remembered for a
    support that is a range (one reduction decides it, see :func:`decide`), for a
    single entry, when ``dist`` does not validate, for anything that is not a
    tensor, or for draws above :data:`MAX_REMEMBERED_DRAW` entries.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.Gamma(2.0, 1.0)
        >>> x = d.sample((3,))
        >>> _ = x.data.fill_(-1.0)  # bypasses the version counter
        >>> d.log_prob(x)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Expected value argument (Tensor of shape (3,)) of Gamma.log_prob ...
    """
    try:
        n = x.numel()
        if n <= 1 or n > MAX_REMEMBERED_DRAW or x.is_meta or not dist._validate_args:
            return
        if constraint_form(dist.support) is not None:
            return  # one reduction decides a range: cheaper than copying and comparing
        # (a tensor's version counter has no public accessor but ``_version``)
        dist.__dict__["_ember_known_valid"] = (_weak(x), x._version, x.detach().clone())
    except (TypeError, AttributeError, RuntimeError):
        pass  # not a tensor, or an inference tensor (no version counter)


def _still_drawn(known, value) -> bool:
    """Whether ``value`` is the remembered draw and still holds exactly its values."""
    if known[0]() is not value or known[1] != value._version:
        return False
    copy = known[2]
    return (
        value.dtype == copy.dtype
        and value.shape == copy.shape
        and value.device == copy.device
        and torch.equal(value.detach(), copy)
    )


def _validate_sample(self, value):
    """Check ``value`` against the shapes and the support, unless this instance drew it
    and it still holds the drawn values (see :func:`remember_valid`)."""
    known = self.__dict__.get("_ember_known_valid")
    if known is not None and _still_drawn(known, value):
        return
    check_value(self, value)


# --- constructors and expand of the wrappers ------------------------------------------------

_NUMBER = (int, float)  # what torch's constructors treat as a Python number


def is_validating(validate_args) -> bool:
    """Whether a distribution built with ``validate_args`` checks itself (None: the default).

    Example::

        >>> is_validating(False), is_validating(None)
        (False, True)
    """
    if validate_args is not None:
        return bool(validate_args)
    return _TorchBase._validate_args


def finish_init(dist, validate_args, params=None, dtype=None) -> None:
    """End a constructor that built ``dist`` with torch's checks off: give it the
    ``validate_args`` flag torch would have, then, if it validates, check once.

    ``params`` (a dict of the raw arguments, Python numbers stored with ``dtype``)
    are checked with :func:`check_arguments`; without them, the stored
    attributes with :func:`check_parameters`. Either way the error names
    ``type(dist)`` and its own parameter.
    """
    if validate_args is None:
        dist.__dict__.pop("_validate_args", None)  # follow the global default
    else:
        dist._validate_args = validate_args
    if dist._validate_args:
        if params is None:
            check_parameters(dist)
        else:
            check_arguments(type(dist), params, dtype)


def broadcast_init(dist, validate_args, names, *values) -> None:
    """torch's constructor for the classes that broadcast their parameters and take the
    batch shape from them (``Normal``, ``Gamma``, ...), cheaper.

    ``values`` (tensors or Python numbers) are stored broadcast under ``names`` (torch's
    order); the event shape is empty. Python numbers are checked as numbers, not as
    tensors.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.Gamma.__new__(dist.Gamma)
        >>> broadcast_init(d, None, ("concentration", "rate"), torch.ones(3), 2.0)
        >>> d.batch_shape, d.rate
        (torch.Size([3]), tensor([2., 2., 2.]))
    """
    if len(values) == 2 and type(values[1]) in _NUMBER and isinstance(values[0], torch.Tensor):
        tensors = (values[0], number_like(values[1], values[0]))  # the usual call
    else:
        try:
            tensors = broadcast_params(*values)
        except ValueError as err:
            raise type(err)(f"{type(dist).__name__}({', '.join(names)}): {err}") from None
    for name, tensor in zip(names, tensors):
        setattr(dist, name, tensor)
    first = tensors[0]
    numbers_only = True
    for v in values:
        if not isinstance(v, _NUMBER):
            numbers_only = False
            break
    batch_shape = _EMPTY if numbers_only else first.shape
    _TorchBase.__init__(dist, batch_shape, validate_args=False)
    if validate_args is None:  # (finish_init, inlined: this runs at every sample site)
        dist.__dict__.pop("_validate_args", None)
    else:
        dist._validate_args = validate_args
    if dist._validate_args:
        raw = {}
        for name, v, t in zip(names, values, tensors):
            raw[name] = v if type(v) in _NUMBER else t
        check_arguments(type(dist), raw, first.dtype)


def construct_quietly(dist, torch_cls, params: dict, validate_args, *args, **kwargs) -> None:
    """Run ``torch_cls.__init__(dist, *args, **kwargs)`` with torch's checks off, then
    :func:`finish_init` (the stored parameters checked once, naming ``type(dist)``).

    Distributions that torch builds inside (a base distribution, a Dirichlet
    inside a Beta, ...) are built unchecked: their parameters derive from this
    class's, which are checked, and the values they score were checked by this
    class already. If torch's constructor fails on an invalid value, the
    ValueError names the parameter of ``type(dist)`` at fault (from the raw
    ``params``).
    """
    try:
        torch_cls.__init__(dist, *args, validate_args=False, **kwargs)
    except (ValueError, RuntimeError) as err:
        if is_validating(validate_args):
            check_arguments(type(dist), params)
        if is_broadcast_failure(err):
            raise parameter_shape_error(type(dist).__name__, params) from None
        raise
    finish_init(dist, validate_args)


def quiet_init(torch_cls, tensor_args=()):
    """An ``__init__`` with ``torch_cls``'s signature that runs :func:`construct_quietly`.

    Parameters named in ``tensor_args`` that are given as Python numbers become
    tensors with the dtype and device of the first tensor argument (torch keeps
    them as numbers, and ember checks them like the other parameters).

    Example::

        >>> import torch
        >>> from ember.distributions.torch_distribution import TorchDistributionMixin
        >>> class StudentT(torch.distributions.StudentT, TorchDistributionMixin):
        ...     __init__ = quiet_init(torch.distributions.StudentT)
        >>> StudentT(torch.tensor(-1.0))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Expected parameter df (Tensor of shape ()) of distribution StudentT ...
    """
    signature = inspect.signature(torch_cls.__init__)
    names = [n for n in signature.parameters if n not in ("self", "validate_args")]
    tensor_args = tuple(tensor_args)

    def __init__(self, *args, validate_args=None, **kwargs):
        if len(args) > len(names):  # validate_args given by position
            if len(args) > len(names) + 1:
                raise TypeError(
                    f"{type(self).__name__}() takes {len(names) + 1} positional arguments "
                    f"({', '.join(names)}, validate_args) but {len(args)} were given"
                )
            args, validate_args = args[: len(names)], args[len(names)]
        params = dict(zip(names, args), **kwargs)
        if tensor_args:
            like = [v for v in params.values() if isinstance(v, torch.Tensor)]
            for name in tensor_args:
                value = params.get(name)
                if value is not None and not isinstance(value, torch.Tensor):
                    params[name] = (
                        torch.as_tensor(value, dtype=like[0].dtype, device=like[0].device)
                        if like
                        else torch.as_tensor(value, dtype=torch.get_default_dtype())
                    )
            args, kwargs = (), params
        construct_quietly(self, torch_cls, params, validate_args, *args, **kwargs)

    __init__.__signature__ = signature
    __init__.__doc__ = torch_cls.__init__.__doc__
    return __init__


def wrapper_expand(torch_cls, keep=()):
    """An ``expand`` method that runs ``torch_cls.expand`` for a subclass with its own
    constructor (torch's refuses to guess how to build one).

    The new instance is made without calling ``__init__``; torch's ``expand``
    sets its parameters, and the attributes named in ``keep`` (state the
    subclass's constructor adds) are copied over.

    Example::

        >>> import torch
        >>> from ember.distributions.torch_distribution import TorchDistributionMixin
        >>> class Exp(torch.distributions.Exponential, TorchDistributionMixin):
        ...     def __init__(self, rate, validate_args=None):
        ...         super().__init__(rate, validate_args=validate_args)
        ...     expand = wrapper_expand(torch.distributions.Exponential)
        >>> type(Exp(torch.ones(2)).expand((3, 2))).__name__
        'Exp'
    """
    keep = tuple(keep)

    def expand(self, batch_shape, _instance=None):
        new = self.__new__(type(self)) if _instance is None else _instance
        new = torch_cls.expand(self, batch_shape, _instance=new)
        for name in keep:
            setattr(new, name, getattr(self, name))
        return new

    expand.__doc__ = torch_cls.expand.__doc__
    return expand


def fresh_instance(dist, cls, instance=None):
    """The new instance an ``expand`` of class ``cls`` fills: ``instance`` if given, else an
    uninitialized instance of ``type(dist)``.

    Raises NotImplementedError for a subclass of ``cls`` with its own
    constructor: ``cls.expand`` cannot know the state that constructor adds,
    so the subclass must implement ``expand`` itself.
    """
    if instance is not None:
        return instance
    if type(dist).__init__ is not cls.__init__:
        raise NotImplementedError(
            f"{type(dist).__name__} defines its own __init__, so it must also implement "
            f"expand (the expand of {cls.__name__} cannot build it)"
        )
    return dist.__new__(type(dist))


def finish_wrapper(cls, torch_cls):
    """Complete the ember wrapper ``cls`` of ``torch_cls``: fast validation and, when
    ``cls`` has a constructor of its own but no ``expand``, :func:`wrapper_expand`.

    Returns ``cls``; applying it twice changes nothing.
    """
    if cls.__init__ is not torch_cls.__init__ and "expand" not in cls.__dict__:
        cls.expand = wrapper_expand(torch_cls)
    return enable_fast_validation(cls)
