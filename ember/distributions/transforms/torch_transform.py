"""Transforms that are also ``nn.Module`` objects, so their parameters can be trained.

A :class:`TransformModule` is a ``torch.distributions.transforms.Transform``
and a ``torch.nn.Module`` at once: its parameters show up in
``.parameters()`` and in ``ember.module``, and it plugs into
``TransformedDistribution`` like any torch transform.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.distributions import constraints
from torch.distributions.transforms import ComposeTransform, Transform


class InverseNotAvailableError(ValueError, KeyError):
    """Raised when a transform without a closed-form inverse is asked to invert a value
    it did not produce itself (nothing cached for it).

    It is a ``ValueError`` (scoring such a value is a usage error) and, for
    code written against Pyro, also a ``KeyError``.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import InverseNotAvailableError, planar
        >>> flow = planar(2)
        >>> y = flow(torch.zeros(2))
        >>> flow.inv(y) is not None  # produced by the flow: cached
        True
        >>> try:
        ...     flow.inv(torch.ones(2))
        ... except InverseNotAvailableError as e:
        ...     print(str(e)[:60])
        PlanarFlow cannot invert this value: the planar map x + u ta
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def inverse_not_available(transform: Transform, why: str) -> InverseNotAvailableError:
    """The error ``transform._inverse`` raises for a value it did not produce itself.

    For transforms without a closed-form inverse, whose only inverses are the
    cached ones; ``why`` names the map. The message says what can be inverted
    and what to use instead.
    """
    return InverseNotAvailableError(
        f"{type(transform).__name__} cannot invert this value: {why}. Only values that "
        "this transform itself produced in its most recent forward call can be inverted "
        "(they are cached, e.g. samples of a TransformedDistribution). To score "
        "arbitrary data, use the transform in the other direction (transform.inv) or "
        "an autoregressive flow whose inverse exists."
    )


