"""ParamStoreDict: the global store behind ``ember.param``, with safe save/load.

Parameters are stored *unconstrained* (real-valued leaf tensors that the
optimizer updates) together with their constraint; reading a parameter maps
it onto its constraint. Files written by :meth:`ParamStoreDict.save` contain
only tensors, numbers and strings, so :meth:`ParamStoreDict.load` reads them
with ``torch.load(weights_only=True)`` and never runs code from the file.

Files are written atomically (a crash leaves the previous file or the new one)
behind a length and SHA-256 header (:func:`ember.util.write_checked_file`), so a
truncated or corrupted file is refused on load, and the store is left as it was.
Files of the first format (no header) still load.

Once a parameter exists, ``ember.param(name, init, constraint)`` returns it and
ignores ``init`` (as Pyro does). A tensor ``init`` whose shape differs from the
stored parameter's is almost surely a mistake, so it draws a warning naming both
shapes; a ``constraint`` other than the stored one (``real``, the default, counts
as "not given") is refused with a ValueError while validation is on, and draws a
warning otherwise: the stored constraint stays in force either way.
"""

from __future__ import annotations

import io
import numbers
import os
import pickle
import threading
import warnings
import weakref
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Tuple, Union

import torch
from torch.distributions import constraints as _tc
from torch.distributions import transform_to
from torch.distributions import transforms as _tt

import ember.distributions.constraints as ec
from ember import settings
from ember.util import (
    is_validation_enabled,
    read_checked_file,
    torch_save_bytes,
    write_checked_file,
)

#: The separator between a module's name and its parameter's name in the names
#: ``ember.module`` gives parameters: ``"encoder" + "$$$" + "fc.weight"``.
MODULE_NAMESPACE_DIVIDER = "$$$"

#: Whether a ``PyroModule`` keeps its parameters in itself rather than in the global
#: param store (the ``module_local_params`` setting; off by default, as in Pyro).
MODULE_LOCAL_PARAMS = False


@settings.register("module_local_params", __name__, "MODULE_LOCAL_PARAMS")
def _check_module_local_params(value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"module_local_params must be True or False, got {value!r}")


_FILE_TAG = "ember_param_store"
_FILE_VERSION = 2  # 1: a plain torch.save file; 2: behind a length and checksum header
_READABLE_VERSIONS = (1, 2)


def param_with_module_name(pyro_name: str, param_name: str) -> str:
    """``"encoder"``, ``"fc.weight"`` -> ``"encoder$$$fc.weight"``.

    Example::

        >>> param_with_module_name("encoder", "fc.weight")
        'encoder$$$fc.weight'
    """
    return MODULE_NAMESPACE_DIVIDER.join([pyro_name, param_name])


def module_from_param_with_module_name(param_name: str) -> str:
    """The module part of a prefixed parameter name.

    Example::

        >>> module_from_param_with_module_name("encoder$$$fc.weight")
        'encoder'
    """
    return param_name.split(MODULE_NAMESPACE_DIVIDER)[0]


def user_param_name(param_name: str) -> str:
    """The parameter part of a prefixed name (the name itself if unprefixed).

    Example::

        >>> user_param_name("encoder$$$fc.weight"), user_param_name("loc")
        ('fc.weight', 'loc')
    """
    if MODULE_NAMESPACE_DIVIDER in param_name:
        return param_name.split(MODULE_NAMESPACE_DIVIDER)[1]
    return param_name


# ------------------------------------------------------------------ constraints
# name -> constraint for argument-free constraints; class -> (name, arg names) otherwise.
_SINGLETONS: Dict[str, Any] = {}
_SINGLETON_NAMES: Dict[int, str] = {}
_PARAMETRIZED: Dict[type, Tuple[str, Tuple[str, ...]]] = {}
_PARAMETRIZED_BY_NAME: Dict[str, Tuple[type, Tuple[str, ...]]] = {}


