"""Pyro-level behaviour for torch distributions: the mixin, the base class for
new distributions, the masked and expanded wrappers, and fast argument validation."""

from __future__ import annotations

import functools
import inspect
import warnings
import weakref
from collections.abc import Callable

import torch
from torch.distributions import constraints
from torch.distributions.kl import kl_divergence, register_kl
from torch.distributions.utils import lazy_property

from ember.distributions.distribution import Distribution
from ember.distributions.score_parts import ScoreParts
from ember.distributions.util import (
    _form_of,
    broadcast_shape,
    decide,
    describe_violation,
    read_pending,
    scale_and_mask,
    tensor_of,
)
from ember.util import is_validation_enabled

_EMPTY = torch.Size()
_TorchBase = torch.distributions.Distribution


class TorchDistributionMixin(Distribution, Callable):
    """Mixin that gives a ``torch.distributions`` class ember's interface.

    Derived classes inherit first from a ``torch.distributions.Distribution``
    subclass, then from this mixin. New distributions should subclass
    :class:`TorchDistribution` instead.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.Normal(torch.zeros(2, 3), 1.0)
        >>> d.shape((5,))
        torch.Size([5, 2, 3])
        >>> d.to_event(1).event_shape
        torch.Size([3])
    """

    # Set on classes that use ember's fast validation (see enable_fast_validation).
    _ember_fast_validation = False

    def __init__(self, *args, **kwargs):
        # torch's Distribution.__init__ ends with super().__init__(), which lands here once
        # the parameters are set: ember checks them now, instead of torch.
        super().__init__(*args, **kwargs)
        if self._ember_fast_validation:
            self.__dict__["_ember_constructed"] = True
            if self._validate_args:
                check_parameters(self)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls._ember_fast_validation:  # a subclass of a class with fast validation
            _record_draws(cls)

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_ember_known_valid", None)  # a weak reference: not picklable, not needed
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self._ember_fast_validation:
            self.__dict__["_ember_constructed"] = True

    def __call__(self, sample_shape=_EMPTY):
        """Draw a sample: reparameterized (``rsample``) whenever possible."""
        if self.has_rsample:
            return self.rsample(sample_shape)
        return self.sample(sample_shape)

    @property
    def event_dim(self) -> int:
        """The number of event dims, ``len(self.event_shape)``."""
        return len(self.event_shape)

    def shape(self, sample_shape=_EMPTY) -> torch.Size:
        """The shape of samples: ``sample_shape + batch_shape + event_shape``."""
        return torch.Size(sample_shape) + self.batch_shape + self.event_shape

    @classmethod
    def infer_shapes(cls, **arg_shapes):
        """``(batch_shape, event_shape)`` from parameter shapes, without building tensors.

        The default handles distributions whose support is univariate; classes
        with event dims override it.

        Example::

            >>> import ember.distributions as dist
            >>> dist.Normal.infer_shapes(loc=(3, 1), scale=(4,))
            (torch.Size([3, 4]), torch.Size([]))
        """
        batch_shapes = []
        arg_constraints = cls.arg_constraints
        if not isinstance(arg_constraints, dict):  # a property: constraints depend on values
            arg_constraints = {name: None for name in arg_shapes}
        for name, shape in arg_shapes.items():
            if name not in arg_constraints:
                raise ValueError(
                    f"{cls.__name__}.infer_shapes: unknown parameter {name!r}; "
                    f"parameters are {sorted(arg_constraints)}"
                )
            event_dim = getattr(arg_constraints[name], "event_dim", 0)
            shape = torch.Size(shape)
            batch_shapes.append(shape[: len(shape) - event_dim])
        batch_shape = broadcast_shape(*batch_shapes)
        support_event_dim = getattr(cls.support, "event_dim", 0)
        if support_event_dim:
            raise NotImplementedError(  # abstract for multivariate classes
                f"{cls.__name__} has event dims; it must override infer_shapes"
            )
        return batch_shape, _EMPTY

    def expand(self, batch_shape, _instance=None) -> ExpandedDistribution:
        """Expand the batch shape to ``batch_shape`` (an :class:`ExpandedDistribution`)."""
        batch_shape = torch.Size(batch_shape)
        if batch_shape == self.batch_shape:
            return self
        return ExpandedDistribution(self, batch_shape)

    def expand_by(self, sample_shape) -> ExpandedDistribution:
        """Add ``sample_shape`` on the left of the batch shape.

        To grow interior size-1 batch dims use :meth:`expand` instead.
        """
        sample_shape = torch.Size(sample_shape)
        if not sample_shape:
            return self
        return self.expand(sample_shape + self.batch_shape)

    def to_event(self, reinterpreted_batch_ndims=None):
        """Move the ``n`` rightmost batch dims into the event shape.

        ``None`` moves all batch dims; a negative ``n`` moves ``-n`` event dims
        of an :class:`Independent` back into the batch shape.

        Example::

            >>> import torch, ember.distributions as dist
            >>> d = dist.Normal(torch.zeros(2, 3), 1.0).to_event(2)
            >>> d.batch_shape, d.event_shape
            (torch.Size([]), torch.Size([2, 3]))
            >>> d.to_event(-1).event_shape
            torch.Size([3])
        """
        from ember.distributions.torch import Independent

        n = (
            len(self.batch_shape)
            if reinterpreted_batch_ndims is None
            else reinterpreted_batch_ndims
        )
        if not isinstance(n, int):
            raise TypeError(f"to_event expects an int or None, got {n!r}")
        if n == 0:
            return self
        if n < 0:
            return _remove_event_dims(self, -n)
        if n > len(self.batch_shape):
            raise ValueError(
                f"to_event({n}) needs {n} batch dims but {type(self).__name__} has "
                f"batch_shape {tuple(self.batch_shape)} (event_shape "
                f"{tuple(self.event_shape)}); use at most to_event({len(self.batch_shape)}), "
                "or expand the distribution first"
            )
        return Independent(self, n)

    def mask(self, mask) -> MaskedDistribution:
        """Zero the log-density where ``mask`` is False (broadcast to the batch shape).

        Example::

            >>> import torch, ember.distributions as dist
            >>> d = dist.Normal(torch.zeros(3), 1.0).mask(torch.tensor([True, False, True]))
            >>> d.log_prob(torch.zeros(3))
            tensor([-0.9189,  0.0000, -0.9189])
        """
        return MaskedDistribution(self, mask)


