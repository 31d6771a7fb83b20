"""PyroOptim: a torch optimizer that takes up parameters as they appear.

Inference code creates parameters on the fly (``ember.param`` inside a model
or a guide), so the optimizer cannot be told its parameters up front.
:class:`PyroOptim` is called with the parameters of the current step; the ones
it has not seen yet are taken up into a *group*, and every group is one torch
optimizer whose single ``param_group`` holds all parameters that share the
same optimizer arguments. With a dict of arguments there is a single group, so
torch's multi-tensor (foreach) kernels update every parameter in one pass,
instead of one optimizer per parameter.

Optimizer state is saved and restored per parameter *name* (the name the
parameter has in ember's param store), in the layout of a one-parameter torch
``state_dict``: ``{name: {"state": {0: ...}, "param_groups": [{..., "params": [0]}]}}``.
"""

from __future__ import annotations

import copy
import inspect
import io
import operator
import os
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import torch
from torch.optim import Optimizer

from ember.optim.adagrad_rmsprop import AdagradRMSProp as _AdagradRMSPropOptimizer
from ember.optim.clipped_adam import ClippedAdam as _ClippedAdamOptimizer
from ember.optim.dct_adam import DCTAdam as _DCTAdamOptimizer
from ember.optim.dct_adam import moment_shape
from ember.params.param_store import (
    MODULE_NAMESPACE_DIVIDER,
    get_param_store,
    normalize_param_name,
)
from ember.util import read_checked_file, torch_save_bytes, write_checked_file

__all__ = ["AdagradRMSProp", "ClippedAdam", "DCTAdam", "PyroOptim", "OptimArgs", "is_scheduler"]

#: ``optim_args``: a dict of optimizer arguments, or a callable returning such a dict:
#: of one argument, the parameter's full name in ``named_parameters()`` form
#: (``"encoder.fc.weight"``), or of two, ``(module_name, param_name)``.
OptimArgs = Union[Dict[str, Any], Callable[[Optional[str], str], Dict[str, Any]]]

_CLIP_KEYS = ("clip_norm", "clip_value")
# Per-parameter state entries that must have the parameter's shape.
_SHAPED_STATE_KEYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer", "square_avg")
# torch optimizers whose fused CPU kernel ember uses when the user chose no kernel: one
# kernel call per step instead of a dozen ops and a host read per parameter (same update
# up to rounding in the last bit)
_AUTO_FUSED = (torch.optim.Adam, torch.optim.AdamW)
_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_KERNEL_CHOICES = ("fused", "foreach", "capturable", "differentiable")


def is_scheduler(optimizer: Any) -> bool:
    """Whether ``optimizer`` is a learning-rate scheduler around a torch optimizer.

    Duck-typed, like the torch objects it is meant for: a torch scheduler (any
    ``LRScheduler`` subclass, or ``ReduceLROnPlateau``) holds the optimizer it
    drives as ``.optimizer``; a torch optimizer does not.

    Example::

        >>> import torch
        >>> from ember.optim.optim import is_scheduler
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        >>> is_scheduler(opt), is_scheduler(torch.optim.lr_scheduler.StepLR(opt, 1))
        (False, True)
    """
    return hasattr(optimizer, "optimizer")


def _param_name_in_store(p: torch.Tensor) -> str | None:
    """The name of ``p`` in ember's global param store, or ``None`` if it is not there."""
    return get_param_store().param_name(p)


def _split_name(name: str) -> Tuple[str | None, str]:
    """``"encoder$$$fc.weight"`` -> ``("encoder", "fc.weight")``; no module -> ``None``."""
    if MODULE_NAMESPACE_DIVIDER in name:
        module_name, param_name = name.split(MODULE_NAMESPACE_DIVIDER, 1)
        return module_name, param_name
    return None, name


def _positional_arity(fn: Callable) -> int:
    """How many positional arguments ``fn`` takes (2 when it cannot be inspected)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(q.kind is inspect.Parameter.VAR_POSITIONAL for q in params):
        return 2
    return sum(1 for q in params if q.kind in kinds)


def _freeze(value: Any) -> Any:
    """A hashable key for an argument dict, so equal arguments share a group."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, torch.Tensor):
        return ("tensor", id(value))
    try:
        hash(value)
    except TypeError:
        return ("object", id(value))
    return value