def normalize_param_name(name: str) -> str:
    """A param store name in ``torch.nn.Module.named_parameters()`` form.

    Module parameters are stored as ``"module$$$sub.weight"``; this gives
    ``"module.sub.weight"``. Names without a module are returned unchanged.

    Example::

        >>> normalize_param_name("encoder$$$fc.weight"), normalize_param_name("loc")
        ('encoder.fc.weight', 'loc')
    """
    return name.replace(MODULE_NAMESPACE_DIVIDER, ".")


def register_constraint(name: str, constraint=None, cls: type | None = None, args=()):
    """Register a constraint for save/load: an instance by ``name``, or a class with its
    argument attributes ``args`` (numbers, tensors, or nested constraints).

    Example::

        >>> from ember.distributions import constraints
        >>> from ember.params.param_store import register_constraint, _encode_constraint
        >>> _encode_constraint(constraints.greater_than(1.5))
        {'name': 'greater_than', 'args': {'lower_bound': 1.5}}
    """
    if constraint is not None:
        _SINGLETONS.setdefault(name, constraint)
        _SINGLETON_NAMES.setdefault(id(constraint), name)
    if cls is not None:
        _PARAMETRIZED.setdefault(cls, (name, tuple(args)))
        _PARAMETRIZED_BY_NAME.setdefault(name, (cls, tuple(args)))


def _build_registry() -> None:
    if _SINGLETONS:
        return
    for mod in (_tc, ec):
        for attr in sorted(vars(mod)):
            obj = getattr(mod, attr)
            if isinstance(obj, _tc.Constraint) and not attr.startswith("_"):
                register_constraint(attr, obj)
    table = [
        ("greater_than", "_GreaterThan", ("lower_bound",)),
        ("greater_than_eq", "_GreaterThanEq", ("lower_bound",)),
        ("less_than", "_LessThan", ("upper_bound",)),
        ("interval", "_Interval", ("lower_bound", "upper_bound")),
        ("half_open_interval", "_HalfOpenInterval", ("lower_bound", "upper_bound")),
        ("integer_interval", "_IntegerInterval", ("lower_bound", "upper_bound")),
        ("integer_greater_than", "_IntegerGreaterThan", ("lower_bound",)),
        ("integer_less_than", "_IntegerLessThan", ("upper_bound",)),
        ("multinomial", "_Multinomial", ("upper_bound",)),
        ("independent", "_IndependentConstraint", ("base_constraint", "reinterpreted_batch_ndims")),
    ]
    for name, clsname, args in table:
        cls = getattr(_tc, clsname, None)
        if cls is not None:
            register_constraint(name, cls=cls, args=args)


def _encode_arg(value, where):
    if isinstance(value, _tc.Constraint):
        return {"constraint": _encode_constraint(value, where)}
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, (bool, numbers.Number)):
        return value
    raise ValueError(f"{where}: cannot save constraint argument {value!r} of type {type(value)}")


def _encode_constraint(constraint, where: str = "constraint") -> dict:
    _build_registry()
    name = _SINGLETON_NAMES.get(id(constraint))
    if name is not None:
        return {"name": name, "args": {}}
    entry = _PARAMETRIZED.get(type(constraint))
    if entry is None:
        # A fresh instance of an argument-free constraint class counts as the singleton.
        for sname, single in _SINGLETONS.items():
            if type(single) is type(constraint) and vars(single) == vars(constraint):
                return {"name": sname, "args": {}}
        raise ValueError(
            f"{where}: cannot save constraint {constraint!r} ({type(constraint).__name__}); it is "
            "not a registered constraint. Register it with "
            "ember.params.param_store.register_constraint(name, instance) or use a constraint "
            "from ember.distributions.constraints."
        )
    name, argnames = entry
    return {
        "name": name,
        "args": {a: _encode_arg(getattr(constraint, a), where) for a in argnames},
    }


def _decode_arg(value, map_location):
    if isinstance(value, dict) and set(value) == {"constraint"}:
        return _decode_constraint(value["constraint"], map_location)
    if isinstance(value, torch.Tensor) and isinstance(map_location, (str, torch.device)):
        return value.to(map_location)
    return value


