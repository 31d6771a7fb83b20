"""PyroModule: a ``torch.nn.Module`` whose attributes go through ember's effect handlers.

A :class:`PyroModule` may hold three kinds of managed attributes:

* :class:`PyroParam` (and plain ``torch.nn.Parameter``): a learnable parameter.
  Reading it inside a call of the module is an ``ember.param`` statement named
  after the attribute's path in the module tree (``"linear.weight"``), so the
  parameter lives in the param store under that name (or, with the
  ``module_local_params`` setting, only in the module itself).
* :class:`PyroSample`: a random attribute. Reading it inside a call of the
  module is an ``ember.sample`` statement (``ember.deterministic`` when the
  prior returns a tensor); the value is cached until the outermost call ends,
  so every read within one run sees the same draw.
* sub-modules: sub-``PyroModule`` s share their root's naming and cache; a
  plain ``torch.nn.Module`` child is registered with ``ember.module`` when read.

Example::

    >>> import torch, ember, ember.distributions as dist
    >>> from ember.distributions import constraints
    >>> from ember.nn import PyroModule, PyroParam, PyroSample
    >>> ember.clear_param_store(); ember.set_rng_seed(0)
    >>> class Regression(PyroModule):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.linear = PyroModule[torch.nn.Linear](3, 1)
    ...         self.linear.weight = PyroSample(dist.Normal(0.0, 1.0).expand([1, 3]).to_event(2))
    ...         self.sigma = PyroParam(torch.tensor(1.0), constraint=constraints.positive)
    ...     def forward(self, x, y=None):
    ...         mean = self.linear(x).squeeze(-1)
    ...         with ember.plate("data", x.shape[0]):
    ...             return ember.sample("y", dist.Normal(mean, self.sigma), obs=y)
    >>> tr = ember.poutine.trace(Regression()).get_trace(torch.randn(5, 3))
    >>> {name: site["type"] for name, site in tr.nodes.items() if "." in name or name == "sigma"}
    {'linear.weight': 'sample', 'linear.bias': 'param', 'sigma': 'param'}
    >>> sorted(ember.get_param_store().keys())
    ['linear.bias', 'sigma']
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import weakref
from typing import Any, Callable, Dict, Iterator, NamedTuple, Optional, Tuple, Union

import torch
from torch.distributions import constraints, transform_to

from ember.params import param_store
from ember.params.param_store import get_param_store, param_with_module_name
from ember.poutine.runtime import HANDLER_STACK, apply_stack, new_message
from ember.primitives import deterministic, param, sample
from ember.primitives import module as register_module
from ember.util import is_poutine_validation_enabled

__all__ = [
    "PyroModule",
    "PyroModuleList",
    "PyroParam",
    "PyroSample",
    "clear",
    "module_local_param_enabled",
    "pyro_method",
    "to_pyro_module_",
]

_get_stack = HANDLER_STACK.get
_STORE = get_param_store()
_UNCONSTRAINED = "_unconstrained"


def module_local_param_enabled() -> bool:
    """Whether ``PyroModule`` s keep their parameters to themselves.

    This is the ``module_local_params`` setting (off by default). When on, a
    ``PyroModule`` 's parameters live only in the module (so two instances of
    one class never share them, and ``torch.func`` can swap them); reading one
    still makes a ``param`` statement for the handlers, but the global param
    store is not touched.

    Example::

        >>> import ember
        >>> from ember.nn.module import module_local_param_enabled
        >>> module_local_param_enabled()
        False
        >>> with ember.settings.context(module_local_params=True):
        ...     module_local_param_enabled()
        True
    """
    return param_store.MODULE_LOCAL_PARAMS


class PyroParam(NamedTuple):
    """Declares a learnable attribute of a :class:`PyroModule`, like ``ember.param``.

    :param init_value: the initial (constrained) value: a tensor, or a callable
        returning one (called once, when the parameter is created).
    :param constraint: the constraint of the value; the module stores the
        unconstrained tensor as ``<name>_unconstrained``.
    :param event_dim: how many rightmost dims are event dims; inside a
        subsampled plate the batch dims to their left are subsampled.

    Set it as an attribute (``module.scale = PyroParam(torch.ones(3),
    constraints.positive)``) or use it as a decorator on a method that returns
    the initial value (``@PyroParam`` or ``@PyroParam(constraint=..., event_dim=...)``);
    the attribute then reads like a property.

    Example::

        >>> import torch
        >>> from ember.distributions import constraints
        >>> from ember.nn import PyroModule, PyroParam
        >>> m = PyroModule()
        >>> m.scale = PyroParam(torch.tensor([1.0, 2.0]), constraint=constraints.positive)
        >>> m.scale.detach()
        tensor([1., 2.])
        >>> m.scale_unconstrained.data
        tensor([0.0000, 0.6931])
        >>> class Model(PyroModule):
        ...     @PyroParam(constraint=constraints.positive)
        ...     def rate(self):
        ...         return torch.tensor(3.0)
        >>> Model().rate.detach()
        tensor(3.)
    """

    init_value: Optional[Union[torch.Tensor, Callable[[], torch.Tensor]]] = None
    constraint: constraints.Constraint = constraints.real
    event_dim: Optional[int] = None

    def __get__(self, obj, obj_type=None):
        # Used as a decorator: the class attribute is this PyroParam; the first read on
        # an instance creates the parameter from the decorated method.
        if obj is None:
            return self
        name = self.init_value.__name__
        if name not in obj.__dict__["_pyro_params"]:
            init = functools.partial(self.init_value, obj)
            setattr(obj, name, PyroParam(init, self.constraint, self.event_dim))
        return obj.__getattr__(name)

    def __call__(self, init_value):
        """``@PyroParam(constraint=..., event_dim=...)``: decorate ``init_value``."""
        if self.init_value is not None:
            raise TypeError(
                "PyroParam(...) with an init_value is a declaration, not a decorator; use "
                "@PyroParam(constraint=..., event_dim=...) without an init_value"
            )
        if not callable(init_value):
            raise TypeError(f"@PyroParam(...) must decorate a method, got {init_value!r}")
        return PyroParam(init_value, self.constraint, self.event_dim)


def _prior_is_distribution(prior) -> bool:
    return hasattr(prior, "sample")


@dataclasses.dataclass(frozen=True)
class PyroSample:
    """Declares a random attribute of a :class:`PyroModule`, like ``ember.sample``.

    :param prior: a distribution, or a function of the module (``self``)
        returning a distribution (whose parameters may be other attributes:
        ``lambda self: dist.Normal(self.loc, 1.0)``) or a tensor (then the
        attribute is an ``ember.deterministic`` site).

    Reading the attribute inside a call of the module (its ``forward`` or a
    :func:`pyro_method`) is a sample statement named after the attribute's path;
    within one outermost call every read returns the same value. Outside any
    call each read simply draws a fresh value. Usable as a decorator on a method
    taking ``self``.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.nn import PyroModule, PyroSample
        >>> class Model(PyroModule):
        ...     @PyroSample
        ...     def loc(self):
        ...         return dist.Normal(0.0, 1.0)
        ...     @PyroSample
        ...     def x(self):
        ...         return dist.Normal(self.loc, 0.1)
        ...     def forward(self):
        ...         return self.x
        >>> tr = ember.poutine.trace(Model()).get_trace()
        >>> [n for n in tr.stochastic_nodes]
        ['loc', 'x']
        >>> bool(tr.nodes["x"]["fn"].loc == tr.nodes["loc"]["value"])
        True
    """

    prior: Any

    def __post_init__(self):
        prior = self.prior
        if _prior_is_distribution(prior):
            return
        if not callable(prior):
            raise TypeError(
                "PyroSample(prior): prior must be a distribution or a function of the module "
                f"returning one, got {type(prior).__name__}"
            )
        required = [
            p
            for p in inspect.signature(prior).parameters.values()
            if p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if len(required) != 1:
            raise TypeError(
                "PyroSample(prior): a prior function must take exactly one argument, the module "
                f"(e.g. lambda self: dist.Normal(self.loc, 1.0)); {prior!r} takes "
                f"{len(required)}"
            )

    def __set_name__(self, owner, name):
        # Used as a decorator in a class body: remember the attribute name, and keep the
        # decorated function reachable by its qualified name so modules pickle.
        object.__setattr__(self, "_attr_name", name)
        fn = self.prior
        if inspect.isfunction(fn) and fn.__name__ == name:
            hidden = "_pyro_prior_" + name
            fn.__name__ = hidden
            fn.__qualname__ = fn.__qualname__.rpartition(".")[0] + "." + hidden
            setattr(owner, hidden, fn)

    def __get__(self, obj, obj_type=None):
        if obj is None:
            return self
        name = self.__dict__.get("_attr_name")
        if name is None:  # attached to a class after its creation
            name = next(n for n in dir(type(obj)) if getattr(type(obj), n, None) is self)
            object.__setattr__(self, "_attr_name", name)
        obj.__dict__["_pyro_samples"].setdefault(name, self.prior)
        return obj.__getattr__(name)


def _make_name(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _constrained(unconstrained: torch.Tensor, constraint) -> torch.Tensor:
    value = transform_to(constraint)(unconstrained)
    value.unconstrained = weakref.ref(unconstrained)
    return value


def _unconstrain(init_value, constraint, where: str) -> torch.nn.Parameter:
    with torch.no_grad():
        if callable(init_value) and not isinstance(init_value, torch.Tensor):
            init_value = init_value()
        if not isinstance(init_value, torch.Tensor):
            raise TypeError(
                f"PyroParam {where!r}: the initial value must be a tensor (or a callable "
                f"returning one), got {type(init_value).__name__}"
            )
        return torch.nn.Parameter(transform_to(constraint).inv(init_value.detach()))


def _announce_param(fullname: str, value, constraint, event_dim):
    """A ``param`` statement for a value the module keeps itself (local parameters):
    the handlers see it (traces record it, ``lift`` may replace it) but the global
    param store is not used."""
    stack = _get_stack()
    if not stack:
        return value
    msg = new_message(
        "param",
        fullname,
        functools.partial(_returns, value),
        (fullname,),
        {"constraint": constraint, "event_dim": event_dim},
    )
    apply_stack(msg, stack)
    return msg["value"]


def _returns(value, *args, **kwargs):
    return value


def _check_stored_shape(fullname: str, stored_shape, own_shape) -> None:
    if own_shape is not None and tuple(stored_shape) != tuple(own_shape):
        raise ValueError(
            f"PyroModule parameter {fullname!r}: the param store already holds a parameter of "
            f"this name with shape {tuple(stored_shape)}, but the module's has shape "
            f"{tuple(own_shape)} (a stale parameter from another model?). Clear the store "
            "(ember.clear_param_store()), remove that entry, or give the root module a name "
            "(PyroModule(name=...))"
        )


def _as_parameter(
    fullname: str, leaf: torch.Tensor, constraint, own_shape=None
) -> torch.nn.Parameter:
    """The store's leaf tensor for ``fullname`` as an ``nn.Parameter`` (sharing its data);
    the store is updated to hold the parameter object, so module and store agree.
    ``own_shape``: the shape of the module's own tensor, which the leaf must have."""
    _check_stored_shape(fullname, leaf.shape, own_shape)
    if isinstance(leaf, torch.nn.Parameter):
        return leaf
    parameter = torch.nn.Parameter(leaf.detach(), requires_grad=leaf.requires_grad)
    _STORE.set_state({"params": {fullname: parameter}, "constraints": {fullname: constraint}})
    return parameter