def _remove_event_dims(d, n):
    from ember.distributions.torch import Independent

    if n > len(d.event_shape):
        raise ValueError(
            f"to_event({-n}) would remove {n} event dims but {type(d).__name__} has "
            f"event_shape {tuple(d.event_shape)}"
        )
    peeled = 0
    while peeled < n and isinstance(d, torch.distributions.Independent):
        take = min(n - peeled, d.reinterpreted_batch_ndims)
        keep = d.reinterpreted_batch_ndims - take
        d = d.base_dist if keep == 0 else Independent(d.base_dist, keep)
        peeled += take
    if peeled < n:
        raise ValueError(
            f"to_event({-n}): only {peeled} of the event dims were added by to_event; "
            f"the remaining event_shape {tuple(d.event_shape)} belongs to "
            f"{type(d).__name__} itself and cannot become batch dims"
        )
    return d


class TorchDistribution(torch.distributions.Distribution, TorchDistributionMixin):
    """Base class for new ember distributions: a torch Distribution with ember's interface.

    Implement ``sample`` (or ``rsample`` with ``has_rsample = True``) and
    ``log_prob``; declare ``arg_constraints`` and ``support``. ``expand``
    defaults to an :class:`ExpandedDistribution`.

    Example::

        >>> import torch
        >>> from torch.distributions import constraints
        >>> from ember.distributions import TorchDistribution
        >>> class Unit(TorchDistribution):
        ...     arg_constraints = {"loc": constraints.real}
        ...     support = constraints.real
        ...     has_rsample = True
        ...     def __init__(self, loc, validate_args=None):
        ...         self.loc = loc
        ...         super().__init__(loc.shape, validate_args=validate_args)
        ...     def rsample(self, sample_shape=torch.Size()):
        ...         return self.loc + torch.randn(self.shape(sample_shape))
        ...     def log_prob(self, x):
        ...         return -0.5 * (x - self.loc) ** 2 - 0.9189385332046727
        >>> Unit(torch.zeros(3)).expand((2, 3)).sample().shape
        torch.Size([2, 3])
    """

    def expand(self, batch_shape, _instance=None):
        return TorchDistributionMixin.expand(self, batch_shape, _instance)