def _decode_constraint(data, map_location=None):
    _build_registry()
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise ValueError(f"malformed constraint record in param-store file: {data!r}")
    name = data["name"]
    args = data.get("args", {})
    if name in _SINGLETONS and not args:
        return _SINGLETONS[name]
    if name in _PARAMETRIZED_BY_NAME:
        cls, argnames = _PARAMETRIZED_BY_NAME[name]
        if not isinstance(args, dict) or set(args) != set(argnames):
            raise ValueError(
                f"malformed constraint record {name!r} in param-store file: expected arguments "
                f"{argnames}, got {args!r}"
            )
        return cls(*(_decode_arg(args[a], map_location) for a in argnames))
    raise ValueError(f"unknown constraint {name!r} in param-store file")


# ------------------------------------------------------------------ transforms
_IDENTITY = _tt.identity_transform  # a parameter stored as is (e.g. constraint real)


def _is_identity_affine(t) -> bool:
    return (
        type(t) is _tt.AffineTransform
        and isinstance(t.loc, numbers.Number)
        and isinstance(t.scale, numbers.Number)
        and t.loc == 0
        and t.scale == 1
    )


def _param_transform(constraint):
    """``transform_to(constraint)`` with no-op parts dropped.

    torch maps e.g. ``positive`` to ``exp`` followed by the affine map
    ``0 + 1 * x``; that last step changes no value (and ``exp`` never returns
    -0.0) but costs two tensor ops and two autograd nodes per read, so it is
    left out. A constraint whose transform does nothing gets torch's
    ``identity_transform``, which the store recognises: the stored tensor is
    returned as it is.
    """
    transform = transform_to(constraint)
    if isinstance(transform, _tt.ComposeTransform):
        parts = [t for t in transform.parts if not _is_identity_affine(t)]
        if not parts:
            return _IDENTITY
        if len(parts) == 1:
            return parts[0]
        return transform if len(parts) == len(transform.parts) else _tt.ComposeTransform(parts)
    return _IDENTITY if _is_identity_affine(transform) else transform


