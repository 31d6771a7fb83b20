"""Shape and arithmetic helpers for distributions: broadcasting with clear
errors, summing rightmost dims, scaling and masking log-densities, and the
fast constraint checks behind argument validation."""

from __future__ import annotations

import math
import numbers
import struct
from typing import Iterable, Sequence

import torch
from torch.distributions import constraints as _tc
from torch.distributions.utils import broadcast_all

from ember.util import is_validation_enabled  # noqa: F401  (re-exported for convenience)


def broadcast_shape(*shapes: Sequence[int], strict: bool = False) -> torch.Size:
    """The shape that ``shapes`` broadcast to, or a ``ValueError`` naming them.

    With ``strict=True`` size-1 dims do not stretch: every non-missing dim must
    match exactly.

    Example::

        >>> broadcast_shape((2, 1), (3,))
        torch.Size([2, 3])
    """
    reversed_shape = []
    for shape in shapes:
        for i, size in enumerate(reversed(shape)):
            if i >= len(reversed_shape):
                reversed_shape.append(size)
            elif reversed_shape[i] == 1 and not strict:
                reversed_shape[i] = size
            elif reversed_shape[i] != size and (size != 1 or strict):
                raise ValueError(
                    "shapes cannot be broadcast together: "
                    + ", ".join(str(tuple(s)) for s in shapes)
                    + f" (they disagree at dim {-i - 1})"
                )
    return torch.Size(reversed(reversed_shape))


def sum_rightmost(value, dim: int):
    """Sum out the ``dim`` rightmost dims of ``value`` (all but ``-dim`` if negative).

    Example::

        >>> sum_rightmost(torch.ones(2, 3, 4), 2).shape
        torch.Size([2])
    """
    if isinstance(value, numbers.Number):
        return value
    if dim < 0:
        dim += value.dim()
    if dim == 0:
        return value
    return value.reshape(value.shape[: value.dim() - dim] + (-1,)).sum(-1)


def is_identically_zero(x) -> bool:
    """True only for a Python number equal to zero (never inspects a tensor)."""
    return isinstance(x, numbers.Number) and x == 0


def is_identically_one(x) -> bool:
    """True only for a Python number equal to one (never inspects a tensor)."""
    return isinstance(x, numbers.Number) and x == 1


def scale_and_mask(tensor, scale=1.0, mask=None):
    """``tensor * scale`` with entries where ``mask`` is False set to exactly 0.

    Masked entries become zero even when they are NaN or infinite, so a missing
    observation cannot poison a sum. ``mask`` may be None, a bool or a bool
    tensor; ``scale`` a number or a tensor.
    """
    if is_identically_zero(tensor):
        return tensor
    if mask is None or mask is True:
        return tensor if is_identically_one(scale) else tensor * scale
    if mask is False:
        return torch.zeros_like(tensor) if isinstance(tensor, torch.Tensor) else 0.0
    if not isinstance(tensor, torch.Tensor):
        tensor = torch.as_tensor(tensor, dtype=torch.get_default_dtype(), device=mask.device)
    tensor = torch.where(mask, tensor, tensor.new_zeros(()))
    return tensor if is_identically_one(scale) else tensor * scale


def eye_like(value: torch.Tensor, m: int, n: int = None) -> torch.Tensor:
    """An ``m x n`` identity with ``value``'s dtype and device."""
    n = m if n is None else n
    return torch.eye(m, n, dtype=value.dtype, device=value.device)


def tensor_of(dist):
    """Some tensor attribute of ``dist`` (to take its dtype and device from)."""
    for name in getattr(dist, "arg_constraints", {}):
        value = dist.__dict__.get(name)
        if isinstance(value, torch.Tensor):
            return value
    base = getattr(dist, "base_dist", None)
    if base is not None:
        return tensor_of(base)
    return torch.zeros(())


_HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


def _stirling_shift(tol: float) -> int:
    """How many recursion steps make the shifted Stirling series accurate to ``tol``.

    With the ``1/(12 z)`` correction, Stirling's series for ``lgamma(z)`` errs by
    less than ``1/(360 z**3)``; three such terms for ``z >= m + 1`` stay below
    ``tol`` once ``(m + 1)**3 >= 1 / (120 tol)``.
    """
    return max(0, math.ceil((1.0 / (120.0 * tol)) ** (1.0 / 3.0)) - 1)


def log_factorial(x, tol: float = 0.0):
    """``log(x!) = lgamma(x + 1)``, exact when ``tol == 0``, else within ``tol``.

    The approximation shifts the argument up by ``m`` (chosen from ``tol``)
    with ``lgamma(z) = lgamma(z + m) - log(z (z+1) ... (z+m-1))`` and applies
    Stirling's series with one correction term at ``z + m``. When ``tol`` is
    so small that more than 8 shifts would be needed, ``lgamma`` is used.

    Example::

        >>> x = torch.tensor([0.0, 1.0, 10.0, 1e6])
        >>> bool(((log_factorial(x, tol=1e-3) - torch.lgamma(x + 1)).abs() < 1e-3).all())
        True
    """
    if tol <= 0:
        return torch.lgamma(x + 1)
    m = _stirling_shift(tol)
    if m > 8:
        return torch.lgamma(x + 1)
    z = x + 1
    shift = 0.0
    for j in range(m):
        shift = shift + torch.log(z + j)
    z = z + m
    return (z - 0.5) * torch.log(z) - z + _HALF_LOG_TWO_PI + 1 / (12 * z) - shift