def _base_has_rsample(self):
    forced = self.__dict__.get("_forced_has_rsample")
    return self.base_dist.has_rsample if forced is None else forced


def _force_has_rsample(self, value):  # used by has_rsample_(False)
    self._forced_has_rsample = value


# ``has_rsample`` of a wrapper: its ``base_dist``'s, unless has_rsample_(False) forced it.
_delegated_has_rsample = property(_base_has_rsample, _force_has_rsample)


class MaskedDistribution(TorchDistribution):
    """A distribution whose log-density is zero wherever ``mask`` is False.

    ``mask`` is a bool, or a bool tensor broadcastable to the base batch shape
    (the result takes the broadcast batch shape). A Python ``False`` skips
    computing the base log-density entirely. Sampling is unaffected.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.Normal(0.0, 1.0).mask(False)
        >>> d.log_prob(torch.tensor([float("nan"), 1.0]))
        tensor([0., 0.])
    """

    arg_constraints = {}

    def __init__(self, base_dist, mask):
        if isinstance(mask, bool):
            self._mask = mask
        else:
            if not isinstance(mask, torch.Tensor):
                raise TypeError(f"mask must be a bool or a bool tensor, got {type(mask).__name__}")
            if mask.dtype != torch.bool:
                if is_validation_enabled() and mask.is_floating_point():
                    bad = (mask != 0) & (mask != 1)
                    if bool(bad.any()):
                        raise ValueError(
                            "mask must be boolean (or 0/1 valued); got values "
                            f"{mask[bad].unique().tolist()[:5]}"
                        )
                mask = mask.bool()
            base_shape = base_dist.batch_shape
            try:
                batch_shape = broadcast_shape(mask.shape, base_shape)
            except ValueError:
                raise ValueError(
                    f"mask of shape {tuple(mask.shape)} does not broadcast to the batch_shape "
                    f"{tuple(base_shape)} of {type(base_dist).__name__}; give a mask whose "
                    "dims are 1 or equal to the batch dims, aligned from the right"
                ) from None
            if mask.shape != batch_shape:
                mask = mask.expand(batch_shape)
            if base_shape != batch_shape:
                base_dist = base_dist.expand(batch_shape)
            self._mask = mask
        self.base_dist = base_dist
        super().__init__(base_dist.batch_shape, base_dist.event_shape, validate_args=False)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        if batch_shape == self.batch_shape:
            return self
        mask = self._mask
        if isinstance(mask, torch.Tensor):
            mask = mask.expand(batch_shape)
        return MaskedDistribution(self.base_dist.expand(batch_shape), mask)

    has_rsample = _delegated_has_rsample

    @property
    def has_enumerate_support(self):
        return self.base_dist.has_enumerate_support

    @property
    def support(self):
        return self.base_dist.support

    def sample(self, sample_shape=_EMPTY):
        return self.base_dist.sample(sample_shape)

    def rsample(self, sample_shape=_EMPTY):
        return self.base_dist.rsample(sample_shape)

    def _zeros(self, value):
        shape = broadcast_shape(self.batch_shape, value.shape[: value.dim() - self.event_dim])
        return (
            value.new_zeros(()).expand(shape)
            if value.is_floating_point()
            else (
                torch.zeros((), dtype=torch.get_default_dtype(), device=value.device).expand(shape)
            )
        )

    def log_prob(self, value):
        if self._mask is False:
            return self._zeros(value)
        if self._mask is True:
            return self.base_dist.log_prob(value)
        return scale_and_mask(self.base_dist.log_prob(value), mask=self._mask)

    def score_parts(self, value):
        if "_forced_has_rsample" in self.__dict__:
            return Distribution.score_parts(self, value)
        if isinstance(self._mask, bool):
            if self._mask:
                return self.base_dist.score_parts(value)
            zero = self._zeros(value)
            return ScoreParts(zero, zero, zero)
        return self.base_dist.score_parts(value).scale_and_mask(mask=self._mask)

    def enumerate_support(self, expand=True):
        return self.base_dist.enumerate_support(expand=expand)

    @property
    def mean(self):
        return self.base_dist.mean

    @property
    def variance(self):
        return self.base_dist.variance

    def conjugate_update(self, other):
        posterior, log_normalizer = self.base_dist.conjugate_update(other)
        return posterior.mask(self._mask), scale_and_mask(log_normalizer, mask=self._mask)

    def __repr__(self):
        mask = self._mask if isinstance(self._mask, bool) else f"tensor{tuple(self._mask.shape)}"
        return f"MaskedDistribution({self.base_dist!r}, mask={mask})"