# -------------------------------------------------------------------- store
class ParamStoreDict:
    """Global key-value store of learnable parameters, used by ``ember.param``.

    Values are kept unconstrained (``named_parameters``) and returned
    constrained (``store[name]``); the constrained tensor has an
    ``unconstrained()`` method returning the leaf tensor the optimizer updates.

    Example::

        >>> import torch, ember
        >>> from ember.distributions import constraints
        >>> store = ember.get_param_store(); store.clear()
        >>> s = ember.param("s", torch.tensor(2.0), constraint=constraints.positive)
        >>> s.detach(), store["s"].detach()
        (tensor(2.), tensor(2.))
        >>> dict(store.named_parameters())["s"]
        tensor(0.6931, requires_grad=True)
        >>> "s" in store, list(store.keys())
        (True, ['s'])
    """

    def __init__(self):
        self._params: Dict[str, torch.Tensor] = {}
        self._param_to_name: Dict[torch.Tensor, str] = {}
        self._constraints: Dict[str, Any] = {}
        self._transforms: Dict[str, Any] = {}
        # taken by every change of the dicts above and by the snapshots of get_state and
        # save, so that a save never sees a dict change under it (reads take no lock)
        self._lock = threading.RLock()

    # ------------------------------------------------------------ mapping
    def clear(self) -> None:
        """Remove every parameter."""
        with self._lock:
            self._params = {}
            self._param_to_name = {}
            self._constraints = {}
            self._transforms = {}

    def items(self) -> Iterator[Tuple[str, torch.Tensor]]:
        """``(name, constrained value)`` pairs."""
        for name in list(self._params):
            yield name, self[name]

    def keys(self):
        """Parameter names."""
        return self._params.keys()

    def values(self) -> Iterator[torch.Tensor]:
        """Constrained values."""
        for _, value in self.items():
            yield value

    def __bool__(self) -> bool:
        return bool(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __contains__(self, name) -> bool:
        return name in self._params

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._params))

    def __delitem__(self, name: str) -> None:
        with self._lock:
            unconstrained = self._params.pop(name)
            self._param_to_name.pop(unconstrained, None)
            self._constraints.pop(name, None)
            self._transforms.pop(name, None)

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            unconstrained = self._params[name]
        except KeyError:
            raise KeyError(
                f"no parameter named {name!r} in the param store; create it with an initial "
                f"value, e.g. ember.param({name!r}, torch.zeros(...))"
            ) from None
        transform = self._transforms.get(name)
        if transform is None:
            transform = _param_transform(self._constraints[name])
            self._transforms[name] = transform
        if transform is _IDENTITY:
            if "unconstrained" not in unconstrained.__dict__:
                unconstrained.unconstrained = weakref.ref(unconstrained)
            return unconstrained
        constrained = transform(unconstrained)
        if constrained is unconstrained:
            if "unconstrained" not in unconstrained.__dict__:
                unconstrained.unconstrained = weakref.ref(unconstrained)
        else:
            constrained.unconstrained = weakref.ref(unconstrained)
        return constrained

    def __setitem__(self, name: str, new_constrained_value: torch.Tensor) -> None:
        if not isinstance(new_constrained_value, torch.Tensor):
            raise TypeError(
                f"parameter {name!r} must be a torch.Tensor, got "
                f"{type(new_constrained_value).__name__}"
            )
        with self._lock:
            self._store(name, new_constrained_value, self._constraints.get(name, _tc.real))

    def _store(self, name: str, new_constrained_value: torch.Tensor, constraint) -> None:
        """Set ``name`` to the constrained value under ``constraint`` (the lock held)."""
        transform = _param_transform(constraint)
        with torch.no_grad():
            unconstrained = transform.inv(new_constrained_value)
            if unconstrained is new_constrained_value:
                if not (unconstrained.is_leaf and unconstrained.requires_grad):
                    unconstrained = unconstrained.detach()
            unconstrained = unconstrained.contiguous()
        if not unconstrained.requires_grad:
            unconstrained.requires_grad_(True)
        self._constraints[name] = constraint
        self._transforms[name] = transform
        old = self._params.get(name)
        if old is not None:
            self._param_to_name.pop(old, None)
        self._params[name] = unconstrained
        self._param_to_name[unconstrained] = name

    def setdefault(self, name: str, init_constrained_value, constraint=_tc.real) -> torch.Tensor:
        """Create ``name`` from ``init_constrained_value`` (a tensor or a callable returning one)
        unless it exists; return its constrained value.

        For an existing parameter the initial value is ignored; see the module docstring
        for the warning a tensor of another shape draws, and the error (with validation
        on) for another constraint.

        Example::

            >>> import torch, warnings
            >>> store = ParamStoreDict()
            >>> store.setdefault("a", torch.zeros(2)).shape
            torch.Size([2])
            >>> with warnings.catch_warnings(record=True) as w:
            ...     warnings.simplefilter("always")
            ...     store.setdefault("a", torch.zeros(5)).shape
            torch.Size([2])
            >>> print(w[0].message)  # doctest: +ELLIPSIS
            ember.param('a', ...): the initial value (shape (5,)) is ignored: ...shape (2,)...
        """
        if name in self._params:
            value = self[name]
            if constraint is not _tc.real or (
                isinstance(init_constrained_value, torch.Tensor)
                and init_constrained_value.shape != value.shape
            ):
                self._check_reuse(name, value, init_constrained_value, constraint)
            return value
        if callable(init_constrained_value) and not isinstance(
            init_constrained_value, torch.Tensor
        ):
            init_constrained_value = init_constrained_value()
        if not isinstance(init_constrained_value, torch.Tensor):
            raise TypeError(
                f"ember.param({name!r}, ...): the initial value must be a torch.Tensor (or a "
                f"callable returning one), got {type(init_constrained_value).__name__}"
            )
        if is_validation_enabled():
            _check_constraint(name, init_constrained_value, constraint)
        with self._lock:
            if name not in self._params:  # (another thread may have created it meanwhile)
                self._store(name, init_constrained_value, constraint)
        return self[name]

    def _check_reuse(self, name: str, value: torch.Tensor, init, constraint) -> None:
        """Warn (or raise) when ``ember.param(name, init, constraint)`` meets an existing
        parameter with another shape or constraint (the initial value is ignored)."""
        if isinstance(init, torch.Tensor) and init.shape != value.shape:
            warnings.warn(
                f"ember.param({name!r}, ...): the initial value (shape {tuple(init.shape)}) is "
                f"ignored: the parameter exists already with shape {tuple(value.shape)}, and "
                "its stored value is returned. Hint: use another name for a parameter of "
                "another shape, or delete the old one first (ember.get_param_store()"
                f"[{name!r}] can be deleted with del, or clear the store)",
                UserWarning,
                stacklevel=4,
            )
        stored = self._constraints.get(name, _tc.real)
        if constraint is stored or constraint is _tc.real or same_constraint(constraint, stored):
            return
        message = (
            f"ember.param({name!r}, ..., constraint={constraint}): the parameter exists "
            f"already with constraint {stored}, which stays in force (a constraint is fixed "
            "when the parameter is created). Hint: give the same constraint at every call, "
            "or use another name"
        )
        if is_validation_enabled():
            raise ValueError(message)
        warnings.warn(message, UserWarning, stacklevel=4)

    def get_param(self, name: str, init_tensor=None, constraint=_tc.real, event_dim=None):
        """The constrained value of ``name``, creating it from ``init_tensor`` if absent
        (see :meth:`setdefault` for an ``init_tensor`` given for an existing parameter)."""
        if init_tensor is None:
            return self[name]
        return self.setdefault(name, init_tensor, constraint)

    def named_parameters(self) -> Iterator[Tuple[str, torch.Tensor]]:
        """``(name, unconstrained leaf tensor)`` pairs."""
        return iter(list(self._params.items()))

    def get_all_param_names(self):
        """All parameter names."""
        return list(self._params)

    def get_unconstrained(self, name: str) -> torch.Tensor | None:
        """The unconstrained leaf tensor stored as ``name`` (None when absent).

        ``PyroModule`` uses it to keep its own tensors and the store's in agreement.
        """
        return self._params.get(name)

    def replace_param(self, param_name: str, new_param: torch.Tensor, old_param: torch.Tensor):
        """Replace ``param_name`` (currently ``old_param``) with the constrained ``new_param``."""
        current = self._params.get(param_name)
        old_u = old_param.unconstrained() if hasattr(old_param, "unconstrained") else old_param
        if current is None or current is not old_u:
            raise ValueError(
                f"replace_param: {param_name!r} is not currently the given old_param; read it "
                "again with ember.param(name) before replacing it"
            )
        self[param_name] = new_param

    def param_name(self, p: torch.Tensor) -> str | None:
        """The name of the unconstrained parameter ``p`` (None if not in the store)."""
        return self._param_to_name.get(p)

    # --------------------------------------------------------------- state
    def get_state(self) -> dict:
        """``{"params": {name: unconstrained}, "constraints": {name: constraint}}``.

        A consistent snapshot, even while other threads create parameters.
        """
        with self._lock:
            return {"params": dict(self._params), "constraints": dict(self._constraints)}

    def set_state(self, state: dict) -> None:
        """Add the parameters of a :meth:`get_state` result to the store.

        All or nothing: every entry is checked first (names are strings, values
        tensors, constraints constraints), and a bad entry raises a ValueError
        naming it with the store unchanged.

        Example::

            >>> import torch
            >>> store = ParamStoreDict()
            >>> store.set_state({"params": {"a": torch.zeros(1), "b": "oops"}})
            Traceback (most recent call last):
            ...
            ValueError: set_state: parameter 'b' is not a tensor but str; nothing was changed
            >>> len(store)
            0
        """
        if not isinstance(state, dict) or not isinstance(state.get("params"), dict):
            raise ValueError("set_state expects a dict with 'params' (and 'constraints')")
        constraints = state.get("constraints", {})
        if not isinstance(constraints, dict):
            raise ValueError(
                f"set_state: 'constraints' must be a dict of name -> constraint, got "
                f"{type(constraints).__name__}; nothing was changed"
            )
        entries = []
        for name, value in state["params"].items():
            if not isinstance(name, str):
                raise ValueError(
                    f"set_state: parameter names must be strings, got {name!r}; nothing was changed"
                )
            if not isinstance(value, torch.Tensor):
                raise ValueError(
                    f"set_state: parameter {name!r} is not a tensor but "
                    f"{type(value).__name__}; nothing was changed"
                )
            constraint = constraints.get(name, _tc.real)
            if not isinstance(constraint, _tc.Constraint):
                raise ValueError(
                    f"set_state: the constraint of parameter {name!r} is not a constraint but "
                    f"{type(constraint).__name__}; nothing was changed"
                )
            if value.requires_grad and not value.is_leaf:
                raise ValueError(
                    f"set_state: parameter {name!r} is not a leaf tensor (it was computed "
                    "from other tensors); store its .detach() instead; nothing was changed"
                )
            if not value.requires_grad and not (value.is_floating_point() or value.is_complex()):
                raise ValueError(
                    f"set_state: parameter {name!r} has dtype {value.dtype}, which cannot "
                    "require grad; parameters are floating point; nothing was changed"
                )
            entries.append((name, value, constraint))
        with self._lock:
            for name, value, constraint in entries:
                if not value.requires_grad:
                    value.requires_grad_(True)
                old = self._params.get(name)
                if old is not None:
                    self._param_to_name.pop(old, None)
                self._params[name] = value
                self._param_to_name[value] = name
                self._constraints[name] = constraint
                self._transforms.pop(name, None)

    def save(self, filename: Union[str, os.PathLike]) -> None:
        """Write the store to ``filename``, atomically and with a checksum.

        The parameters are snapshotted under the store's lock (other threads may
        go on creating parameters), written to a temporary file that is fsync'ed
        and renamed over ``filename`` (a symlink is written through), behind a
        length and SHA-256 header that :meth:`load` verifies
        (:func:`ember.util.write_checked_file`).

        Example::

            >>> import os, tempfile, torch, ember
            >>> store = ember.get_param_store(); store.clear()
            >>> _ = ember.param("a", torch.ones(2))
            >>> path = os.path.join(tempfile.mkdtemp(), "params.pt")
            >>> store.save(path); store.clear(); store.load(path)
            >>> store["a"]
            tensor([1., 1.], requires_grad=True)
        """
        with self._lock:
            snapshot = [
                (name, value, self._constraints.get(name, _tc.real))
                for name, value in self._params.items()
            ]
        params = {}
        constraints = {}
        for name, value, constraint in snapshot:
            params[name] = value.detach()
            constraints[name] = _encode_constraint(constraint, f"parameter {name!r}")
        state = {
            "format": _FILE_TAG,
            "version": _FILE_VERSION,
            "params": params,
            "constraints": constraints,
        }
        write_checked_file(filename, torch_save_bytes(state))

    def load(self, filename: Union[str, os.PathLike], map_location=None) -> None:
        """Read parameters saved by :meth:`save`; never executes code from the file.

        A file whose checksum or length does not match its contents (corrupted or
        truncated), or that is not a param-store file, raises a ValueError and
        leaves the store unchanged.
        """
        filename = os.fspath(filename)
        payload = read_checked_file(filename)
        try:
            if payload is None:  # the first format: a plain torch.save file
                with open(filename, "rb") as f:
                    state = torch.load(f, map_location=map_location, weights_only=True)
            else:
                state = torch.load(
                    io.BytesIO(payload), map_location=map_location, weights_only=True
                )
        except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError) as e:
            raise ValueError(
                f"{filename!r} is not a readable ember param-store file (only tensors, numbers "
                f"and strings are accepted; files that would run code are refused): {e}"
            ) from None
        if (
            not isinstance(state, dict)
            or state.get("format") != _FILE_TAG
            or not isinstance(state.get("params"), dict)
            or not isinstance(state.get("constraints"), dict)
        ):
            raise ValueError(
                f"{filename!r} is not an ember param-store file (written by ParamStore.save)"
            )
        if state.get("version") not in _READABLE_VERSIONS:
            raise ValueError(
                f"{filename!r}: unsupported param-store version {state.get('version')}"
            )
        if state.get("version") >= 2 and payload is None:
            raise ValueError(
                f"{filename!r}: a version {state['version']} param-store file without its "
                "checksum header; it cannot be verified and is refused"
            )
        params = {}
        constraints = {}
        for name, value in state["params"].items():
            if not isinstance(name, str) or not isinstance(value, torch.Tensor):
                raise ValueError(f"{filename!r}: malformed parameter entry {name!r}")
            if not value.is_floating_point():
                raise ValueError(
                    f"{filename!r}: parameter {name!r} has dtype {value.dtype}; parameters are "
                    "floating point"
                )
            params[name] = value.detach().requires_grad_(True)
            record = state["constraints"].get(name, {"name": "real", "args": {}})
            constraints[name] = _decode_constraint(record, map_location)
        self.set_state({"params": params, "constraints": constraints})

    @contextmanager
    def scope(self, state: dict | None = None):
        """Use a separate set of parameters inside the block (``state`` or empty).

        Example::

            >>> import torch, ember
            >>> store = ember.get_param_store(); store.clear()
            >>> _ = ember.param("outer", torch.zeros(1))
            >>> with store.scope() as inner:
            ...     _ = ember.param("inner", torch.ones(1))
            ...     sorted(store.keys())
            ['inner']
            >>> sorted(store.keys()), sorted(inner["params"])
            (['outer'], ['inner'])
        """
        if state is None:
            state = {"params": {}, "constraints": {}}
        old_state = self.get_state()
        try:
            self.clear()
            self.set_state(state)
            yield state
        finally:
            inner = self.get_state()
            state["params"] = inner["params"]
            state["constraints"] = inner["constraints"]
            self.clear()
            self.set_state(old_state)