class _ModuleContext:
    """The state shared by a root ``PyroModule`` and its sub-modules during a call:
    how deeply calls are nested, the sample cache of the outermost call, and (with
    local parameters) the module tree's own parameter state."""

    def __init__(self):
        self.active = 0
        self.cache: Dict[str, torch.Tensor] = {}
        self.used = False
        self.param_state = {"params": {}, "constraints": {}}
        self.scope = None

    def __enter__(self):
        if not self.active and param_store.MODULE_LOCAL_PARAMS:
            # ember.param statements inside go to this module tree's own store
            self.scope = _STORE.scope(state=self.param_state)
            self.param_state = self.scope.__enter__()
        self.active += 1
        self.used = True

    def __exit__(self, exc_type, exc_value, traceback):
        self.active -= 1
        if not self.active:
            self.cache.clear()
            scope, self.scope = self.scope, None
            if scope is not None:
                scope.__exit__(exc_type, exc_value, traceback)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["scope"] = None
        state["active"] = 0
        state["cache"] = {}
        return state


def _pyro_members(module: torch.nn.Module) -> Iterator[Tuple[str, torch.Tensor, Any]]:
    """``(name, value, leaf)`` of one module's own parameters: ``PyroParam`` s by their
    constrained name and value, with the unconstrained leaf they are made from."""
    pyro_params = module.__dict__.get("_pyro_params", ())
    for name, leaf in module._parameters.items():
        if leaf is not None and name.endswith(_UNCONSTRAINED):
            constrained_name = name[: -len(_UNCONSTRAINED)]
            if constrained_name in pyro_params:
                yield constrained_name, getattr(module, constrained_name), leaf
                continue
        yield name, leaf, leaf


