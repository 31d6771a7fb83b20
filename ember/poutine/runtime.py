"""The handler stack, the message and ``apply_stack``: the core of ember's runtime.

Every effectful call (``ember.sample``, ``ember.param``, ...) builds a
*message* (a plain dict) and hands it to :func:`apply_stack`, which walks the
active handlers from the innermost out (``_process_message``), runs the
default behaviour (draw a value), then walks back (``_postprocess_message``).

The stack is an immutable tuple kept in the :class:`contextvars.ContextVar`
:data:`HANDLER_STACK`, so every thread (and every ``contextvars`` context, e.g.
an asyncio task) sees its own stack: entering a handler replaces the tuple
(:func:`push_handler`, :func:`pop_handler`), never mutates a shared list. Plate
dims are allocated per context too (:data:`DIM_ALLOCATOR`). A worker thread thus
starts outside the handlers of the thread that started it: run it in
``contextvars.copy_context()`` taken inside the handlers to carry them along (a
sample statement that misses them warns once, :class:`CrossContextWarning`).
Handlers must be exited in the reverse order of entry (:class:`HandlerOrderError`).

Hot paths (``ember.sample``) read the stack with ``HANDLER_STACK.get()``, return
at once when it is empty, and otherwise build a message with
:func:`new_message` and pass it with the stack to :func:`apply_stack`.

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
import threading
import warnings
from typing import Any, Callable, Dict, NamedTuple, Tuple, TypedDict

from ember.params.param_store import get_param_store
from ember.poutine.broadcast import broadcast_to_plates

__all__ = [
    "DIM_ALLOCATOR",
    "HANDLER_STACK",
    "ACTIVE_HANDLER_THREADS",
    "GENERATOR_HANDLERS",
    "CondIndepStackFrame",
    "CrossContextWarning",
    "DimAllocator",
    "HandlerOrderError",
    "Message",
    "NonlocalExit",
    "am_i_wrapped",
    "apply_stack",
    "check_no_suspended_generator",
    "default_process_message",
    "describe_handler",
    "effectful",
    "exit_handler",
    "get_mask",
    "get_plates",
    "get_stack",
    "new_message",
    "note_stack_emptied",
    "note_stack_filled",
    "pop_handler",
    "push_handler",
    "warn_if_unseen_by_other_thread",
]

#: The handler stack of the current context: a tuple of handlers, outermost first.
#: Read it with ``HANDLER_STACK.get()`` (or :func:`get_stack`); change it only through
#: :func:`push_handler` / :func:`pop_handler` (or ``Messenger``'s ``with`` block).
HANDLER_STACK: contextvars.ContextVar = contextvars.ContextVar("ember_handler_stack", default=())
_get_stack = HANDLER_STACK.get
_UNSET = object()

# Pyro's module keeps the global param store here; code written for Pyro reads it.
_PYRO_PARAM_STORE = get_param_store()


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
        """Reset the state of the handlers that saw the escape, innermost first, up to
        the first one that hides the site from the handlers outside it (``hides``)."""
        for frame in reversed(_get_stack()):
            frame._reset()
            if frame.hides(self.site):
                break


def get_stack() -> Tuple:
    """The handlers active in this context, outermost first (an immutable tuple).

    Example::

        >>> from ember.poutine.runtime import get_stack
        >>> get_stack()
        ()
    """
    return _get_stack()


def push_handler(handler) -> None:
    """Make ``handler`` the innermost handler of this context.

    Example::

        >>> from ember.poutine.messenger import Messenger
        >>> from ember.poutine.runtime import get_stack, pop_handler, push_handler
        >>> h = Messenger(); push_handler(h)
        >>> get_stack() == (h,)
        True
        >>> pop_handler(h); get_stack()
        ()
    """
    stack = _get_stack()
    if not stack:
        note_stack_filled()
    HANDLER_STACK.set(stack + (handler,))


def pop_handler(handler) -> None:
    """Remove ``handler`` and every handler entered after it (a no-op when absent)."""
    stack = _get_stack()
    if stack and stack[-1] is handler:
        HANDLER_STACK.set(stack[:-1])
        if len(stack) == 1:
            note_stack_emptied()
        return
    for i in range(len(stack) - 2, -1, -1):
        if stack[i] is handler:
            HANDLER_STACK.set(stack[:i])
            if i == 0:
                note_stack_emptied()
            return


class HandlerOrderError(ValueError):
    """A handler was exited while handlers entered after it were still active.

    Handlers form a stack: exit them in the reverse order of entry (``with``
    blocks do this by construction). The stack is restored to its state before
    the wrongly exited handler was entered, so later code runs with a consistent
    stack.
    """


def exit_handler(handler, exc_type=None) -> None:
    """Take ``handler`` off this context's stack when it is not the innermost handler
    (the slow path of ``Messenger.__exit__``).

    * No exception in flight: the handler is exited out of order. It and every
      handler entered after it are removed (the stack is as before it was entered),
      then :class:`HandlerOrderError` names them.
    * An exception in flight: the handler and those entered after it are removed
      (they are being unwound).
    * ``GeneratorExit`` (a generator suspended inside the handler is being closed):
      only the handler is removed, since the handlers above it belong to the code
      running now, not to the generator.
    * A handler that is not on the stack (already removed): nothing to do.

    Example::

        >>> import ember
        >>> from ember.poutine.runtime import HandlerOrderError, exit_handler, get_stack
        >>> a, b = ember.poutine.trace(), ember.poutine.block()
        >>> _ = a.__enter__(); _ = b.__enter__()
        >>> try:
        ...     exit_handler(a)
        ... except HandlerOrderError as err:
        ...     print(str(err).split(";")[0])
        TraceMessenger exited while BlockMessenger (entered after it) is still active
        >>> get_stack()
        ()
    """
    stack = _get_stack()
    i = len(stack) - 1
    while i >= 0 and stack[i] is not handler:
        i -= 1
    if i < 0:
        return
    GENERATOR_HANDLERS.discard(handler)
    if exc_type is not None and issubclass(exc_type, GeneratorExit):
        rest = stack[:i] + stack[i + 1 :]
        HANDLER_STACK.set(rest)
        if not rest:
            note_stack_emptied()
        return
    above = stack[i + 1 :]
    HANDLER_STACK.set(stack[:i])
    if i == 0:
        note_stack_emptied()
    for h in above:  # dropped without their own exit: give back the plate dims they hold
        GENERATOR_HANDLERS.discard(h)
        dim, name = getattr(h, "dim", None), getattr(h, "name", None)
        if isinstance(dim, int) and isinstance(name, str):
            DIM_ALLOCATOR.free(name, dim)
    if exc_type is None and above:
        names = ", ".join(describe_handler(h) for h in above)
        raise HandlerOrderError(
            f"{describe_handler(handler)} exited while {names} (entered after it) "
            f"{'is' if len(above) == 1 else 'are'} still active; handlers must be exited in "
            "the reverse order of entry. Both were taken off the handler stack. Hint: use "
            "`with` blocks; if a generator is suspended inside a `with plate(...)` block, "
            "exhaust it or call its close() before the enclosing handler exits"
        )


#: The handlers (plates) active now that were entered directly by a generator frame other
#: than a ``contextlib.contextmanager`` one; see :func:`check_no_suspended_generator`.
GENERATOR_HANDLERS: set = set()


def check_no_suspended_generator(stack) -> None:
    """Refuse to enter a handler above a plate whose generator is suspended inside it.

    A generator that yields inside ``with plate(...)`` leaves the plate on the stack
    while it is suspended; a trace started then would silently put its sites in
    that plate. Called on entering a handler only while :data:`GENERATOR_HANDLERS`
    is non-empty. (A ``contextmanager`` that yields inside a plate is not concerned:
    its plate is meant for the ``with`` block.)
    """
    for h in stack:
        frame = getattr(h, "generator_frame", None)
        if frame is not None and frame.f_back is None:  # suspended (not running)
            code = frame.f_code
            raise HandlerOrderError(
                f"{describe_handler(h)} is still active because the generator "
                f"{code.co_name!r} ({code.co_filename}:{frame.f_lineno}) is suspended inside "
                "it; a handler entered now (e.g. a new trace) would put its sites in that "
                "plate. Hint: exhaust the generator or call its close() first, or run it "
                "inside the handler"
            )


def describe_handler(handler) -> str:
    """A short name for a handler in messages: its class, and its name if it has one
    (``plate 'data'``).

    Example::

        >>> import ember
        >>> from ember.poutine.runtime import describe_handler
        >>> describe_handler(ember.plate("data", 3)), describe_handler(ember.poutine.block())
        ("plate 'data'", 'BlockMessenger')
    """
    name = getattr(handler, "name", None)
    kind = type(handler).__name__
    return f"{kind} {name!r}" if isinstance(name, str) else kind


_get_ident = threading.get_ident
# Which threads have a context inside a handler: {thread id: number of such contexts}.
# Updated only when a context's stack goes from empty to non-empty and back (once per
# outermost handler), read by sample statements only when their own stack is empty.
ACTIVE_HANDLER_THREADS: Dict[int, int] = {}
_CROSS_THREAD_WARNED = False


class CrossContextWarning(UserWarning):
    """A sample statement ran with no handler in a thread while another thread was
    inside a handler: the handlers (e.g. a trace) do not see the site.

    Handler stacks are per ``contextvars`` context, so a worker thread starts with
    an empty stack. To run a worker inside the handlers of the thread that starts it,
    copy the context inside the handler and run the worker in the copy::

        with ember.poutine.trace() as tr:
            ctx = contextvars.copy_context()
            worker = threading.Thread(target=ctx.run, args=(fn,))
            worker.start(); worker.join()

    (``concurrent.futures``: ``pool.submit(contextvars.copy_context().run, fn)``).
    The worker then shares the handler objects with the caller: give its sites
    their own names.
    """


def note_stack_filled() -> None:
    """Record that this thread has one more context inside a handler (called when a
    context's handler stack goes from empty to non-empty)."""
    # (no lock: each thread changes only its own entry, and one dict operation is atomic)
    tid = _get_ident()
    ACTIVE_HANDLER_THREADS[tid] = ACTIVE_HANDLER_THREADS.get(tid, 0) + 1


def note_stack_emptied() -> None:
    """Record that a context of this thread left its last handler."""
    global _CROSS_THREAD_WARNED
    tid = _get_ident()
    count = ACTIVE_HANDLER_THREADS.get(tid, 0) - 1
    if count > 0:
        ACTIVE_HANDLER_THREADS[tid] = count
    else:
        ACTIVE_HANDLER_THREADS.pop(tid, None)
        if not ACTIVE_HANDLER_THREADS:
            _CROSS_THREAD_WARNED = False  # warn again the next time it happens


def warn_if_unseen_by_other_thread(name) -> None:
    """Warn (once, until no thread is inside a handler) that site ``name`` runs with an
    empty handler stack in this thread while another live thread is inside a handler.

    Sample statements call it only when their stack is empty and
    :data:`ACTIVE_HANDLER_THREADS` is non-empty, so it costs nothing otherwise. See
    :class:`CrossContextWarning` for how to carry the handlers into a worker.
    """
    global _CROSS_THREAD_WARNED
    if _CROSS_THREAD_WARNED:
        return
    tid = _get_ident()
    if tid in ACTIVE_HANDLER_THREADS:
        return  # this thread is inside a handler elsewhere (e.g. block_messengers)
    alive = {t.ident: t.name for t in threading.enumerate()}
    others = [alive[t] for t in list(ACTIVE_HANDLER_THREADS) if t in alive and t != tid]
    if not others:
        # threads that ended inside a handler: forget them
        for t in [t for t in list(ACTIVE_HANDLER_THREADS) if t not in alive]:
            ACTIVE_HANDLER_THREADS.pop(t, None)
        return
    _CROSS_THREAD_WARNED = True
    here = threading.current_thread().name
    warnings.warn(
        f"site {name!r} ran in thread {here!r} with no effect handler while thread "
        f"{others[0]!r} is inside one (e.g. poutine.trace): handlers are per thread and "
        "per contextvars context, so they do not see this site. To run a worker inside the "
        "caller's handlers, take ctx = contextvars.copy_context() inside the handler and "
        "run the worker as ctx.run(fn, ...). (Shown once.)",
        CrossContextWarning,
        stacklevel=3,
    )


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


def apply_stack(msg, stack: Tuple | None = None) -> None:
    """Send ``msg`` down the handler stack and back up, filling ``msg["value"]``.

    Handlers are visited innermost first by ``_process_message``; one that sets
    ``msg["stop"]`` hides the message from the handlers outside it. Then the
    default behaviour runs (``msg["fn"](*args, **kwargs)`` unless a value is
    set), then ``_postprocess_message`` runs on the visited handlers,
    outermost first, then ``msg["continuation"]`` if any.

    ``stack`` is the handler stack to use, by default this context's; callers
    that already read it (to skip the message when it is empty) pass it on.

    Example::

        >>> import torch
        >>> from ember.poutine.runtime import apply_stack, new_message
        >>> msg = new_message("sample", "x", lambda: torch.tensor(1.0))
        >>> apply_stack(msg); msg["value"]
        tensor(1.)
    """
    if stack is None:
        stack = _get_stack()
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
            broadcast_to_plates(msg)
    return max(i, 0)


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
            if ACTIVE_HANDLER_THREADS:
                warn_if_unseen_by_other_thread(name)
            return fn(*args, **kwargs) if obs is None else obs
        msg = new_message(type, name, fn, args, kwargs, obs, obs is not None, infer)
        apply_stack(msg, stack)
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
    return _ask_handlers("get_plates")["cond_indep_stack"]


def get_mask():
    """The mask set by enclosing ``poutine.mask`` handlers (None when unmasked).

    Example::

        >>> import ember
        >>> from ember.poutine.runtime import get_mask
        >>> with ember.poutine.mask(mask=False):
        ...     get_mask()
        False
    """
    return _ask_handlers("get_mask")["mask"]


def _ask_handlers(mtype: str) -> dict:
    """Send a message of type ``mtype`` with nothing to compute through the stack, so
    the handlers fill in its ``cond_indep_stack``, ``mask``, ... as for a site here."""
    msg = new_message(mtype, None, _nothing)
    msg["value"] = ()
    msg["done"] = True
    stack = _get_stack()
    if stack:
        apply_stack(msg, stack)
    return msg


def _nothing():
    return None


class DimAllocator:
    """Hands out plate dims from the right (-1, -2, ...), one plate name per dim, in
    each ``contextvars`` context separately.

    Example::

        >>> from ember.poutine.runtime import DimAllocator
        >>> dims = DimAllocator()
        >>> dims.allocate("a", None), dims.allocate("b", None), dims.allocate("c", -5)
        (-1, -2, -5)
        >>> dims.free("b", -2); dims.names()
        {-1: 'a', -5: 'c'}
    """

    def __init__(self):
        self._var: contextvars.ContextVar = contextvars.ContextVar("ember_plate_dims", default=())

    @property
    def _stack(self) -> Tuple:
        """The plate name of each dim, from -1 leftwards (``None``: free); Pyro's attribute."""
        return self._var.get()

    def allocate(self, name: str, dim: int | None) -> int:
        """Claim ``dim`` (a negative int) for plate ``name``, or the rightmost free dim
        when ``dim`` is None; returns the dim. Two plates claiming one dim is an error."""
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
                    f"plates {other!r} and {name!r} both claim dim={dim}: they collide at "
                    f"dim={dim}. Each plate in scope "
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
        """Give back ``dim`` if plate ``name`` holds it."""
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


#: The plate dims in use in this context (every vectorized plate claims one on entry).
DIM_ALLOCATOR = DimAllocator()
_DIM_ALLOCATOR = DIM_ALLOCATOR  # Pyro's name for it, read by code written for Pyro


def __getattr__(name: str):
    # Pyro keeps the handler stack in a module-level list ``_PYRO_STACK``; code written
    # for Pyro may read it. Here it is this context's stack, an immutable tuple.
    if name == "_PYRO_STACK":
        return _get_stack()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