def check_positive_int(owner: str, name: str, value) -> None:
    """Raise a ValueError unless ``value`` is a positive int (not a bool)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")


def check_last_dim(owner: str, x: torch.Tensor, dim: int | None) -> None:
    """Raise a ValueError unless ``x`` has shape ``(..., dim)`` (any last size if dim is None)."""
    if x.dim() < 1 or (dim is not None and x.shape[-1] != dim):
        raise ValueError(f"{owner}: input must have shape (..., {dim}), got {tuple(x.shape)}")


def without_caches(state: dict) -> dict:
    """Drop cached tensors from a transform's state: they may carry autograd graphs,
    which neither pickle nor deepcopy."""
    for key in list(state):
        if key.startswith("_cached"):
            state[key] = (None, None) if key == "_cached_x_y" else None
    return state


class TransformModule(Transform, torch.nn.Module):
    """A ``Transform`` that is also an ``nn.Module`` (its parameters are learnable).

    Subclasses define ``_call``, optionally ``_inverse``, and
    ``log_abs_det_jacobian``, and register parameters as for any module.

    Example::

        >>> import torch
        >>> from torch.distributions import constraints
        >>> from ember.distributions.transforms import TransformModule
        >>> class Shift(TransformModule):
        ...     domain = constraints.real
        ...     codomain = constraints.real
        ...     bijective = True
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.loc = torch.nn.Parameter(torch.tensor(1.0))
        ...     def _call(self, x):
        ...         return x + self.loc
        ...     def _inverse(self, y):
        ...         return y - self.loc
        ...     def log_abs_det_jacobian(self, x, y):
        ...         return torch.zeros_like(x)
        >>> shift = Shift()
        >>> [name for name, _ in shift.named_parameters()]
        ['loc']
        >>> shift.inv(shift(torch.tensor(2.0))).detach()
        tensor(2.)
    """

    # (No __init__ of its own: Transform.__init__ ends with super().__init__(), which runs
    # Module.__init__.)

    def __hash__(self) -> int:
        # Transform defines __eq__ as identity, which drops __hash__; modules must hash
        # (named_modules keeps a set of them).
        return object.__hash__(self)

    __repr__ = torch.nn.Module.__repr__

    def __getstate__(self):
        return without_caches(super().__getstate__())

    # The one-entry cache of ``Transform`` is keyed on the identity of x (or y).
    # A module's parameters change in place during training, so the cache also
    # records their version counters and is ignored once any of them moved on.
    def _param_versions(self):
        # (the module's own registered parameters: a subclass may override parameters())
        return tuple(p._version for p in torch.nn.Module.parameters(self))

    def __call__(self, x):
        return self._through_cache(x, self._call, forward=True)

    def _inv_call(self, y):
        return self._through_cache(y, self._inverse, forward=False)

    def _through_cache(self, value, fn, forward: bool):
        """``fn(value)``, or the cached answer when ``value`` is the cached input (forward)
        or output (inverse) and the parameters did not change since."""
        if self._cache_size == 0:
            return fn(value)
        x_old, y_old = self._cached_x_y
        versions = self._param_versions()
        if value is (x_old if forward else y_old) and versions == self.__dict__.get(
            "_cached_versions"
        ):
            return y_old if forward else x_old
        result = fn(value)
        self._cached_x_y = (value, result) if forward else (result, value)
        self._cached_versions = versions
        return result

    def _cache_is_fresh(self, x, y) -> bool:
        """Whether ``(x, y)`` is the cached pair and the parameters did not change since."""
        if self._cache_size == 0:
            return False
        x_old, y_old = self._cached_x_y
        return (
            x is x_old
            and y is y_old
            and self._param_versions() == self.__dict__.get("_cached_versions")
        )


class JointLogDetTransformModule(TransformModule):
    """Base class of a flow that computes ``y`` and ``log|det J|`` in one pass.

    Subclasses implement ``_transform(x) -> (y, log_abs_det_jacobian)``. The
    forward call keeps the log-determinant with its ``x``, and
    :meth:`log_abs_det_jacobian` returns it while ``(x, y)`` is still the cached
    pair and the parameters have not changed; otherwise it recomputes.
    """

    _cached_ladj = None

    def _call(self, x):
        y, ladj = self._transform(x)
        self._cached_ladj = x, ladj
        return y

    def log_abs_det_jacobian(self, x, y):
        cached = self._cached_ladj
        if cached is not None and cached[0] is x and self._cache_is_fresh(x, y):
            return cached[1]
        return self._transform(x)[1]


class ComposeTransformModule(ComposeTransform, torch.nn.ModuleList):
    """A ``ComposeTransform`` of transforms that is also an ``nn.ModuleList``.

    The parameters of every part that is a module are registered.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import ComposeTransformModule, planar
        >>> flow = ComposeTransformModule([planar(2), planar(2)])
        >>> len(list(flow.parameters()))
        6
    """

    def __init__(self, parts: Sequence[Transform], cache_size: int = 0) -> None:
        parts = list(parts)
        super().__init__(parts, cache_size=cache_size)
        for part in parts:
            if isinstance(part, torch.nn.Module):
                self.append(part)

    def __hash__(self) -> int:
        return object.__hash__(self)

    __repr__ = torch.nn.Module.__repr__

    def __getstate__(self):
        return without_caches(super().__getstate__())


class ConditionalTransformModule(torch.nn.Module):
    """A module that builds a transform for a given context: ``condition(context)``.

    Subclasses implement :meth:`condition`, returning a ``Transform`` whose
    parameters depend on ``context`` (and on this module's parameters).

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import conditional_affine_autoregressive
        >>> flow = conditional_affine_autoregressive(2, context_dim=3, hidden_dims=[8])
        >>> t = flow.condition(torch.randn(3))
        >>> t(torch.randn(5, 2)).shape
        torch.Size([5, 2])
    """

    def condition(self, context: torch.Tensor) -> Transform:
        """The transform for ``context``."""
        raise NotImplementedError  # abstract

    def __hash__(self) -> int:
        return object.__hash__(self)

    @property
    def inv(self) -> ConditionalTransformModule:
        """The conditional inverse: ``self.inv.condition(c)`` is ``self.condition(c).inv``
        (and ``self.inv.inv`` is ``self``).

        Example::

            >>> import torch
            >>> from ember.distributions.transforms import conditional_affine_autoregressive
            >>> flow = conditional_affine_autoregressive(2, context_dim=3, hidden_dims=[8])
            >>> c, y = torch.randn(3), torch.randn(2)
            >>> torch.allclose(flow.inv.condition(c)(y), flow.condition(c).inv(y))
            True
        """
        return _ConditionalInverse(self)


class _ConditionalInverse(ConditionalTransformModule):
    """The inverse of a conditional transform module (see ``ConditionalTransformModule.inv``)."""

    def __init__(self, transform: ConditionalTransformModule) -> None:
        super().__init__()
        self._forward = (transform,)  # a tuple: the inverse does not own its parameters

    @property
    def inv(self) -> ConditionalTransformModule:
        return self._forward[0]

    def condition(self, context: torch.Tensor) -> Transform:
        return self._forward[0].condition(context).inv


class ConditionedByNetwork(TransformModule):
    """Base class of a vector flow conditioned on one context, whose parameters are
    ``nn(context)`` (see :meth:`params`); what a conditional flow's ``condition``
    returns. Subclasses implement ``_call`` (and ``log_abs_det_jacobian``) from
    :meth:`params`. The result of one call is cached (``cache_size=1``).
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, nn: torch.nn.Module, context: torch.Tensor, input_dim: int) -> None:
        super().__init__(cache_size=1)
        if not isinstance(context, torch.Tensor):
            conditional = type(self).__name__.replace("Conditioned", "Conditional", 1)
            raise TypeError(
                f"{conditional}.condition: context must be a tensor, got {type(context).__name__}"
            )
        self.nn = nn
        self.context = context
        self.input_dim = input_dim

    def params(self):
        """The flow's parameters for the context: ``nn(context)``."""
        return self.nn(self.context)