def _new_mixin_instance(module_class):
    """An empty instance of ``PyroModule[module_class]`` (unpickling helper)."""
    cls = PyroModule[module_class]
    return cls.__new__(cls)


class _PyroModuleMeta(type):
    """Metaclass of :class:`PyroModule`: ``PyroModule[nn.Linear]`` is the class
    ``PyroLinear(nn.Linear, PyroModule)``, created once and cached."""

    mixin_cache: Dict[type, type] = {}

    def __getitem__(cls, module_class):
        if not (isinstance(module_class, type) and issubclass(module_class, torch.nn.Module)):
            raise TypeError(
                f"PyroModule[...] takes a torch.nn.Module subclass, got {module_class!r}"
            )
        if issubclass(module_class, PyroModule):
            return module_class
        if module_class is torch.nn.Module:
            return PyroModule
        cache = _PyroModuleMeta.mixin_cache
        if module_class in cache:
            return cache[module_class]
        bases = tuple(
            PyroModule[b] for b in module_class.__bases__ if issubclass(b, torch.nn.Module)
        )

        def __reduce__(self):
            return _new_mixin_instance, (module_class,), self.__getstate__()

        mixin = type(
            "Pyro" + module_class.__name__,
            (module_class,) + bases,
            {"__reduce__": __reduce__, "__module__": module_class.__module__},
        )
        cache[module_class] = mixin
        return mixin


