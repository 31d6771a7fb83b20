"""The language primitives: ``sample``, ``param``, ``plate``, ``module``, ``factor``, ...

Each primitive is a message sent through the handler stack
(:mod:`ember.poutine.runtime`); with no handler active, ``sample`` simply
draws from its distribution.
"""

from __future__ import annotations

import copy
import inspect
import warnings
from contextlib import ExitStack, contextmanager
from typing import Callable, Union

import torch
from torch.distributions import constraints

from ember.distributions.delta import Delta
from ember.distributions.unit import Unit
from ember.params.param_store import (
    MODULE_NAMESPACE_DIVIDER,
    get_param_store,
    param_with_module_name,
)
from ember.poutine.lift_messenger import LiftMessenger
from ember.poutine.mask_messenger import MaskMessenger
from ember.poutine.plate_messenger import PlateMessenger
from ember.poutine.runtime import (
    ACTIVE_HANDLER_THREADS,
    HANDLER_STACK,
    apply_stack,
    effectful,
    get_plates,
    new_message,
    warn_if_unseen_by_other_thread,
)
from ember.util import (
    enable_validation,
    is_poutine_validation_enabled,
    validation_enabled,
    warn_once,
)

__all__ = [
    "barrier",
    "clear_param_store",
    "deterministic",
    "enable_validation",
    "factor",
    "get_param_store",
    "get_plates",
    "iarange",
    "irange",
    "module",
    "observe",
    "param",
    "plate",
    "plate_stack",
    "random_module",
    "sample",
    "subsample",
    "validation_enabled",
]

_get_stack = HANDLER_STACK.get
_PYRO_PARAM_STORE = get_param_store()  # (read on every ember.param call)


def clear_param_store() -> None:
    """Remove every parameter from the global param store.

    Example::

        >>> import torch, ember
        >>> _ = ember.param("w", torch.zeros(1))
        >>> ember.clear_param_store(); "w" in ember.get_param_store()
        False
    """
    _PYRO_PARAM_STORE.clear()


def param(
    name: str,
    init_tensor: Union[torch.Tensor, Callable[[], torch.Tensor], None] = None,
    constraint: constraints.Constraint = constraints.real,
    event_dim: int | None = None,
) -> torch.Tensor:
    """A named learnable parameter from the param store, created from ``init_tensor``.

    ``init_tensor`` (a tensor or a callable returning one) is used only the
    first time ``name`` is seen; the value is kept unconstrained and returned
    mapped onto ``constraint``. Inside a subsampled plate, a parameter with
    ``event_dim`` set is a *local* parameter: its plate dim is indexed by the
    plate's subsample indices.

    Example::

        >>> import torch, ember
        >>> from ember.distributions import constraints
        >>> ember.clear_param_store()
        >>> ember.param("scale", torch.tensor(0.5), constraint=constraints.positive).detach()
        tensor(0.5000)
        >>> with ember.plate("data", 4, subsample=torch.tensor([0, 2])):
        ...     ember.param("local", torch.arange(4.0), event_dim=0)
        tensor([0., 2.], grad_fn=<IndexSelectBackward0>)
    """
    stack = _get_stack()
    if not stack:
        return _PYRO_PARAM_STORE.get_param(name, init_tensor, constraint, event_dim)
    args = (name,) if init_tensor is None else (name, init_tensor)
    kwargs = {"constraint": constraint, "event_dim": event_dim}
    msg = new_message("param", name, _PYRO_PARAM_STORE.get_param, args, kwargs)
    apply_stack(msg, stack)
    return msg["value"]