def same_constraint(a, b) -> bool:
    """Whether constraints ``a`` and ``b`` are the same: one object, or one class with equal
    arguments (numbers, tensors, nested constraints).

    Example::

        >>> from ember.distributions import constraints
        >>> same_constraint(constraints.interval(0.0, 1.0), constraints.interval(0.0, 1.0))
        True
        >>> same_constraint(constraints.positive, constraints.greater_than(1.0))
        False
    """
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    va, vb = vars(a), vars(b)
    if va.keys() != vb.keys():
        return False
    for key, x in va.items():
        y = vb[key]
        if x is y:
            continue
        if isinstance(x, _tc.Constraint) or isinstance(y, _tc.Constraint):
            if not (isinstance(x, _tc.Constraint) and same_constraint(x, y)):
                return False
        elif isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
            x, y = torch.as_tensor(x), torch.as_tensor(y)
            if x.shape != y.shape or not torch.equal(x, y.to(x.dtype)):
                return False
        elif x != y:
            return False
    return True


def _check_constraint(name, value, constraint) -> None:
    try:
        ok = constraint.check(value)
    except (RuntimeError, ValueError, IndexError) as e:
        raise ValueError(
            f"ember.param({name!r}): initial value of shape {tuple(value.shape)} cannot be "
            f"checked against constraint {constraint}: {e}"
        ) from None
    if isinstance(ok, torch.Tensor):
        bad = not bool(ok.all())
    else:
        bad = not ok
    if bad:
        sample = value.detach().flatten()[:5].tolist()
        raise ValueError(
            f"ember.param({name!r}): initial value violates its constraint {constraint} "
            f"(shape {tuple(value.shape)}, first values {sample}). Hint: give an initial value "
            "inside the constraint's support, e.g. a positive tensor for constraints.positive."
        )


# Pyro's name for the class.
ParamStore = ParamStoreDict

#: The global parameter store used by ``ember.param``.
_PYRO_PARAM_STORE = ParamStoreDict()


def get_param_store() -> ParamStoreDict:
    """The global :class:`ParamStoreDict` (also ``ember.get_param_store()``).

    Example::

        >>> from ember.params.param_store import get_param_store
        >>> import ember
        >>> get_param_store() is ember.get_param_store()
        True
    """
    return _PYRO_PARAM_STORE