class ExpandedDistribution(TorchDistribution):
    """A distribution whose batch shape is grown to ``batch_shape``.

    New dims may be added on the left, and size-1 batch dims of the base may
    grow (interstitial dims); each new position gets its own independent draw.

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.distributions.torch_distribution import ExpandedDistribution
        >>> d = ExpandedDistribution(dist.Normal(torch.zeros(3, 1), 1.0), (2, 3, 4))
        >>> d.sample((5,)).shape
        torch.Size([5, 2, 3, 4])
    """

    arg_constraints = {}

    def __init__(self, base_dist, batch_shape=_EMPTY):
        self.base_dist = base_dist
        batch_shape = torch.Size(batch_shape)
        self._expanded_sizes, self._interstitial = _expansion_plan(base_dist, batch_shape)
        super().__init__(batch_shape, base_dist.event_shape, validate_args=False)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        if batch_shape == self.batch_shape:
            return self
        return ExpandedDistribution(self.base_dist, batch_shape)

    has_rsample = _delegated_has_rsample

    @property
    def has_enumerate_support(self):
        return self.base_dist.has_enumerate_support

    @property
    def support(self):
        return self.base_dist.support

    def _draw(self, sampler, sample_shape):
        sample_shape = torch.Size(sample_shape)
        inter_sizes = tuple(size for _, size in self._interstitial)
        x = sampler(sample_shape + self._expanded_sizes + inter_sizes)
        if inter_sizes:
            first = len(sample_shape) + len(self._expanded_sizes)
            base_start = first + len(inter_sizes)
            for k, (pos, _) in enumerate(self._interstitial):
                x = x.transpose(first + k, base_start + pos)
        return x.reshape(sample_shape + self.batch_shape + self.event_shape)

    def sample(self, sample_shape=_EMPTY):
        return self._draw(self.base_dist.sample, sample_shape)

    def rsample(self, sample_shape=_EMPTY):
        return self._draw(self.base_dist.rsample, sample_shape)

    def log_prob(self, value):
        shape = broadcast_shape(self.batch_shape, value.shape[: value.dim() - self.event_dim])
        return self.base_dist.log_prob(value).expand(shape)

    def score_parts(self, value):
        if "_forced_has_rsample" in self.__dict__:
            return Distribution.score_parts(self, value)
        shape = broadcast_shape(self.batch_shape, value.shape[: value.dim() - self.event_dim])
        parts = self.base_dist.score_parts(value)
        return ScoreParts(*(p if isinstance(p, (int, float)) else p.expand(shape) for p in parts))

    def enumerate_support(self, expand=True):
        values = self.base_dist.enumerate_support(expand=False)
        n = values.shape[:1]
        tag = getattr(values, "_ember_categorical_support", None)
        values = values.reshape(n + (1,) * len(self.batch_shape) + self.event_shape)
        if expand:
            values = values.expand(n + self.batch_shape + self.event_shape)
        if tag is not None:  # still an arange along dim 0: keep the base's fast log_prob
            values._ember_categorical_support = tag
        return values

    @property
    def mean(self):
        return self.base_dist.mean.expand(self.batch_shape + self.event_shape)

    @property
    def variance(self):
        return self.base_dist.variance.expand(self.batch_shape + self.event_shape)

    def entropy(self):
        return self.base_dist.entropy().expand(self.batch_shape)

    def __repr__(self):
        return f"ExpandedDistribution({self.base_dist!r}, batch_shape={tuple(self.batch_shape)})"


