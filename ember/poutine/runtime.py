"""The handler stack, the message and ``apply_stack``: the core of ember's runtime.

Every effectful call (``ember.sample``, ``ember.param``, ...) builds a
*message* (a plain dict) and hands it to :func:`apply_stack`, which walks the
active handlers from the innermost out (``_process_message``), runs the
default behaviour (draw a value), then walks back (``_postprocess_message``).

The stack is an immutable tuple kept in a :class:`contextvars.ContextVar`, so
every thread (and every ``contextvars`` context, e.g. an asyncio task) sees
its own stack: entering a handler replaces the tuple, never mutates a shared
list. Plate dims are allocated per context too (:data:`_DIM_ALLOCATOR`).

Example::

    >>> import ember, ember.distributions as dist
    >>> from ember.poutine.runtime import am_i_wrapped, get_stack
    >>> am_i_wrapped()
    False
    >>> with ember.poutine.trace() as tr:
    ...     len(get_stack())
    1
"""

from __future__ import annotations

import contextvars
import functools
from typing import Any, Callable, Dict, NamedTuple, Tuple

try:  # Python >= 3.8
    from typing import TypedDict
except ImportError:  # pragma: no cover
    TypedDict = dict

__all__ = [
    "CondIndepStackFrame",
    "Message",
    "NonlocalExit",
    "am_i_wrapped",
    "apply_stack",
    "default_process_message",
    "effectful",
    "get_stack",
    "get_mask",
    "get_plates",
]

from ember.params.param_store import _PYRO_PARAM_STORE  # noqa: E402,F401  (Pyro's location)

# The handler stack of the current context: a tuple, outermost handler first.
_STACK: contextvars.ContextVar = contextvars.ContextVar("ember_handler_stack", default=())
_get_stack = _STACK.get
_UNSET = object()


class Message(TypedDict, total=False):
    """The dict passed down and up the handler stack for one effectful call.

    Keys (as in Pyro): ``type``, ``name``, ``fn``, ``is_observed``, ``args``,
    ``kwargs``, ``value``, ``infer``, ``scale``, ``mask``,
    ``cond_indep_stack``, ``done``, ``stop``, ``continuation``. A trace site
    has the same keys, plus cached ``log_prob`` etc. once computed.

    Example::

        >>> from ember.poutine.runtime import Message
        >>> sorted(Message(type="sample", name="x"))
        ['name', 'type']
    """

    type: str
    name: str | None
    fn: Callable
    is_observed: bool
    args: tuple
    kwargs: dict
    value: Any
    infer: dict
    scale: Any
    mask: Any
    cond_indep_stack: tuple
    done: bool
    stop: bool
    continuation: Callable | None


class CondIndepStackFrame(NamedTuple):
    """One plate around a site: ``name``, ``dim`` (None when sequential),
    ``size`` (the subsample size), ``counter`` (iteration of a sequential plate)
    and ``full_size`` (the size before subsampling).

    Example::

        >>> from ember.poutine.runtime import CondIndepStackFrame
        >>> f = CondIndepStackFrame("data", -1, 10, 0, 100)
        >>> f.vectorized, f.dim, f.size
        (True, -1, 10)
    """

    name: str
    dim: int | None
    size: int
    counter: int
    full_size: int | None = None

    @property
    def vectorized(self) -> bool:
        return self.dim is not None

    def _key(self):
        """A hashable identity: ``(name, dim)`` when vectorized, else ``(name, counter)``."""
        if self.dim is not None:
            return (self.name, self.dim, None)
        return (self.name, None, self.counter)