class PyroModule(torch.nn.Module, metaclass=_PyroModuleMeta):
    """A ``torch.nn.Module`` whose attributes may be :class:`PyroParam` s and
    :class:`PyroSample` s, read through ember's effect handlers.

    :param name: the name of a root module: its attributes' site names start
        with ``name + "."``. A sub-module takes its name from its place in the
        parent (``"encoder.linear"``) and ignores this.

    Names and the param store: the attribute ``x`` of the sub-module at
    ``"a.b"`` is the site ``"a.b.x"``. A plain ``torch.nn.Module`` child ``m``
    is registered with ``ember.module("m", ...)`` (so its parameters are
    ``"m$$$weight"``, ...). Reading a parameter inside a call of the module
    makes an ``ember.param`` statement: if the store already holds that name
    (e.g. loaded with ``ParamStore.load`` or set by another instance of the
    same model) the module adopts the stored tensor; otherwise the module's
    tensor is put into the store. Deleting an attribute removes it from both.
    With the ``module_local_params`` setting the store is left alone.

    ``PyroModule[SomeModule]`` is ``SomeModule`` with ``PyroModule`` mixed in
    (created once per class); :func:`to_pyro_module_` converts an existing
    instance in place. Modules pickle and ``torch.save`` as usual, and
    ``state_dict`` holds the unconstrained tensors (``"scale_unconstrained"``).

    Example::

        >>> import torch, ember
        >>> from ember.nn import PyroModule
        >>> ember.clear_param_store()
        >>> net = PyroModule[torch.nn.Sequential](PyroModule[torch.nn.Linear](2, 3))
        >>> type(net).__name__, isinstance(net, torch.nn.Sequential)
        ('PyroSequential', True)
        >>> _ = net(torch.ones(2))
        >>> sorted(ember.get_param_store().keys())
        ['0.bias', '0.weight']
    """

    def __init__(self, name: str = ""):
        self._pyro_name = name
        self._pyro_context = _ModuleContext()  # shared with sub-PyroModules
        self._pyro_params: Dict[str, Tuple[Any, Optional[int]]] = {}
        self._pyro_samples: Dict[str, Any] = {}
        super().__init__()

    # ------------------------------------------------------------------ tree
    def add_module(self, name: str, module: Optional[torch.nn.Module]) -> None:
        """Add a child module; a ``PyroModule`` child joins this module's tree."""
        if isinstance(module, PyroModule):
            module._pyro_set_supermodule(_make_name(self._pyro_name, name), self._pyro_context)
        super().add_module(name, module)

    def _pyro_set_supermodule(self, name: str, context: _ModuleContext) -> None:
        if self._pyro_context is not context and self._pyro_context.active:
            raise RuntimeError(
                f"cannot attach the PyroModule {type(self).__name__} as {name!r} while it is "
                "running; attach sub-modules before calling them"
            )
        self._pyro_name = name
        self._pyro_context = context
        for key, child in self._modules.items():
            if isinstance(child, PyroModule):
                child._pyro_set_supermodule(_make_name(name, key), context)

    def _pyro_get_fullname(self, name: str) -> str:
        return _make_name(self.__dict__["_pyro_name"], name)

    def named_pyro_params(
        self, prefix: str = "", recurse: bool = True
    ) -> Iterator[Tuple[str, torch.Tensor]]:
        """``(name, value)`` of the parameters of this module (and its sub-modules when
        ``recurse``): ``PyroParam`` s by their constrained name and value
        (``"scale"``), plain parameters as ``named_parameters`` gives them.

        Example::

            >>> import torch
            >>> from ember.distributions import constraints
            >>> from ember.nn import PyroModule, PyroParam
            >>> m = PyroModule[torch.nn.Linear](2, 1)
            >>> m.scale = PyroParam(torch.ones(1), constraints.positive)
            >>> [name for name, _ in m.named_pyro_params()]
            ['weight', 'bias', 'scale']
        """
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        seen = set()  # ids of the leaves (which stay alive) seen so far
        for module_prefix, module in modules:
            for name, value, leaf in _pyro_members(module):
                if leaf is None or id(leaf) in seen:
                    continue
                seen.add(id(leaf))
                yield _make_name(module_prefix, name), value

    # ------------------------------------------------------------------ calls
    def __call__(self, *args, **kwargs):
        context = self._pyro_context
        with context:
            result = super().__call__(*args, **kwargs)
        if (
            not context.active
            and param_store.MODULE_LOCAL_PARAMS
            and is_poutine_validation_enabled()
        ):
            self._check_module_local_param_usage()
        return result

    def _check_module_local_param_usage(self) -> None:
        own = {id(p) for p in self.parameters()}
        for name, value in self._pyro_context.param_state["params"].items():
            leaf = value.unconstrained() if hasattr(value, "unconstrained") else value
            if id(leaf) not in own:
                raise NotImplementedError(
                    f"the PyroModule {type(self).__name__} made a global ember.param statement "
                    f"{name!r} while the module_local_params setting is on; global parameters "
                    "inside a PyroModule with local parameters are not supported (is not yet "
                    "implemented). Make it an attribute (PyroParam or nn.Parameter) instead"
                )

    # ------------------------------------------------------------- attributes
    def __getattr__(self, name: str):
        d = self.__dict__
        pyro_params = d.get("_pyro_params")
        if pyro_params is not None and name in pyro_params:
            return self._pyro_read_param(name, *pyro_params[name])
        pyro_samples = d.get("_pyro_samples")
        if pyro_samples is not None and name in pyro_samples:
            return self._pyro_read_sample(name, pyro_samples[name])

        result = super().__getattr__(name)
        context = d.get("_pyro_context")
        if isinstance(result, torch.nn.Parameter):
            if context is not None and context.active and not name.endswith(_UNCONSTRAINED):
                fullname = self._pyro_get_fullname(name)
                if param_store.MODULE_LOCAL_PARAMS:
                    _announce_param(fullname, result, constraints.real, None)
                else:
                    stored = _STORE.get_unconstrained(fullname)
                    if stored is not None and stored is not result:
                        # the store holds another tensor of this name: the module adopts it
                        result = _as_parameter(fullname, stored, constraints.real, result.shape)
                        self._parameters[name] = result
                    param(fullname, result)
        elif isinstance(result, torch.nn.Module):
            if isinstance(result, PyroModule):
                if not result._pyro_name and context is not None:
                    # converted in place (to_pyro_module_): join this module's tree
                    result._pyro_set_supermodule(_make_name(d["_pyro_name"], name), context)
            elif context is not None and context.active:
                fullname = self._pyro_get_fullname(name)
                if param_store.MODULE_LOCAL_PARAMS:
                    for param_name, value in result.named_parameters():
                        pname = param_with_module_name(fullname, param_name)
                        _announce_param(pname, value, constraints.real, None)
                else:
                    register_module(fullname, result)
        return result

    def _pyro_read_param(self, name: str, constraint, event_dim):
        unconstrained = self._parameters[name + _UNCONSTRAINED]
        context = self.__dict__["_pyro_context"]
        if not context.active:
            # outside a call the site name is not known yet: just the constrained value
            return _constrained(unconstrained, constraint)
        fullname = self._pyro_get_fullname(name)
        if param_store.MODULE_LOCAL_PARAMS:
            value = _constrained(unconstrained, constraint)
            return _announce_param(fullname, value, constraint, event_dim)
        stored = _STORE.get_unconstrained(fullname)
        if stored is None:
            # module -> store
            _STORE.set_state(
                {"params": {fullname: unconstrained}, "constraints": {fullname: constraint}}
            )
        elif stored is not unconstrained:
            # store -> module
            unconstrained = _as_parameter(fullname, stored, constraint, unconstrained.shape)
            self._parameters[name + _UNCONSTRAINED] = unconstrained
        return param(fullname, constraint=constraint, event_dim=event_dim)

    def _pyro_read_sample(self, name: str, prior):
        context = self.__dict__["_pyro_context"]
        if not context.active:
            # outside a call: a fresh draw, no sample statement
            if not _prior_is_distribution(prior):
                prior = prior(self)
            return prior if isinstance(prior, torch.Tensor) else prior()
        fullname = self._pyro_get_fullname(name)
        value = context.cache.get(fullname)
        if value is None:
            if not _prior_is_distribution(prior):
                prior = prior(self)
            if isinstance(prior, torch.Tensor):
                value = deterministic(fullname, prior)
            else:
                value = sample(fullname, prior)
            context.cache[fullname] = value
        return value

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, PyroModule):
            self._pyro_forget(name)
            self.add_module(name, value)
            return
        if isinstance(value, PyroParam):
            self._pyro_set_param(name, value)
            return
        if isinstance(value, torch.nn.Parameter):
            self._pyro_forget(name)
            context = self.__dict__.get("_pyro_context")
            if context is not None and context.active:
                fullname = self._pyro_get_fullname(name)
                if param_store.MODULE_LOCAL_PARAMS:
                    value = _announce_param(fullname, value, constraints.real, None)
                else:
                    param(fullname, value)
                    value = _as_parameter(
                        fullname, _STORE.get_unconstrained(fullname), constraints.real, value.shape
                    )
            super().__setattr__(name, value)
            return
        if isinstance(value, torch.Tensor):
            pyro_params = self.__dict__.get("_pyro_params")
            if pyro_params is not None and name in pyro_params:
                # a new value for an existing PyroParam, set in place
                constraint, _ = pyro_params[name]
                unconstrained = self._parameters[name + _UNCONSTRAINED]
                with torch.no_grad():
                    unconstrained.data = transform_to(constraint).inv(value.detach())
                return
        if isinstance(value, PyroSample):
            self._pyro_forget(name)
            self.__dict__["_pyro_samples"][name] = value.prior
            return
        super().__setattr__(name, value)

    def _pyro_set_param(self, name: str, value: PyroParam) -> None:
        self._pyro_forget(name)
        init_value, constraint, event_dim = value
        if init_value is None:
            raise ValueError(f"PyroParam {name!r} needs an initial value (got None)")
        self._pyro_params[name] = constraint, event_dim
        context = self._pyro_context
        if context.active:
            fullname = self._pyro_get_fullname(name)
            if param_store.MODULE_LOCAL_PARAMS:
                if callable(init_value) and not isinstance(init_value, torch.Tensor):
                    init_value = init_value()
                init_value = _announce_param(fullname, init_value, constraint, event_dim)
                unconstrained = _unconstrain(init_value, constraint, fullname)
            else:
                param(fullname, init_value, constraint=constraint, event_dim=event_dim)
                if isinstance(init_value, torch.Tensor):
                    _check_stored_shape(fullname, _STORE[fullname].shape, init_value.shape)
                unconstrained = _as_parameter(
                    fullname, _STORE.get_unconstrained(fullname), constraint
                )
        else:
            unconstrained = _unconstrain(init_value, constraint, self._pyro_get_fullname(name))
        super().__setattr__(name + _UNCONSTRAINED, unconstrained)

    def _pyro_forget(self, name: str) -> None:
        """Remove the attribute ``name`` if it exists (ahead of a new value)."""
        d = self.__dict__
        if (
            name in d.get("_parameters", ())
            or name in d.get("_pyro_params", ())
            or name in d.get("_pyro_samples", ())
            or name in d.get("_modules", ())
        ):
            delattr(self, name)

    def __delattr__(self, name: str) -> None:
        d = self.__dict__
        context = d.get("_pyro_context")
        used = context is not None and context.used
        if name in self._parameters:
            del self._parameters[name]
            if used:
                fullname = self._pyro_get_fullname(name)
                if fullname in _STORE:
                    del _STORE[fullname]
            return
        if name in d.get("_pyro_params", ()):
            del self._parameters[name + _UNCONSTRAINED]
            del self._pyro_params[name]
            if used:
                fullname = self._pyro_get_fullname(name)
                if fullname in _STORE:
                    del _STORE[fullname]
            return
        if name in d.get("_pyro_samples", ()):
            del self._pyro_samples[name]
            return
        if name in self._modules:
            del self._modules[name]
            if used:
                fullname = self._pyro_get_fullname(name)
                below = (fullname + ".", param_with_module_name(fullname, ""))
                for key in list(_STORE.keys()):
                    if key == fullname or key.startswith(below):
                        del _STORE[key]
            return
        super().__delattr__(name)

    def __getstate__(self):
        # the weak references from constrained values to their leaves do not pickle
        for p in self.parameters():
            p.__dict__.pop("unconstrained", None)
        return super().__getstate__()