def _expansion_plan(base_dist, batch_shape):
    """Split an expansion into new leading sizes and grown size-1 positions."""
    old = base_dist.batch_shape
    if len(batch_shape) < len(old):
        raise ValueError(
            f"cannot expand {type(base_dist).__name__} with batch_shape {tuple(old)} to the "
            f"shorter batch_shape {tuple(batch_shape)}; expand only adds or grows dims"
        )
    offset = len(batch_shape) - len(old)
    interstitial = []
    for pos, (old_size, new_size) in enumerate(zip(old, batch_shape[offset:])):
        if old_size == new_size:
            continue
        if old_size != 1:
            raise ValueError(
                f"cannot expand {type(base_dist).__name__} with batch_shape {tuple(old)} to "
                f"{tuple(batch_shape)}: dim {pos - len(old)} has size {old_size}, which can "
                "only grow from 1"
            )
        interstitial.append((pos, new_size))
    return torch.Size(batch_shape[:offset]), tuple(interstitial)


def _combine_masks(p_mask, q_mask):
    if p_mask is False or q_mask is False:
        return False
    if p_mask is True:
        return q_mask
    if q_mask is True or p_mask is q_mask:
        return p_mask
    return p_mask & q_mask


def _kl_with_mask(p, q, mask):
    if mask is False:
        shape = broadcast_shape(p.batch_shape, q.batch_shape)
        like = tensor_of(p)
        return torch.zeros(shape, dtype=like.dtype, device=like.device)
    kl = kl_divergence(p, q)
    return kl if mask is True else scale_and_mask(kl, mask=mask)


@register_kl(MaskedDistribution, MaskedDistribution)
def _kl_masked_masked(p, q):
    return _kl_with_mask(p.base_dist, q.base_dist, _combine_masks(p._mask, q._mask))


@register_kl(MaskedDistribution, torch.distributions.Distribution)
def _kl_masked_any(p, q):
    return _kl_with_mask(p.base_dist, q, p._mask)


@register_kl(torch.distributions.Distribution, MaskedDistribution)
def _kl_any_masked(p, q):
    return _kl_with_mask(p, q.base_dist, q._mask)


@register_kl(ExpandedDistribution, ExpandedDistribution)
def _kl_expanded_expanded(p, q):
    shape = broadcast_shape(p.batch_shape, q.batch_shape)
    return kl_divergence(p.base_dist, q.base_dist).expand(shape)


@register_kl(ExpandedDistribution, torch.distributions.Distribution)
def _kl_expanded_any(p, q):
    shape = broadcast_shape(p.batch_shape, q.batch_shape)
    return kl_divergence(p.base_dist, q).expand(shape)


@register_kl(torch.distributions.Distribution, ExpandedDistribution)
def _kl_any_expanded(p, q):
    shape = broadcast_shape(p.batch_shape, q.batch_shape)
    return kl_divergence(p, q.base_dist).expand(shape)


# Explicit pairs, so torch's dispatcher never sees two equally specific rules.
@register_kl(MaskedDistribution, ExpandedDistribution)
def _kl_masked_expanded(p, q):
    return _kl_with_mask(p.base_dist, q, p._mask)


@register_kl(ExpandedDistribution, MaskedDistribution)
def _kl_expanded_masked(p, q):
    return _kl_with_mask(p, q.base_dist, q._mask)


# --- fast argument validation ---------------------------------------------------------------
#
# torch checks every parameter in Distribution.__init__ with an elementwise kernel, a
# reduction and a host read each, and checks every value given to log_prob the same way.
# Classes passed to enable_fast_validation (every wrapper in ember.distributions.torch)
# do the same checks through ember.distributions.util.decide instead: the common
# constraints cost one reduction (or nothing, for a broadcast Python number), all
# accelerator checks of a call share one host read, and the errors name the parameter,
# its shape and the offending entries. A tensor the distribution drew itself is in its
# support by construction, so log_prob does not check it again.

_UNSET = object()


class _ValidateArgs:
    """The ``_validate_args`` flag of a class with fast validation.

    Reads like torch's attribute (the instance's value, else the global
    default), except inside torch's ``Distribution.__init__`` (``_batch_shape``
    already set, the mixin's ``__init__`` not yet run), where it reads False:
    torch then skips its own parameter check and the mixin runs ember's.
    """

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
    and :func:`ember.enable_validation` decide, as for torch.

    Example::

        >>> import torch
        >>> from ember.distributions.torch_distribution import (
        ...     TorchDistributionMixin, enable_fast_validation)
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
    return cls