class NonlocalExit(Exception):
    """Raised by ``poutine.escape`` to leave a model early at ``site``.

    Example::

        >>> from ember.poutine.runtime import NonlocalExit
        >>> NonlocalExit({"name": "z"}).site["name"]
        'z'
    """

    def __init__(self, site, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.site = site

    def reset_stack(self) -> None:
        """Reset the state of handlers that saw the escape, up to a block that hides the site."""
        from ember.poutine.block_messenger import BlockMessenger

        for frame in reversed(_get_stack()):
            frame._reset()
            if type(frame) is BlockMessenger and frame.hide_fn(self.site):
                break


def get_stack() -> Tuple:
    """The handlers active in this context, outermost first (an immutable tuple).

    Example::

        >>> from ember.poutine.runtime import get_stack
        >>> get_stack()
        ()
    """
    return _get_stack()


def _push(handler) -> None:
    _STACK.set(_get_stack() + (handler,))


def _pop(handler) -> None:
    """Remove ``handler`` and every handler entered after it."""
    stack = _get_stack()
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is handler:
            _STACK.set(stack[:i])
            return


def am_i_wrapped() -> bool:
    """Whether any handler is active in this context.

    Example::

        >>> import ember
        >>> from ember.poutine.runtime import am_i_wrapped
        >>> with ember.poutine.block():
        ...     am_i_wrapped()
        True
    """
    return bool(_get_stack())


def default_process_message(msg) -> None:
    """Run ``msg["fn"]`` unless a handler already gave the message a value."""
    if msg["done"] or msg["is_observed"] or msg["value"] is not None:
        msg["done"] = True
        return
    msg["value"] = msg["fn"](*msg["args"], **msg["kwargs"])
    msg["done"] = True


def _apply(stack, msg) -> None:
    n = len(stack)
    i = n - 1
    if msg["stop"]:
        i = _apply_stopped(stack, msg)
    else:
        mtype = msg["type"]
        while i >= 0:
            frame = stack[i]
            hook = frame._process_hooks.get(mtype, _UNSET)
            if hook is _UNSET:
                hook = type(frame)._resolve_hook(mtype, post=False)
            if hook is not None:
                hook(frame, msg)
                if msg["stop"]:
                    if i and msg["type"] == "sample" and msg["cond_indep_stack"]:
                        # Outer plates never see this message: broadcast it here.
                        from ember.poutine.plate_messenger import broadcast_to_plates

                        broadcast_to_plates(msg)
                    break
                mtype = msg["type"]  # (a handler may change the type)
            i -= 1
        if i < 0:
            i = 0
    # default_process_message, inlined on the hot path
    if not (msg["done"] or msg["is_observed"] or msg["value"] is not None):
        msg["value"] = msg["fn"](*msg["args"], **msg["kwargs"])
    msg["done"] = True
    while i < n:
        frame = stack[i]
        mtype = msg["type"]
        hook = frame._post_hooks.get(mtype, _UNSET)
        if hook is _UNSET:
            hook = type(frame)._resolve_hook(mtype, post=True)
        if hook is not None:
            hook(frame, msg)
        i += 1
    cont = msg["continuation"]
    if cont is not None:
        cont(msg)


def _apply_stopped(stack, msg) -> int:
    """The process walk for a message that arrives with ``stop`` already set: the
    innermost handler sees it, then the walk ends. Returns that handler's index."""
    i = len(stack) - 1
    if i >= 0:
        frame = stack[i]
        hook = frame._process_hooks.get(msg["type"], _UNSET)
        if hook is _UNSET:
            hook = type(frame)._resolve_hook(msg["type"], post=False)
        if hook is not None:
            hook(frame, msg)
        if i and msg["type"] == "sample" and msg["cond_indep_stack"]:
            from ember.poutine.plate_messenger import broadcast_to_plates

            broadcast_to_plates(msg)
    return max(i, 0)


def apply_stack(msg) -> None:
    """Send ``msg`` down the handler stack and back up, filling ``msg["value"]``.

    Handlers are visited innermost first by ``_process_message``; one that sets
    ``msg["stop"]`` hides the message from the handlers outside it. Then the
    default behaviour runs (``msg["fn"](*args, **kwargs)`` unless a value is
    set), then ``_postprocess_message`` runs on the visited handlers,
    outermost first, then ``msg["continuation"]`` if any.

    Example::

        >>> import torch
        >>> from ember.poutine.runtime import apply_stack
        >>> msg = dict(type="sample", name="x", fn=lambda: torch.tensor(1.0), args=(),
        ...            kwargs={}, value=None, is_observed=False, infer={}, scale=1.0,
        ...            mask=None, cond_indep_stack=(), done=False, stop=False,
        ...            continuation=None)
        >>> apply_stack(msg); msg["value"]
        tensor(1.)
    """
    _apply(_get_stack(), msg)


def new_message(type, name, fn, args=(), kwargs=None, value=None, is_observed=False, infer=None):
    """A fresh message dict with every key set to its default.

    Example::

        >>> from ember.poutine.runtime import new_message
        >>> msg = new_message("sample", "x", lambda: 1)
        >>> msg["scale"], msg["cond_indep_stack"], msg["done"]
        (1.0, (), False)
    """
    return {
        "type": type,
        "name": name,
        "fn": fn,
        "is_observed": is_observed,
        "args": args,
        "kwargs": {} if kwargs is None else kwargs,
        "value": value,
        "infer": {} if infer is None else infer,
        "scale": 1.0,
        "mask": None,
        "cond_indep_stack": (),
        "done": False,
        "stop": False,
        "continuation": None,
    }


def effectful(fn: Callable | None = None, type: str | None = None) -> Callable:
    """Make ``fn`` an effectful primitive whose calls go through the handler stack.

    The wrapped function takes extra keyword arguments ``name``, ``infer`` and
    ``obs`` (the observed value, which short-circuits ``fn``). With no handler
    active it just calls ``fn``.

    Example::

        >>> import ember
        >>> from ember.poutine.runtime import effectful
        >>> double = effectful(lambda x: 2 * x, type="double")
        >>> double(3, name="d")
        6
        >>> with ember.poutine.trace() as tr:
        ...     _ = double(4, name="d")
        >>> tr.trace.nodes["d"]["value"], tr.trace.nodes["d"]["type"]
        (8, 'double')
    """
    if fn is None:
        return functools.partial(effectful, type=type)
    if getattr(fn, "_is_effectful", False):
        return fn
    if type is None:
        raise TypeError("effectful(fn, type=...) needs a message type, e.g. type='sample'")

    @functools.wraps(fn)
    def _fn(*args, name=None, infer=None, obs=None, **kwargs):
        stack = _get_stack()
        if not stack:
            return fn(*args, **kwargs) if obs is None else obs
        msg = new_message(type, name, fn, args, kwargs, obs, obs is not None, infer)
        _apply(stack, msg)
        return msg["value"]

    _fn._is_effectful = True
    return _fn


def get_plates() -> Tuple[CondIndepStackFrame, ...]:
    """The plates in scope here, outermost first.

    Example::

        >>> import ember
        >>> from ember.poutine.runtime import get_plates
        >>> with ember.plate("a", 3), ember.plate("b", 2):
        ...     [(f.name, f.dim) for f in get_plates()]
        [('a', -1), ('b', -2)]
    """
    msg = new_message("get_plates", None, lambda: None)
    msg["value"] = ()
    msg["done"] = True
    stack = _get_stack()
    if stack:
        _apply(stack, msg)
    return msg["cond_indep_stack"]


def get_mask():
    """The mask set by enclosing ``poutine.mask`` handlers (None when unmasked).

    Example::

        >>> import ember
        >>> from ember.poutine.runtime import get_mask
        >>> with ember.poutine.mask(mask=False):
        ...     get_mask()
        False
    """
    msg = new_message("get_mask", None, lambda: None)
    msg["value"] = ()
    msg["done"] = True
    stack = _get_stack()
    if stack:
        _apply(stack, msg)
    return msg["mask"]


class _DimAllocator:
    """Hands out plate dims from the right (-1, -2, ...), one name per dim, per context."""

    def __init__(self):
        self._var: contextvars.ContextVar = contextvars.ContextVar("ember_plate_dims", default=())

    @property
    def _stack(self) -> Tuple:
        return self._var.get()

    def allocate(self, name: str, dim: int | None) -> int:
        names = self._var.get()
        n = len(names)
        if dim is None:
            idx = names.index(None) if None in names else n
            dim = -1 - idx
        else:
            if not isinstance(dim, int) or dim >= 0:
                raise ValueError(
                    f"plate {name!r}: dim must be a negative int (counted from the right), "
                    f"got {dim!r}"
                )
            idx = -1 - dim
            if idx < n and names[idx] is not None:
                other = names[idx]
                raise ValueError(
                    f"plates {other!r} and {name!r} both claim dim={dim}. Each plate in scope "
                    f"needs its own dim: give {name!r} another dim (e.g. dim={dim - 1}) or leave "
                    "dim unset so it is allocated automatically"
                )
        if idx < n:
            names = names[:idx] + (name,) + names[idx + 1 :]
        else:
            names = names + (None,) * (idx - n) + (name,)
        self._var.set(names)
        return dim

    def free(self, name: str, dim: int) -> None:
        names = self._var.get()
        idx = -1 - dim
        if idx < len(names) and names[idx] == name:
            names = names[:idx] + (None,) + names[idx + 1 :]
            end = len(names)
            while end and names[end - 1] is None:
                end -= 1
            self._var.set(names[:end])

    def names(self) -> Dict[int, str]:
        """``{dim: plate name}`` of the dims allocated in this context."""
        return {-1 - i: n for i, n in enumerate(self._var.get()) if n is not None}


_DIM_ALLOCATOR = _DimAllocator()