def _clone_state(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _clone_state(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_clone_state(v) for v in value)
    return copy.copy(value)


class OptimizerGroup:
    """One torch optimizer with its one param group, its clip settings and its scheduler.

    :class:`PyroOptim` keeps one group per distinct set of optimizer arguments; a
    scheduler (:class:`~ember.optim.lr_scheduler.PyroLRScheduler`) attaches to each
    group as it is created.
    """

    __slots__ = ("optimizer", "clip", "scheduler", "auto_fuse", "fused")

    def __init__(self, optimizer: Optimizer, clip: Dict[str, float] | None, auto_fuse=False):
        self.optimizer = optimizer
        self.clip = clip
        self.scheduler = None
        # auto_fuse: a torch Adam/AdamW built without a kernel choice (fused, foreach), so
        # ember may step it with torch's fused kernel; fused: whether it does now
        self.auto_fuse = auto_fuse
        self.fused = False

    @property
    def params(self) -> List[torch.Tensor]:
        return self.optimizer.param_groups[0]["params"]


def _set_fused(group: OptimizerGroup) -> None:
    """Let ``group``'s Adam use torch's fused kernel when its parameters and options allow."""
    options = group.optimizer.param_groups[0]
    fused = group.fused and not any(
        options.get(k) for k in ("foreach", "capturable", "differentiable")
    )
    options["fused"] = True if fused else None


class _Entry:
    """What the optimizer knows about one parameter."""

    __slots__ = ("tensor", "name", "group")

    def __init__(self, tensor: torch.Tensor, name: str, group: OptimizerGroup):
        self.tensor = tensor
        self.name = name
        self.group = group


class PyroOptim:
    """Wrap a torch optimizer class so it takes up parameters as they appear.

    Call the instance with the (unconstrained) parameters of a step, after
    their gradients have been computed: ``optim(params)``. Parameters seen for
    the first time join the group of parameters with the same arguments (one
    torch optimizer per distinct argument dict, each with one param group);
    then every group that holds a passed parameter takes one step. Parameters
    whose ``.grad`` is ``None`` are left unchanged, as are known parameters not
    passed in this call.

    :param optim_constructor: a ``torch.optim.Optimizer`` subclass (or a callable
        ``(params, **optim_args) -> Optimizer``).
    :param optim_args: a dict of the optimizer's arguments (e.g. ``{"lr": 0.01}``),
        or a callable of ``(module_name, param_name)`` returning such a dict, where
        ``param_name`` is the parameter's name in the param store and
        ``module_name`` the prefix before ``"$$$"`` for parameters of an
        ``ember.module`` (else ``None``). Parameters with equal arguments share
        one group.
    :param clip_args: ``None``, a dict with ``clip_norm`` (each parameter's
        gradient is rescaled so its 2-norm is at most ``clip_norm``) and/or
        ``clip_value`` (gradients are clamped elementwise), or a callable of
        ``(module_name, param_name)`` returning such a dict.

    Parameters that are not in ember's param store (plain tensors) are named
    ``"_param_0"``, ``"_param_1"``, ... in the order they are first seen.

    Example::

        >>> import torch
        >>> from ember.optim import PyroOptim
        >>> x = torch.tensor([0.0, 0.0], requires_grad=True)
        >>> optim = PyroOptim(torch.optim.SGD, {"lr": 0.1})
        >>> ((x - torch.tensor([1.0, 2.0])) ** 2).sum().backward()
        >>> optim([x])
        >>> x.detach()
        tensor([0.2000, 0.4000])
        >>> sorted(optim.get_state())
        ['_param_0']
    """

    def __init__(
        self,
        optim_constructor: Callable[..., Optimizer],
        optim_args: OptimArgs,
        clip_args: OptimArgs | None = None,
    ):
        if not callable(optim_constructor):
            raise TypeError(
                "PyroOptim: optim_constructor must be a torch.optim.Optimizer class, "
                f"got {optim_constructor!r}"
            )
        if not (isinstance(optim_args, dict) or callable(optim_args)):
            raise TypeError(
                "PyroOptim: optim_args must be a dict such as {'lr': 0.01} or a callable "
                f"(module_name, param_name) -> dict, got {type(optim_args).__name__}"
            )
        if clip_args is not None and not (isinstance(clip_args, dict) or callable(clip_args)):
            raise TypeError(
                "PyroOptim: clip_args must be None, a dict such as {'clip_norm': 10.0} "
                f"or a callable (module_name, param_name) -> dict, got {type(clip_args).__name__}"
            )
        if isinstance(optim_args, dict):
            self._check_args(optim_args, "optim_args")
        if isinstance(clip_args, dict):
            self._check_clip(clip_args, "clip_args")
        self.pt_optim_constructor = optim_constructor
        self.pt_optim_args = optim_args
        self.pt_clip_args = clip_args
        self._groups: Dict[Any, OptimizerGroup] = {}
        self._entries: Dict[int, _Entry] = {}  # id(tensor) -> entry
        self._by_name: Dict[str, _Entry] = {}
        self._pending: Dict[str, dict] = {}  # saved state of parameters not seen yet
        self._num_unnamed = 0
        # (params of the last call, [(group, its params)]): reused while the params repeat
        self._plan: tuple | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pt_optim_args!r})"

    # ----------------------------------------------------------------- stepping
    @property
    def optim_objs(self) -> Dict[torch.Tensor, Any]:
        """Each parameter taken up so far, mapped to the torch object that steps it.

        That is the group's torch optimizer, or its learning-rate scheduler when one
        is attached (the scheduler's ``.optimizer`` is then the torch optimizer).
        Parameters with equal optimizer arguments share one object.
        """
        return {
            e.tensor: e.group.scheduler if e.group.scheduler is not None else e.group.optimizer
            for e in self._entries.values()
        }

    def __call__(self, params: Iterable[torch.Tensor], *args, **kwargs) -> None:
        """Take up new parameters, clip their gradients and take one step.

        :param params: the parameters of this step (their gradients computed).
        :param args, kwargs: passed on to each torch optimizer's ``step``
            (e.g. ``closure=...`` for LBFGS).
        """
        if not isinstance(params, (list, tuple)):
            params = list(params)
        plan = self._plan
        if (
            plan is None
            or len(plan[0]) != len(params)
            or not all(map(operator.is_, plan[0], params))
        ):
            plan = self._make_plan(params)
        for group, group_params in plan[1]:
            if group.auto_fuse:
                _set_fused(group)
            if group.clip is not None:
                self._clip(group.clip, group_params)
            self._step_group(group, group_params, args, kwargs)

    def _make_plan(self, params) -> tuple:
        """Take up new parameters and sort ``params`` into their groups.

        The result is kept: the next call with the same parameters (the same
        tensors, in the same order: the usual case, step after step) reuses it.
        """
        passed: Dict[int, List[torch.Tensor]] = {}
        groups: Dict[int, OptimizerGroup] = {}
        for p in params:
            if not isinstance(p, torch.Tensor):
                raise TypeError(
                    f"{type(self).__name__}: expected an iterable of tensors, got an element "
                    f"of type {type(p).__name__}"
                )
            entry = self._entries.get(id(p))
            if entry is None or entry.tensor is not p:
                entry = self._take_up(p)
            key = id(entry.group)
            groups[key] = entry.group
            passed.setdefault(key, []).append(p)
        for group in groups.values():
            if group.auto_fuse:
                group.fused = all(
                    q.is_cpu and q.dtype in _FUSED_DTYPES and q.layout is torch.strided
                    for q in group.params
                )
        plan = (tuple(params), [(group, passed[key]) for key, group in groups.items()])
        self._plan = plan
        return plan

    @staticmethod
    def _step_group(group: OptimizerGroup, passed: List[torch.Tensor], args, kwargs) -> None:
        if len(passed) == len(group.params):
            group.optimizer.step(*args, **kwargs)
            return
        # Hide the gradients of this group's parameters that were not passed.
        passed_ids = {id(p) for p in passed}
        hidden = [
            (q, q.grad) for q in group.params if id(q) not in passed_ids and q.grad is not None
        ]
        for q, _ in hidden:
            q.grad = None
        try:
            group.optimizer.step(*args, **kwargs)
        finally:
            for q, g in hidden:
                q.grad = g

    @staticmethod
    def _clip(clip: Dict[str, float], params: List[torch.Tensor]) -> None:
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        if "clip_norm" in clip:
            max_norm = float(clip["clip_norm"])
            for g in grads:  # each parameter's gradient separately
                norm = torch.linalg.vector_norm(g)
                g.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))
        if "clip_value" in clip:
            v = float(clip["clip_value"])
            for g in grads:
                g.clamp_(-v, v)

    # ------------------------------------------------------- taking parameters up
    def _name_of(self, p: torch.Tensor) -> str:
        name = _param_name_in_store(p)
        if name is None:
            name = f"_param_{self._num_unnamed}"
            self._num_unnamed += 1
        return name

    @staticmethod
    def _check_args(args: Any, what: str) -> Dict[str, Any]:
        if not isinstance(args, dict):
            raise TypeError(f"PyroOptim: {what} must give a dict, got {type(args).__name__}")
        if "params" in args:
            raise ValueError(
                f"PyroOptim: {what} must not contain 'params'; parameters are taken up "
                "when the optimizer is called with them"
            )
        return args

    @staticmethod
    def _check_clip(clip: Any, what: str) -> Dict[str, float] | None:
        if clip is None:
            return None
        if not isinstance(clip, dict):
            raise TypeError(f"PyroOptim: {what} must give a dict, got {type(clip).__name__}")
        unknown = set(clip) - set(_CLIP_KEYS)
        if unknown:
            raise ValueError(
                f"PyroOptim: unknown {what} keys {sorted(unknown)}; expected "
                f"'clip_norm' and/or 'clip_value'"
            )
        for k, v in clip.items():
            if not float(v) > 0:
                raise ValueError(f"PyroOptim: {what}[{k!r}] must be positive, got {v!r}")
        return clip or None

    def _args_for(self, spec: Any, name: str) -> Any:
        if callable(spec) and not isinstance(spec, dict):
            if _positional_arity(spec) == 1:
                return spec(normalize_param_name(name))
            module_name, param_name = _split_name(name)
            return spec(module_name, param_name)
        return spec

    def _take_up(self, p: torch.Tensor) -> _Entry:
        self._plan = None
        name = self._name_of(p)
        old = self._by_name.get(name)
        if old is not None:
            self._forget(old)  # a new tensor under a known name replaces the old one
        args = self._check_args(self._args_for(self.pt_optim_args, name), "optim_args")
        clip = self._check_clip(self._args_for(self.pt_clip_args, name), "clip_args")
        key = (_freeze(args), _freeze(clip))
        group = self._groups.get(key)
        if group is None:
            try:
                optimizer = self.pt_optim_constructor([p], **args)
            except (TypeError, ValueError) as e:
                raise type(e)(
                    f"{type(self).__name__}: could not build "
                    f"{getattr(self.pt_optim_constructor, '__name__', self.pt_optim_constructor)}"
                    f" for parameter {name!r} with arguments {args!r}: {e}"
                ) from e
            auto_fuse = type(optimizer) in _AUTO_FUSED and not any(
                k in args for k in _KERNEL_CHOICES
            )
            group = OptimizerGroup(optimizer, clip, auto_fuse)
            self._groups[key] = group
            self._group_created(group)
        else:
            group.params.append(p)
        entry = _Entry(p, name, group)
        self._entries[id(p)] = entry
        self._by_name[name] = entry
        pending = self._pending.pop(name, None)
        if pending is not None:
            self._apply_state(entry, pending)
        return entry

    def _group_created(self, group: OptimizerGroup) -> None:
        """Hook for subclasses (the schedulers attach one scheduler per group)."""

    def _forget(self, entry: _Entry) -> None:
        self._plan = None
        group = entry.group
        group.params[:] = [q for q in group.params if q is not entry.tensor]
        group.optimizer.state.pop(entry.tensor, None)
        del self._entries[id(entry.tensor)]
        del self._by_name[entry.name]

    # ------------------------------------------------------------------- state
    def _entry_state(self, entry: _Entry) -> dict:
        optimizer = entry.group.optimizer
        pstate = optimizer.state.get(entry.tensor, {})
        options = {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}
        if entry.group.auto_fuse:
            options["fused"] = None  # the kernel is ember's choice, not the user's
        state = {
            "state": {0: _clone_state(dict(pstate))},
            "param_groups": [dict(_clone_state(options), params=[0])],
        }
        if entry.group.scheduler is not None:
            state["scheduler"] = _clone_state(entry.group.scheduler.state_dict())
        return state

    def get_state(self) -> Dict[str, dict]:
        """The optimizer state of every parameter, keyed by parameter name.

        Each value has the layout of a one-parameter torch ``state_dict``:
        ``{"state": {0: {...}}, "param_groups": [{"lr": ..., ..., "params": [0]}]}``
        (plus ``"scheduler"`` for the learning-rate schedulers). Tensors are
        copies, so the snapshot does not change as training goes on. State
        loaded for parameters not seen since is included unchanged.
        """
        state = {name: _clone_state(s) for name, s in self._pending.items()}
        for name, entry in self._by_name.items():
            state[name] = self._entry_state(entry)
        return state

    def set_state(self, state_dict: Dict[str, dict]) -> None:
        """Restore state from :meth:`get_state`; parameters not seen yet get it on arrival.

        All or nothing: every entry is checked (layout, and the shapes of state
        tensors against parameters already taken up) before any is applied, so a
        bad entry raises a ValueError naming it and changes nothing.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(
                f"{type(self).__name__}.set_state: expected a dict of parameter name -> state, "
                f"got {type(state_dict).__name__}"
            )
        for name, entry_state in state_dict.items():
            groups = entry_state.get("param_groups") if isinstance(entry_state, dict) else None
            if (
                not isinstance(entry_state, dict)
                or not isinstance(entry_state.get("state"), dict)
                or not isinstance(groups, (list, tuple))
                or not all(isinstance(g, dict) for g in groups)
                or not all(isinstance(v, dict) for v in entry_state["state"].values())
            ):
                raise ValueError(
                    f"{type(self).__name__}.set_state: the state of parameter {name!r} is not "
                    "in the layout get_state() returns ({'state': {...}, 'param_groups': [...]})"
                    "; nothing was changed"
                )
        prepared = []
        for name, entry_state in state_dict.items():
            entry = self._by_name.get(name)
            if entry is not None:
                prepared.append((entry, self._prepare_state(entry, entry_state)))
        for name, entry_state in state_dict.items():
            if name not in self._by_name:
                self._pending[name] = entry_state
        for entry, restored in prepared:
            self._commit_state(entry, *restored)

    def _apply_state(self, entry: _Entry, saved: dict) -> None:
        self._commit_state(entry, *self._prepare_state(entry, saved))

    def _prepare_state(self, entry: _Entry, saved: dict) -> tuple:
        """The per-parameter state, group options and scheduler state of ``saved``, copied
        and checked against ``entry``'s parameter (nothing is changed yet)."""
        p = entry.tensor
        per_param = saved["state"]
        pstate = per_param.get(0, next(iter(per_param.values()), {})) if per_param else {}
        restored = {}
        shape = moment_shape(p)  # the parameter's shape (augmented for DCTAdam's time series)
        for k, v in pstate.items():
            if isinstance(v, torch.Tensor):
                if k in _SHAPED_STATE_KEYS and v.shape != shape:
                    raise ValueError(
                        f"{type(self).__name__}: saved optimizer state {k!r} of parameter "
                        f"{entry.name!r} has shape {tuple(v.shape)} but the parameter has shape "
                        f"{tuple(p.shape)}; was the state saved for a different model? "
                        "(nothing was changed)"
                    )
                if k == "step":
                    v = v.detach().clone()
                elif v.is_floating_point():
                    v = v.detach().to(device=p.device, dtype=p.dtype).clone()
                else:
                    v = v.detach().to(device=p.device).clone()
            else:
                v = _clone_state(v)
            restored[k] = v
        groups = saved["param_groups"]
        options = {}
        if groups:
            options = {k: _clone_state(v) for k, v in groups[0].items() if k != "params"}
        scheduler = None
        if entry.group.scheduler is not None and "scheduler" in saved:
            scheduler = _clone_state(saved["scheduler"])
        return restored, options, scheduler

    @staticmethod
    def _commit_state(entry: _Entry, restored: dict, options: dict, scheduler) -> None:
        group = entry.group
        group.optimizer.state[entry.tensor] = restored
        group.optimizer.param_groups[0].update(options)
        if scheduler is not None:
            group.scheduler.load_state_dict(scheduler)

    def save(self, filename: Union[str, os.PathLike]) -> None:
        """Save the optimizer state to ``filename``, atomically and with a checksum.

        The file is written next to its destination, fsync'ed and renamed over it
        (a symlink is written through), behind a length and SHA-256 header that
        :meth:`load` verifies (:func:`ember.util.write_checked_file`): a crash
        never leaves a half-written file, and a corrupted one is refused.
        """
        write_checked_file(filename, torch_save_bytes(self.get_state()))

    def load(self, filename: Union[str, os.PathLike]) -> None:
        """Load optimizer state saved by :meth:`save` (no code in the file is run).

        The file is read with ``torch.load(..., weights_only=True)``; state
        tensors are moved to each parameter's device and dtype when applied. A
        corrupted or truncated file, or one that is not an optimizer state file,
        raises a ValueError and changes nothing. Files without the checksum
        header (written by earlier versions, or by ``torch.save(get_state())``)
        still load.
        """
        filename = os.fspath(filename)
        payload = read_checked_file(filename)
        try:
            source = filename if payload is None else io.BytesIO(payload)
            state = torch.load(source, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as e:  # unpickling errors of foreign or unsafe files
            raise ValueError(
                f"{type(self).__name__}.load: {filename!r} is not an optimizer "
                f"state file written by save() ({type(e).__name__}: {e})"
            ) from e
        if not isinstance(state, dict):
            raise ValueError(
                f"{type(self).__name__}.load: {filename!r} is not an optimizer state file "
                f"written by save() (it holds a {type(state).__name__}, not a dict)"
            )
        self.set_state(state)


class ClippedAdam(PyroOptim):
    """:class:`~ember.optim.PyroOptim` over :class:`ember.optim.clipped_adam.ClippedAdam`.

    :param optim_args: a dict (or a callable of ``(module_name, param_name)``
        returning one) with any of ``lr`` (1e-3), ``betas`` ((0.9, 0.999)),
        ``eps`` (1e-8), ``weight_decay`` (0), ``clip_norm`` (10.0: gradients are
        clamped elementwise to ``[-clip_norm, clip_norm]``) and ``lrd`` (1.0: the
        learning rate is multiplied by ``lrd`` at the start of every step, as in Pyro).
    :param clip_args: optional extra clipping, as for :class:`~ember.optim.PyroOptim`.

    Example::

        >>> import torch
        >>> from ember.optim import ClippedAdam
        >>> x = torch.zeros(2, requires_grad=True)
        >>> optim = ClippedAdam({"lr": 0.1, "clip_norm": 1.0, "lrd": 0.9})
        >>> (x * torch.tensor([50.0, -0.5])).sum().backward()
        >>> optim([x])
        >>> x.detach()  # the first Adam step moves each coordinate by lr * lrd
        tensor([-0.0900,  0.0900])
    """

    torch_optimizer = _ClippedAdamOptimizer

    def __init__(self, optim_args: OptimArgs, clip_args: OptimArgs | None = None):
        super().__init__(_ClippedAdamOptimizer, optim_args, clip_args)


class AdagradRMSProp(PyroOptim):
    """:class:`~ember.optim.PyroOptim` over :class:`ember.optim.adagrad_rmsprop.AdagradRMSProp`.

    :param optim_args: a dict (or a callable of ``(module_name, param_name)``
        returning one) with any of ``eta`` (1.0), ``delta`` (1e-16) and ``t`` (0.1).
    :param clip_args: optional gradient clipping, as for :class:`~ember.optim.PyroOptim`.

    Example::

        >>> import torch
        >>> from ember.optim import AdagradRMSProp
        >>> x = torch.zeros(2, requires_grad=True)
        >>> optim = AdagradRMSProp({"eta": 0.5, "delta": 0.0})
        >>> (x * torch.tensor([1.0, -3.0])).sum().backward()
        >>> optim([x])
        >>> x.detach()  # -eta * g / (1 + |g|) at the first step
        tensor([-0.2500,  0.3750])
    """

    torch_optimizer = _AdagradRMSPropOptimizer

    def __init__(self, optim_args: OptimArgs, clip_args: OptimArgs | None = None):
        super().__init__(_AdagradRMSPropOptimizer, optim_args, clip_args)


class DCTAdam(PyroOptim):
    """:class:`~ember.optim.PyroOptim` over :class:`ember.optim.dct_adam.DCTAdam`.

    :param optim_args: a dict (or a callable of ``(module_name, param_name)``
        returning one) with any of ``lr`` (1e-3), ``betas`` ((0.9, 0.999)),
        ``eps`` (1e-8), ``clip_norm`` (10.0), ``lrd`` (1.0) and
        ``subsample_aware`` (False).
    :param clip_args: optional extra clipping, as for :class:`~ember.optim.PyroOptim`.

    Example::

        >>> import torch
        >>> from ember.optim import DCTAdam
        >>> x = torch.zeros(2, requires_grad=True)
        >>> optim = DCTAdam({"lr": 0.1})
        >>> (x * torch.tensor([2.0, -0.5])).sum().backward()
        >>> optim([x])
        >>> x.detach()  # the first Adam step moves each entry by about lr
        tensor([-0.1000,  0.1000])
    """

    torch_optimizer = _DCTAdamOptimizer

    def __init__(self, optim_args: OptimArgs, clip_args: OptimArgs | None = None):
        super().__init__(_DCTAdamOptimizer, optim_args, clip_args)