def _record_draws(cls):
    """Wrap the ``sample``/``rsample`` that ``cls`` defines itself: their results are valid."""
    for name in ("sample", "rsample"):
        method = cls.__dict__.get(name)
        if inspect.isfunction(method) and not getattr(method, "_ember_records_draws", False):
            setattr(cls, name, _recording(method))


def _recording(method):
    params = list(inspect.signature(method).parameters.values())
    if [p.name for p in params] == ["self", "sample_shape"]:  # the usual signature: fast call
        default = params[1].default

        def draw(self, sample_shape=default):
            x = method(self, sample_shape)
            _remember_valid(self, x)
            return x

    else:

        def draw(self, *args, **kwargs):
            x = method(self, *args, **kwargs)
            _remember_valid(self, x)
            return x

    draw = functools.wraps(method)(draw)
    draw._ember_records_draws = True
    return draw


_weak = weakref.ref


def _remember_valid(dist, x):
    """Note that tensor ``x`` (as it is now) lies in ``dist``'s support."""
    try:
        dist.__dict__["_ember_known_valid"] = (_weak(x), x._version)
    except (TypeError, AttributeError, RuntimeError):
        pass  # not a tensor, or an inference tensor (no version counter)


def _validate_sample(self, value):
    """Check ``value`` against the shapes and the support, unless this instance drew it."""
    known = self.__dict__.get("_ember_known_valid")
    if known is not None and known[0]() is value and known[1] == value._version:
        return  # drawn (or checked) by this instance and not changed since
    check_value(self, value)
    _remember_valid(self, value)


_NOT_COMPUTED = object()
_ARG_PLANS = {}


def _is_lazy(cls, name) -> bool:
    return isinstance(inspect.getattr_static(cls, name, None), lazy_property)


def _arg_plan(cls):
    """``(name, constraint, form, lazy)`` for each checked parameter of ``cls``, or None if
    its constraints depend on the instance (``arg_constraints`` is a property)."""
    plan = _ARG_PLANS.get(cls, _NOT_COMPUTED)
    if plan is _NOT_COMPUTED:
        static = inspect.getattr_static(cls, "arg_constraints", None)
        plan = _plan_of(cls, static, lasting=True) if isinstance(static, dict) else None
        _ARG_PLANS[cls] = plan
    return plan


def _plan_of(cls, arg_constraints, lasting=False):
    return tuple(
        (name, c, _form_of(c, lasting), _is_lazy(cls, name))
        for name, c in arg_constraints.items()
        if not constraints.is_dependent(c)
    )


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
    plan = _arg_plan(cls)
    if plan is None:
        plan = _plan_of(cls, dist.arg_constraints)
    d = dist.__dict__
    pending = None
    for name, constraint, form, lazy in plan:
        value = d.get(name, _UNSET)
        if value is _UNSET:
            if lazy:
                continue  # not given: derived from the parameter that was
            value = getattr(dist, name)
        decided = decide(constraint, value, form)
        if decided is True:
            continue
        if decided is False:
            raise parameter_error(cls.__name__, name, value, constraint)
        if pending is None:
            pending = []
        pending.append(((name, value, constraint), decided))
    if pending is not None:
        bad = read_pending(pending)
        if bad is not None:
            raise parameter_error(cls.__name__, *bad)


def parameter_error(dist_name: str, name: str, value, constraint, dtype=None) -> ValueError:
    """The ValueError for parameter ``name`` of ``dist_name`` breaking ``constraint``.

    ``value`` is the tensor, or the Python number given (stored with ``dtype``).
    """
    if isinstance(value, torch.Tensor):
        what = f"Tensor of shape {tuple(value.shape)}"
    else:
        what = f"the Python number {value!r}"
        value = torch.as_tensor(value, dtype=dtype)
        what += f", stored as {value.item()!r}" if value.numel() == 1 else ""
    return ValueError(
        f"Expected parameter {name} ({what}) of distribution {dist_name} to satisfy the "
        f"constraint {constraint!r}, but {describe_violation(constraint, value)}."
        f"\nhint: check how {name} is computed; a learned parameter stays valid when declared "
        f"with ember.param(..., constraint={_constraint_name(constraint)})"
    )


def _constraint_name(constraint) -> str:
    for name, obj in vars(constraints).items():
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
    event_shape, batch_shape = dist._event_shape, dist._batch_shape
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