def pyro_method(fn: Callable) -> Callable:
    """Decorator for public methods of a :class:`PyroModule` other than ``forward``
    that read its managed attributes: the method runs as a call of the module
    (site names are known, ``PyroSample`` draws are cached for the call).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.nn import PyroModule, PyroSample, pyro_method
        >>> class Model(PyroModule):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.z = PyroSample(dist.Normal(0.0, 1.0))
        ...     @pyro_method
        ...     def twice(self):
        ...         return self.z, self.z
        >>> a, b = Model().twice()
        >>> a is b
        True
    """

    @functools.wraps(fn)
    def method(self, *args, **kwargs):
        with self._pyro_context:
            return fn(self, *args, **kwargs)

    return method


def clear(mod: PyroModule) -> None:
    """Remove every parameter and sub-module of ``mod``, from it and from the param store.

    Example::

        >>> import torch, ember
        >>> from ember.nn import PyroModule, clear
        >>> ember.clear_param_store()
        >>> m = PyroModule[torch.nn.Linear](2, 1)
        >>> _ = m(torch.ones(2)); sorted(ember.get_param_store().keys())
        ['bias', 'weight']
        >>> clear(m); len(ember.get_param_store()), list(m.parameters())
        (0, [])
    """
    if not isinstance(mod, PyroModule):
        raise TypeError(f"clear(mod) expects a PyroModule, got {type(mod).__name__}")
    for name in list(mod._pyro_params):
        delattr(mod, name)
    for name in list(mod._parameters):
        delattr(mod, name)
    for name in list(mod._modules):
        delattr(mod, name)