def log_binomial(n, k, tol: float = 0.0):
    """``log(n choose k)``: exact if ``tol == 0``, else within ``tol`` (see :func:`log_factorial`).

    Example::

        >>> log_binomial(torch.tensor(5.0), torch.tensor(2.0)).exp().round()
        tensor(10.)
    """
    return log_factorial(n, tol) - log_factorial(k, tol) - log_factorial(n - k, tol)


# --- fast constraint checks -----------------------------------------------------------------
#
# Argument validation is on by default, so it must be cheap. torch decides
# ``constraint.check(value).all()`` with an elementwise kernel, a reduction and a host
# read per parameter. Here the common constraints (real, bounds, intervals, integer
# ranges, and ``independent`` versions of them) are decided from one reduction: ``min``
# and ``max`` propagate NaN, so ``lower < value.min()`` fails exactly when some entry is
# not above ``lower`` or is NaN; ``real`` is ``torch.equal(value, value)`` (NaN equals
# nothing). simplex, lower_cholesky and lower_triangular take two or three ops instead
# of seven to ten. A Python number, or a tensor holding a single distinct value (a number
# broadcast to the batch shape), is compared in Python. On accelerators every check of
# one call is combined into a single boolean read. The answer is always the one
# ``constraint.check(value).all()`` gives.

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


def _form_of(constraint, lasting: bool = False):
    """``(lower, lower_strict, upper, upper_strict, integer, min_dim, exact, real)`` or None.

    ``constraint`` (seen through ``independent``, which needs ``min_dim`` dims)
    must be a range with Python-number bounds; ``exact`` says whether the
    bounds are the same in every float dtype (small integers or infinities);
    ``real`` that the constraint is ``real`` (anything but NaN). ``lasting``
    constraints (module or class attributes) are remembered by identity; the
    ones built at each call (dependent supports) by their bounds.
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
        _form_of(_c, lasting=True)
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
    base = value._base
    if base is not None and base.numel() == 1 and base.storage_offset() == value.storage_offset():
        return base.item()
    return value.as_strided((), ()).item()


def decide(constraint, value, form=_MISS, dtype=None):
    """Whether ``value`` satisfies ``constraint`` everywhere: True/False, or off the CPU a
    0-dim bool tensor still to be read (so that several can be read at once).

    ``value`` is a tensor or a Python number (to be stored with ``dtype``, by
    default the default dtype); ``form`` is ``_form_of(constraint)`` when the
    caller has it at hand.
    """
    if isinstance(value, torch.Tensor):
        if not value.is_cpu:
            if value.is_meta:
                return True  # no values to check
            return constraint.check(value.detach()).all()
        if form is _MISS:
            form = _form_of(constraint)
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
            decided = _decide_simplex(value)
            if decided is not None:
                return decided
        if value.requires_grad:
            value = value.detach()
        return bool(constraint.check(value).all())
    if type(value) is float or type(value) is int:  # a Python number: no tensor at all
        dtype = torch.get_default_dtype() if dtype is None else dtype
        if form is _MISS:
            form = _form_of(constraint)
        x = _in_dtype(value, dtype)
        if form is not None and x is not None:
            return _within(x, x, form, dtype)
    return decide(constraint, torch.as_tensor(value, dtype=dtype), form)


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


def _decide_simplex(value):
    """simplex (entries >= 0, rows summing to 1 within 1e-6) from two reductions."""
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


def read_pending(pending) -> int | None:
    """Read the undecided ``(index, 0-dim bool tensor)`` pairs with one host read if possible;
    the index of the first False one, else None."""
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
    possible (see the notes above) and reads accelerator results once, all
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


def broadcast_params(*values):
    """Tensors of ``values`` (tensors or Python numbers) broadcast to one shape.

    Same values as ``torch.distributions.utils.broadcast_all`` (numbers take the
    dtype and device of the first tensor, else the default dtype), with less
    work: tensors that already share a shape are returned as they are, and a
    number becomes a tensor of that shape (see :func:`number_like`).

    Example::

        >>> loc, scale = broadcast_params(torch.zeros(3), 2.0)
        >>> scale
        tensor([2., 2., 2.])
    """
    first = None
    for v in values:
        if isinstance(v, torch.Tensor):
            if first is None:
                first = v
            elif v.shape != first.shape:
                return broadcast_all(*values)
        elif type(v) is not float and type(v) is not int:
            return broadcast_all(*values)  # tensor-likes, bools, NumPy numbers: torch's path
    if first is None:
        dtype = torch.get_default_dtype()
        return tuple(torch.tensor(v, dtype=dtype) for v in values)
    return tuple(v if isinstance(v, torch.Tensor) else number_like(v, first) for v in values)


_DENSE_NUMBERS = 4096  # up to this many entries, a number is stored densely


def number_like(x, like: torch.Tensor) -> torch.Tensor:
    """The Python number ``x`` as a tensor with the shape, dtype and device of ``like``.

    Small shapes are filled densely (one op, and arithmetic with a dense tensor
    is faster); large ones are an expanded view of one element (no memory).

    Example::

        >>> number_like(2.0, torch.zeros(2, 3, dtype=torch.float64))
        tensor([[2., 2., 2.],
                [2., 2., 2.]], dtype=torch.float64)
    """
    if like.numel() <= _DENSE_NUMBERS:
        return torch.full_like(like, x)
    return torch.scalar_tensor(x, dtype=like.dtype, device=like.device).expand_as(like)
