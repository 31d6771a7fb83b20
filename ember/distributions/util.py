"""Shape and arithmetic helpers for distributions: broadcasting with clear
errors, summing rightmost dims, scaling and masking log-densities, log-factorials,
and storing Python-number parameters as tensors.

The constraint checks behind argument validation live in
:mod:`ember.distributions.validation`."""

from __future__ import annotations

import copy
import functools
import gc
import math
import numbers
import types
import weakref
from typing import Sequence

import torch
from torch.distributions.utils import broadcast_all

from ember.util import (  # noqa: F401  (re-exported: Pyro users import them from here)
    enable_validation,
    is_validation_enabled,
    validation_enabled,
)


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

    ``dim = 0`` sums nothing, ``float("inf")`` sums every dim; a Python number
    is returned as it is.

    Example::

        >>> sum_rightmost(torch.ones(2, 3, 4), 2).shape
        torch.Size([2])
        >>> sum_rightmost(torch.ones(2, 3, 4), -1).shape
        torch.Size([2])
        >>> sum_rightmost(torch.ones(2, 3), float("inf"))
        tensor(6.)
    """
    if isinstance(value, numbers.Number):
        return value
    if dim < 0:
        dim += value.dim()
    if dim == 0:
        return value
    if dim >= value.dim():  # also ``float("inf")``: sum everything
        return value.sum()
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
                return _broadcast_all(values)
        elif type(v) is not float and type(v) is not int:
            return _broadcast_all(values)  # tensor-likes, bools, NumPy numbers: torch's path
    if first is None:
        dtype = torch.get_default_dtype()
        return tuple(torch.tensor(v, dtype=dtype) for v in values)
    return tuple(v if isinstance(v, torch.Tensor) else number_like(v, first) for v in values)


class ParameterShapeError(ValueError, RuntimeError):
    """Parameters of a distribution whose shapes do not broadcast to one batch shape.

    A ``ValueError`` (bad input), and a ``RuntimeError`` as torch raises there.
    """


def parameter_shape_error(owner: str, params: dict) -> ParameterShapeError:
    """The error for parameters ``{name: value}`` of ``owner`` (e.g. a distribution's
    class name) whose shapes do not broadcast to one batch shape.

    Example::

        >>> str(parameter_shape_error("Normal", {"loc": torch.zeros(2), "scale": 1.0}))[:44]
        'Normal: parameters of shapes loc: (2,), scal'
    """
    shapes = ", ".join(
        f"{k}: {tuple(v.shape) if isinstance(v, torch.Tensor) else ()}"
        for k, v in params.items()
        if v is not None
    )
    return ParameterShapeError(
        f"{owner}: parameters of shapes {shapes} do not broadcast to one batch shape (sizes "
        "must be equal or 1, aligned from the right). Hint: reshape or expand them first"
    )


def is_broadcast_failure(err: Exception) -> bool:
    """Whether ``err`` is the ``RuntimeError`` torch raises for shapes that do not broadcast."""
    return isinstance(err, RuntimeError) and "must match the size" in str(err)


def _broadcast_all(values):
    """torch's ``broadcast_all``, with a :class:`ParameterShapeError` naming the shapes when
    they do not broadcast (torch raises a ``RuntimeError`` from inside the broadcast)."""
    try:
        return broadcast_all(*values)
    except RuntimeError:
        shapes = ", ".join(
            str(tuple(v.shape)) if isinstance(v, torch.Tensor) else type(v).__name__ for v in values
        )
        raise ParameterShapeError(
            f"parameters of shapes {shapes} do not broadcast to one batch shape: sizes must "
            "be equal or 1, aligned from the right. Hint: reshape or expand them first"
        ) from None


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


# --- helpers for users and for tests of distributions ---------------------------------------


def logsumexp(tensor: torch.Tensor, dim=-1, keepdim: bool = False) -> torch.Tensor:
    """``log(sum(exp(tensor)))`` over ``dim``, computed stably (``torch.logsumexp``).

    ``dim`` defaults to the last dim. Where every entry is ``-inf`` the result
    is ``-inf`` (not NaN).

    Example::

        >>> logsumexp(torch.tensor([0.0, math.log(3.0)])).exp()
        tensor(4.)
        >>> logsumexp(torch.full((2,), -math.inf))
        tensor(-inf)
    """
    return torch.logsumexp(tensor, dim, keepdim=keepdim)


def sum_leftmost(value, dim):
    """Sum out the ``dim`` leftmost dims of ``value`` (all but ``-dim`` if negative).

    ``dim = 0`` sums nothing, ``float("inf")`` sums every dim; a Python number
    is returned as it is.

    Example::

        >>> sum_leftmost(torch.ones(2, 3, 4), 1).shape
        torch.Size([3, 4])
        >>> sum_leftmost(torch.ones(2, 3, 4), -1).shape
        torch.Size([4])
        >>> sum_leftmost(torch.ones(2, 3), float("inf"))
        tensor(6.)
    """
    if isinstance(value, numbers.Number):
        return value
    if dim < 0:
        dim += value.dim()
    if dim == 0:
        return value
    if dim >= value.dim():
        return value.sum()
    return value.reshape((-1,) + value.shape[int(dim) :]).sum(0)


def scalar_like(prototype: torch.Tensor, fill_value) -> torch.Tensor:
    """A 0-dim tensor holding ``fill_value`` with ``prototype``'s dtype and device.

    Example::

        >>> scalar_like(torch.zeros(3, dtype=torch.float64), 2)
        tensor(2., dtype=torch.float64)
    """
    return torch.tensor(fill_value, dtype=prototype.dtype, device=prototype.device)


def gather(value: torch.Tensor, index: torch.Tensor, dim: int) -> torch.Tensor:
    """Pick ``value`` along ``dim`` at ``index``, broadcasting the other dims.

    ``value`` and ``index`` are broadcast together; ``index`` must be constant
    along ``dim`` (its first slice there is used), and the result keeps ``dim``
    with size 1.

    Example::

        >>> value = torch.tensor([[10.0, 11.0, 12.0], [20.0, 21.0, 22.0]])
        >>> gather(value, torch.tensor([[2], [0]]), -1)
        tensor([[12.],
                [20.]])
    """
    value, index = torch.broadcast_tensors(value, index)
    index = index.narrow(dim, 0, 1)
    return value.gather(dim, index)


def copy_docs_from(source_class, full_text: bool = False):
    """Class decorator: give undocumented public attributes the docs of ``source_class``'s.

    Each public method or property of the decorated class that has no
    docstring gets one: a reference ``"See :meth:`module.Class.name`"`` to the
    source's attribute, or the source's full docstring when ``full_text`` is
    true (or when the source's docstring is itself such a reference).

    Example::

        >>> class Base:
        ...     def area(self):
        ...         "The area."
        >>> @copy_docs_from(Base, full_text=True)
        ... class Square(Base):
        ...     def area(self):
        ...         return 4
        >>> Square.area.__doc__
        'The area.'
    """

    def decorate(cls):
        for name in dir(cls):
            if name.startswith("_"):
                continue
            attr = getattr(cls, name)
            target = getattr(attr, "__func__", attr)
            source_doc = getattr(getattr(source_class, name, None), "__doc__", None)
            if not source_doc or getattr(target, "__doc__", None):
                continue
            if full_text or source_doc.startswith("See "):
                doc = source_doc
            else:
                doc = f"See :meth:`{source_class.__module__}.{source_class.__name__}.{name}`"
            if isinstance(target, property):  # a property's __doc__ is read-only: rebuild it
                setattr(cls, name, property(target.fget, target.fset, target.fdel, doc))
            else:
                try:
                    target.__doc__ = doc
                except (AttributeError, TypeError):  # builtins and slot wrappers
                    pass
        return cls

    return decorate


def weakmethod(fn):
    """Decorator: bind a method to its instance through a weak reference.

    Storing a bound method on its own instance (``self.callback =
    self._callback``) makes a reference cycle that only the garbage collector
    can free. Decorated methods bind weakly, so the instance is freed as soon
    as its last real reference goes; calling the method after that raises
    ``AttributeError``. Assigning the method to its own attribute name is
    allowed only with the method itself.

    Example::

        >>> import weakref
        >>> class Counter:
        ...     def __init__(self):
        ...         self.n = 0
        ...         self.callback = self.increment
        ...     @weakmethod
        ...     def increment(self, by=1):
        ...         self.n += by
        ...         return self.n
        >>> c = Counter()
        >>> c.callback(2)
        2
        >>> ref = weakref.ref(c)
        >>> del c
        >>> ref() is None
        True
    """

    def call(self_ref, *args, **kwargs):
        self = self_ref()
        if self is None:
            raise AttributeError(
                f"{fn.__name__}: the object this weak method was bound to has been "
                "garbage collected; keep a reference to the object while using its method"
            )
        return fn(self, *args, **kwargs)

    def bind(self):
        bound = functools.partial(call, weakref.ref(self))
        functools.update_wrapper(bound, fn)
        return bound

    def rebind(self, new):
        if not (
            isinstance(new, functools.partial)
            and new.func is call
            and len(new.args) == 1
            and new.args[0]() is self
        ):
            raise AttributeError(
                f"cannot assign to {fn.__name__}: it is a weak method of "
                f"{type(self).__name__}; assign the callable to another attribute name"
            )

    return property(bind, rebind, doc=fn.__doc__)


# Objects that copy.deepcopy returns as they are: nothing inside them is copied.
_ATOMIC_TYPES = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.CodeType,
    weakref.ref,
    property,
    str,
    bytes,
    numbers.Number,
    torch.dtype,
    torch.device,
    type(None),
)


def _tensors_and_modules(obj):
    """Every tensor and ``nn.Module`` reachable from ``obj`` the way deepcopy walks it."""
    tensors, modules, seen, stack = [], [], set(), [obj]
    while stack:
        x = stack.pop()
        if id(x) in seen or isinstance(x, _ATOMIC_TYPES):
            continue
        seen.add(id(x))
        if isinstance(x, torch.Tensor):
            tensors.append(x)
            continue
        if isinstance(x, torch.nn.Module):
            modules.append(x)
        stack.extend(gc.get_referents(x))
    return tensors, modules


def _deepcopy_mapping_tensors(obj, convert_tensor, convert_module=None):
    """``copy.deepcopy(obj)`` with each tensor replaced by ``convert_tensor(tensor)``.

    Tensors are not copied through their own ``__deepcopy__`` (which refuses
    non-leaf tensors): the deepcopy memo is seeded with their converted
    versions, so every reference to one tensor maps to one converted tensor.
    Modules get ``convert_module(module)`` in place first.
    """
    if convert_module is not None:
        _, modules = _tensors_and_modules(obj)
        for module in modules:
            convert_module(module)
    tensors, _ = _tensors_and_modules(obj)
    memo = {id(t): convert_tensor(t) for t in tensors}
    memo[id(memo)] = tensors  # keeps the originals alive while their ids are keys
    return copy.deepcopy(obj, memo)


def detach(obj):
    """A deep copy of ``obj`` with every tensor in it detached from the autograd graph.

    Works on any Python object: distributions (also expanded or transformed
    ones), transforms, containers, modules. Tensor data are shared, not
    copied; all else is copied as :func:`copy.deepcopy` copies it.

    Example::

        >>> import ember.distributions as dist
        >>> loc = torch.tensor(0.0, requires_grad=True)
        >>> d = detach(dist.Normal(loc, 1.0))
        >>> d.loc.requires_grad, type(d).__name__
        (False, 'Normal')
    """
    return _deepcopy_mapping_tensors(obj, torch.Tensor.detach)


def deep_to(obj, *args, **kwargs):
    """A deep copy of ``obj`` with ``.to(*args, **kwargs)`` applied to every tensor in it.

    Like :meth:`torch.Tensor.to` it makes new objects (distributions,
    containers, ...), so tensors that ``nn.Module.to`` would not reach, such as
    plain tensor attributes or the parameters of a distribution held by a
    module, are converted too. Modules are first converted in place with
    :meth:`torch.nn.Module.to` (as torch does), then copied. ``requires_grad``
    is kept. With no arguments the tensors are unchanged.

    Example::

        >>> import ember.distributions as dist
        >>> d = deep_to(dist.Normal(0.0, 1.0), torch.float64)
        >>> d.loc.dtype, d.sample().dtype
        (torch.float64, torch.float64)
    """

    def convert(t):
        return t.to(*args, **kwargs)

    def convert_module(m):
        m.to(*args, **kwargs)

    return _deepcopy_mapping_tensors(obj, convert, convert_module)