def to_pyro_module_(m: torch.nn.Module, recurse: bool = True) -> None:
    """Convert the ``torch.nn.Module`` ``m`` into a :class:`PyroModule` in place
    (its class becomes ``PyroModule[type(m)]``), and its sub-modules too when
    ``recurse``. Its attributes can then be replaced by ``PyroSample`` s.

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.nn import PyroModule, PyroSample, to_pyro_module_
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2))
        >>> to_pyro_module_(net)
        >>> isinstance(net, PyroModule), type(net[0]).__name__
        (True, 'PyroLinear')
        >>> net[0].bias = PyroSample(dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    """
    if not isinstance(m, torch.nn.Module):
        raise TypeError(f"to_pyro_module_ expects a torch.nn.Module instance, got {type(m)}")
    if isinstance(m, PyroModule):
        if recurse:
            for name, child in list(m._modules.items()):
                if child is not None:
                    to_pyro_module_(child)
                    setattr(m, name, child)
        return
    m.__class__ = PyroModule[type(m)]
    m._pyro_name = ""
    m._pyro_context = _ModuleContext()
    m._pyro_params = {}
    m._pyro_samples = {}
    for name, value in list(m._parameters.items()):
        if value is not None:
            setattr(m, name, value)
    for name, child in list(m._modules.items()):
        if child is None:
            continue
        if recurse:
            to_pyro_module_(child)
        setattr(m, name, child)


