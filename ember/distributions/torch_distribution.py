"""Pyro-level behaviour for torch distributions: the mixin, the base class for
new distributions, and the wrappers that change another distribution's shape or
density: :class:`Independent`, :class:`MaskedDistribution`, :class:`ExpandedDistribution`.

Argument validation lives in :mod:`ember.distributions.validation`."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.distributions.kl import kl_divergence, register_kl

from ember.distributions.distribution import Distribution
from ember.distributions.score_parts import ScoreParts
from ember.distributions.util import broadcast_shape, scale_and_mask, tensor_of
from ember.distributions.validation import (
    check_parameters,
    enable_fast_validation,
    record_draws,
)
from ember.util import is_validation_enabled

_EMPTY = torch.Size()


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

    # Set on classes that use ember's fast validation (see validation.enable_fast_validation).
    _ember_fast_validation = False
    # Whether draws are remembered as valid (see validation.remember_valid).
    _ember_remembers_draws = True

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
            record_draws(cls)

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
        of an :class:`Independent` back into the batch shape. Moving dims of an
        :class:`Independent` gives one Independent of its base distribution.

        Example::

            >>> import torch, ember.distributions as dist
            >>> d = dist.Normal(torch.zeros(2, 3), 1.0).to_event(2)
            >>> d.batch_shape, d.event_shape
            (torch.Size([]), torch.Size([2, 3]))
            >>> d.to_event(-1).event_shape
            torch.Size([3])
        """
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
        base = self  # an Independent of an Independent is one Independent of the inner base
        while isinstance(base, torch.distributions.Independent) and (
            "_forced_has_rsample" not in base.__dict__
        ):
            n += base.reinterpreted_batch_ndims
            base = base.base_dist
        return Independent(base, n)

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


@enable_fast_validation
class Independent(torch.distributions.Independent, TorchDistributionMixin):
    """Reinterpret batch dims of ``base_distribution`` as event dims.

    Validation is delegated to the base distribution; ``has_rsample_(False)``
    forces score-function gradients for this instance only.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.Independent(dist.Normal(torch.zeros(2, 3), 1.0), 1)
        >>> d.batch_shape, d.event_shape
        (torch.Size([2]), torch.Size([3]))
    """

    has_rsample = _delegated_has_rsample

    # torch's Distribution protocol keeps the flag in ``_validate_args``; an Independent
    # has none of its own and reads and writes its base distribution's.
    @property
    def _validate_args(self):
        return self.base_dist._validate_args

    @_validate_args.setter
    def _validate_args(self, value):
        self.base_dist._validate_args = value

    def conjugate_update(self, other):
        """Conjugate update of the base, summing the normalizer over the event dims."""
        if not isinstance(other, torch.distributions.Independent) or (
            other.reinterpreted_batch_ndims != self.reinterpreted_batch_ndims
        ):
            raise ValueError(
                "Independent.conjugate_update needs another Independent with "
                f"reinterpreted_batch_ndims={self.reinterpreted_batch_ndims}, got {other!r}"
            )
        posterior, log_normalizer = self.base_dist.conjugate_update(other.base_dist)
        n = self.reinterpreted_batch_ndims
        log_normalizer = log_normalizer.reshape(
            log_normalizer.shape[: log_normalizer.dim() - n] + (-1,)
        ).sum(-1)
        return Independent(posterior, n), log_normalizer


class _OverBase(TorchDistribution):
    """A distribution made from ``self.base_dist``: it has no parameters of its own, and
    its support, enumerability and reparameterization are the base's."""

    arg_constraints = {}
    has_rsample = _delegated_has_rsample

    @property
    def has_enumerate_support(self):
        return self.base_dist.has_enumerate_support

    @property
    def support(self):
        return self.base_dist.support


class MaskedDistribution(_OverBase):
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
        if "_forced_has_rsample" in self.__dict__ or self._mask is False:
            # (mask False: zero log-density; the unused part is the number 0, as in Pyro)
            return Distribution.score_parts(self, value)
        if self._mask is True:
            return self.base_dist.score_parts(value)
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


class ExpandedDistribution(_OverBase):
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

    def __init__(self, base_dist, batch_shape=_EMPTY):
        self.base_dist = base_dist
        batch_shape = torch.Size(batch_shape)
        self._expanded_sizes, self._interstitial = _expansion_plan(base_dist, batch_shape)
        super().__init__(batch_shape, base_dist.event_shape, validate_args=False)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        if batch_shape == self.batch_shape:
            return self
        _expansion_plan(self, batch_shape)  # only this one's size-1 dims may grow
        return ExpandedDistribution(self.base_dist, batch_shape)

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
        values = values.reshape(n + (1,) * len(self.batch_shape) + self.event_shape)
        if expand:
            values = values.expand(n + self.batch_shape + self.event_shape)
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
    mask = _combine_masks(p._mask, q._mask)
    if mask is False:
        return 0.0  # as Pyro: the Python number zero, whatever the shapes
    return _kl_with_mask(p.base_dist, q.base_dist, mask)


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