def sample(name: str, fn, *args, obs=None, obs_mask=None, infer: dict | None = None, **kwargs):
    """A random variable named ``name`` drawn from the distribution ``fn``.

    ``obs`` makes the site observed (its value is ``obs``); ``obs_mask`` (a
    bool tensor over the batch shape) observes only where True and samples
    the rest, splitting the site into ``name_observed`` and
    ``name_unobserved``. ``infer`` passes options to inference algorithms
    (e.g. ``{"enumerate": "parallel"}``).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> ember.set_rng_seed(0)
        >>> ember.sample("x", dist.Normal(0.0, 1.0)).shape
        torch.Size([])
        >>> tr = ember.poutine.trace(
        ...     lambda: ember.sample("y", dist.Normal(0.0, 1.0), obs=torch.tensor(0.3))
        ... ).get_trace()
        >>> tr.nodes["y"]["is_observed"], tr.nodes["y"]["value"]
        (True, tensor(0.3000))
    """
    if obs_mask is not None:
        return _masked_observe(name, fn, obs, obs_mask, *args, infer=infer, **kwargs)
    stack = _get_stack()
    if not stack:
        if ACTIVE_HANDLER_THREADS:  # another thread is inside a handler: does it miss this?
            warn_if_unseen_by_other_thread(name)
        if obs is not None:
            if infer is None or not infer.get("_deterministic"):
                warnings.warn(
                    f"trying to observe a value outside of inference at site {name!r}",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return obs
        return fn(*args, **kwargs)
    if type(name) is not str and is_poutine_validation_enabled() and not isinstance(name, str):
        raise TypeError(f"sample site names must be str, got {type(name).__name__} {name!r}")
    if infer is None:
        infer, is_observed = {}, obs is not None
    else:
        # infer={"is_observed": False} with obs= gives a latent site an initial value
        # (reparameterizers use it for the sites they add).
        infer = infer.copy()
        is_observed = infer.pop("is_observed", obs is not None)
    msg = new_message("sample", name, fn, args, kwargs, obs, is_observed, infer)
    apply_stack(msg, stack)
    return msg["value"]


def _masked_observe(name, fn, obs, obs_mask, *args, **kwargs):
    if not isinstance(obs_mask, torch.Tensor) or obs_mask.dtype != torch.bool:
        raise TypeError(f"site {name!r}: obs_mask must be a bool tensor, got {obs_mask!r}")
    if obs is None:
        raise ValueError(f"site {name!r}: obs_mask was given without obs")
    event_dim = getattr(fn, "event_dim", len(getattr(fn, "event_shape", ())))
    batch_mask = obs_mask.reshape(obs_mask.shape + (1,) * event_dim)
    with MaskMessenger(mask=~obs_mask):
        unobserved = sample(f"{name}_unobserved", fn, *args, **kwargs)
    batch_shape = unobserved.shape[: unobserved.dim() - event_dim]
    try:
        torch.broadcast_shapes(obs_mask.shape, batch_shape)
    except RuntimeError:
        raise ValueError(
            f"site {name!r}: Invalid obs_mask shape {tuple(obs_mask.shape)}; should be "
            f"broadcastable to batch_shape = {tuple(batch_shape)}. Hint: obs_mask marks whole "
            "events as observed, so it has no event dims (event_shape = "
            f"{tuple(unobserved.shape[unobserved.dim() - event_dim :])})"
        ) from None
    # Entries that are not observed (often NaN) take the in-support unobserved draw, so
    # validation of the observed site passes; their log-density is masked out anyway.
    filled = torch.where(batch_mask, obs, unobserved.detach())
    with MaskMessenger(mask=obs_mask):
        observed = sample(f"{name}_observed", fn, *args, obs=filled, **kwargs)
    value = torch.where(batch_mask, observed, unobserved)
    return deterministic(name, value, event_dim=event_dim)


def factor(name: str, log_factor: torch.Tensor, *, has_rsample: bool | None = None) -> None:
    """Add ``log_factor`` to the model's log-density, as an observed site named ``name``.

    Example::

        >>> import torch, ember
        >>> tr = ember.poutine.trace(lambda: ember.factor("f", torch.tensor(-2.0))).get_trace()
        >>> tr.log_prob_sum()
        tensor(-2.)
    """
    unit = Unit(log_factor, has_rsample=has_rsample, validate_args=False)
    sample(name, unit, obs=unit.sample(), infer={"is_auxiliary": True})


def deterministic(name: str, value: torch.Tensor, event_dim: int | None = None) -> torch.Tensor:
    """Record ``value`` in traces as a site named ``name`` (with zero log-density).

    Example::

        >>> import torch, ember
        >>> tr = ember.poutine.trace(lambda: ember.deterministic("d", torch.ones(2))).get_trace()
        >>> tr.nodes["d"]["value"], tr.nodes["d"]["infer"]["_deterministic"]
        (tensor([1., 1.]), True)
    """
    event_dim = value.dim() if event_dim is None else event_dim
    return sample(
        name,
        Delta(value, event_dim=event_dim).mask(False),
        obs=value,
        infer={"_deterministic": True},
    )


@effectful(type="subsample")
def subsample(data: torch.Tensor, event_dim: int) -> torch.Tensor:
    """Index ``data`` by the subsample indices of the enclosing plates.

    ``event_dim`` says how many rightmost dims of ``data`` are event dims.

    Example::

        >>> import torch, ember
        >>> data = torch.arange(10.0)
        >>> with ember.plate("data", 10, subsample=torch.tensor([1, 5])):
        ...     ember.subsample(data, event_dim=0)
        tensor([1., 5.])
    """
    if not isinstance(event_dim, int) or event_dim < 0:
        raise ValueError(f"subsample: event_dim must be a non-negative int, got {event_dim!r}")
    return data


class plate(PlateMessenger):
    """A conditionally independent collection of ``size`` variables, optionally subsampled.

    ``with plate(...) as idx`` is vectorized: it claims a batch dim (``dim``,
    or the next free one from the right), broadcasts sample sites to it and
    yields the (subsample) indices. ``for i in plate(...)`` is sequential.
    Log-densities inside are scaled by ``size / subsample_size``.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> ember.set_rng_seed(0)
        >>> with ember.plate("data", 1000, subsample_size=100) as idx:
        ...     x = ember.sample("x", dist.Normal(0.0, 1.0))
        >>> idx.shape, x.shape
        (torch.Size([100]), torch.Size([100]))
        >>> [i for i in ember.plate("seq", 3)]
        [0, 1, 2]
    """

    # (the constructor is SubsampleMessenger's: name, size=None, subsample_size=None,
    # subsample=None, dim=None, use_cuda=None, device=None)


class iarange(plate):
    """Deprecated alias of :class:`plate` (warns once).

    Example::

        >>> import warnings, ember
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     with ember.iarange("data", 3) as idx:
        ...         idx
        tensor([0, 1, 2])
    """

    def __init__(self, *args, **kwargs):
        warn_once("iarange", "ember.iarange is deprecated; use ember.plate instead", FutureWarning)
        super().__init__(*args, **kwargs)


class irange(plate):
    """Deprecated sequential alias of :class:`plate` (warns once).

    Example::

        >>> import warnings, ember
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     list(ember.irange("data", 3))
        [0, 1, 2]
    """

    def __init__(self, *args, **kwargs):
        warn_once("irange", "ember.irange is deprecated; use ember.plate instead", FutureWarning)
        super().__init__(*args, **kwargs)


def observe(name: str, fn, obs, *args, **kwargs):
    """Deprecated: ``sample(name, fn, *args, obs=obs, **kwargs)`` (warns once).

    Example::

        >>> import warnings, torch, ember, ember.distributions as dist
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     tr = ember.poutine.trace(lambda: ember.observe(
        ...         "y", dist.Normal(0.0, 1.0), torch.tensor(1.0))).get_trace()
        >>> tr.observation_nodes
        ['y']
    """
    warn_once("observe", "ember.observe is deprecated; use ember.sample(..., obs=...)")
    return sample(name, fn, *args, obs=obs, **kwargs)


def _set_module_param(nn_module, path: str, value) -> None:
    *parents, leaf = path.split(".")
    target = nn_module
    for p in parents:
        target = getattr(target, p)
    target._parameters[leaf] = value


def module(name: str, nn_module: torch.nn.Module, update_module_params: bool = False):
    """Register the parameters of ``nn_module`` in the param store as ``name$$$param``.

    With ``update_module_params=True`` the module's parameters are replaced
    by the store's values (e.g. after loading a saved store). Parameters with
    ``requires_grad=False`` are not registered (with a warning while the
    module is in training mode).

    Example::

        >>> import torch, ember
        >>> ember.clear_param_store()
        >>> net = ember.module("net", torch.nn.Linear(2, 1))
        >>> sorted(ember.get_param_store().keys())
        ['net$$$bias', 'net$$$weight']
    """
    if inspect.isclass(nn_module) or not hasattr(nn_module, "named_parameters"):
        raise TypeError(
            f"module {name!r}: expected a torch.nn.Module instance, got {nn_module!r}"
            + (" (a class: construct it first)" if inspect.isclass(nn_module) else "")
        )
    if MODULE_NAMESPACE_DIVIDER in name:
        raise ValueError(
            f"module name {name!r} contains {MODULE_NAMESPACE_DIVIDER!r}, the separator of "
            "module and parameter names; choose another name"
        )
    target = {}
    for param_name, param_value in nn_module.named_parameters():
        if not param_value.requires_grad:
            if nn_module.training:
                warnings.warn(
                    f"module {name!r}: parameter {param_name!r} was not registered in the param "
                    "store because requires_grad=False (call module.train(False) to silence "
                    "this warning)",
                    UserWarning,
                    stacklevel=2,
                )
            continue
        full_name = param_with_module_name(name, param_name)
        returned = param(full_name, param_value)
        if returned is not param_value:
            target[param_name] = returned
    if target and update_module_params:
        for param_name, value in target.items():
            _set_module_param(nn_module, param_name, value)
    return nn_module


def random_module(name: str, nn_module: torch.nn.Module, prior, *args, **kwargs):
    """A callable that returns a copy of ``nn_module`` with parameters drawn from ``prior``.

    ``prior`` is a distribution, a stochastic function, or a dict from
    parameter names (e.g. ``"weight"``) to either.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> ember.clear_param_store()
        >>> net = torch.nn.Linear(2, 1)
        >>> prior = {"weight": dist.Normal(torch.zeros(1, 2), 1.0),
        ...          "bias": dist.Normal(torch.zeros(1), 1.0)}
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")  # random_module is deprecated
        ...     draw = ember.random_module("net", net, prior)
        >>> tr = ember.poutine.trace(draw).get_trace()
        >>> sorted(n for n in tr.stochastic_nodes)
        ['net$$$bias', 'net$$$weight']
    """
    warn_once(
        "random_module",
        "ember.random_module is deprecated; place priors on module parameters with "
        "ember.sample instead",
    )
    if not hasattr(nn_module, "parameters"):
        raise TypeError(f"random_module {name!r}: expected a torch.nn.Module")
    lifted = LiftMessenger(prior=prior)(module)

    def _fn():
        nn_copy = copy.deepcopy(nn_module)
        return lifted(name, nn_copy, *args, update_module_params=True, **kwargs)

    return _fn


def barrier(data: torch.Tensor) -> torch.Tensor:
    """A sequential barrier: handlers see a message of type ``"barrier"`` here.

    Example::

        >>> import torch, ember
        >>> ember.barrier(torch.ones(2))
        tensor([1., 1.])
    """
    return _barrier(data)


@effectful(type="barrier")
def _barrier(data):
    return data


@contextmanager
def plate_stack(prefix: str, sizes, rightmost_dim: int = -1):
    """Nested plates named ``prefix_0``, ``prefix_1``, ... for a batch of ``sizes``.

    The last size gets ``rightmost_dim``, the others the dims to its left.

    Example::

        >>> import ember, ember.distributions as dist
        >>> with ember.plate_stack("b", (2, 3)):
        ...     ember.sample("x", dist.Normal(0.0, 1.0)).shape
        torch.Size([2, 3])
    """
    sizes = list(sizes)
    with ExitStack() as stack:
        for i, size in enumerate(sizes):
            stack.enter_context(
                plate(f"{prefix}_{i}", size, dim=rightmost_dim - len(sizes) + 1 + i)
            )
        yield