class _FlatWeights:
    """``torch.nn.RNNBase`` caches its weights in ``_flat_weights``; in a PyroModule
    a weight may be a ``PyroSample`` or ``PyroParam``, so the list is rebuilt on
    every read (and writes are ignored)."""

    def __get__(self, obj, obj_type=None):
        if obj is None:
            return self
        return [getattr(obj, name) for name in obj._flat_weights_names]

    def __set__(self, obj, value):
        pass


PyroModule[torch.nn.RNNBase]._flat_weights = _FlatWeights()


class PyroModuleList(torch.nn.ModuleList, PyroModule):
    """``PyroModule[torch.nn.ModuleList]``: a list of modules in a PyroModule tree.

    A slice is a plain ``torch.nn.ModuleList`` of the same modules, so slicing
    never re-parents them (their site names stay those of their place here).

    Example::

        >>> import torch
        >>> from ember.nn import PyroModule, PyroModuleList
        >>> layers = PyroModuleList([PyroModule[torch.nn.Linear](2, 2) for _ in range(3)])
        >>> PyroModule[torch.nn.ModuleList] is PyroModuleList
        True
        >>> [layer._pyro_name for layer in layers[1:]]
        ['1', '2']
    """

    def __init__(self, modules=None):
        super().__init__(modules)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return torch.nn.ModuleList(list(self._modules.values())[idx])
        return super().__getitem__(idx)


_PyroModuleMeta.mixin_cache[torch.nn.ModuleList] = PyroModuleList