class ConditionalByNetwork(ConditionalTransformModule):
    """Base class of a conditional vector flow whose parameters are ``nn(context)``:
    ``condition(context)`` returns ``conditioned(nn, context, input_dim)``, a
    :class:`ConditionedByNetwork` subclass. ``input_dim`` is read from the network's
    three ``param_dims`` at position ``input_dim_index`` (None for other networks;
    the conditioned flow then learns it from its input).
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    event_dim = 1
    #: the flow ``condition`` returns (set by each subclass)
    conditioned: type = ConditionedByNetwork
    #: which of the network's three outputs has the size of the flow's input
    input_dim_index: int = 0

    def __init__(self, nn: torch.nn.Module) -> None:
        super().__init__()
        self.nn = nn

    def condition(self, context: torch.Tensor) -> ConditionedByNetwork:
        """The flow for ``context``."""
        dims = getattr(self.nn, "param_dims", None)
        three = isinstance(dims, (list, tuple)) and len(dims) == 3
        input_dim = dims[self.input_dim_index] if three else None
        return self.conditioned(self.nn, context, input_dim)


def iterated(repeats: int, base_fn, *args, **kwargs) -> ComposeTransformModule:
    """``repeats`` independent transforms ``base_fn(*args, **kwargs)``, composed in order.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import iterated, planar
        >>> flow = iterated(3, planar, 2)
        >>> len(flow.parts), flow(torch.zeros(5, 2)).shape
        (3, torch.Size([5, 2]))
    """
    check_positive_int("iterated", "repeats", repeats)
    if not callable(base_fn):
        raise TypeError(
            f"iterated: base_fn must be a function building a transform (e.g. planar), "
            f"got {type(base_fn).__name__}"
        )
    return ComposeTransformModule([base_fn(*args, **kwargs) for _ in range(repeats)])
