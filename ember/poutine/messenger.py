"""The Messenger base class: an effect handler usable as a context manager or decorator.

A subclass reacts to a message type ``t`` by defining ``_pyro_t(self, msg)``
(on the way down the stack) and/or ``_pyro_post_t(self, msg)`` (on the way
back up); or it overrides ``_process_message`` / ``_postprocess_message`` to
see every message. Hooks are looked up once per class and message type, so a
handler that ignores a type costs one dict lookup per message.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Callable

from ember.poutine.runtime import (
    GENERATOR_HANDLERS,
    HANDLER_STACK,
    check_no_suspended_generator,
    exit_handler,
    note_stack_emptied,
    note_stack_filled,
)

_get_stack = HANDLER_STACK.get


class Messenger:
    """Base class of effect handlers.

    ``with handler:`` puts it on the handler stack for the block;
    ``handler(fn)`` returns ``fn`` wrapped so every call runs inside it.

    Example::

        >>> import ember, torch, ember.distributions as dist
        >>> from ember.poutine.messenger import Messenger
        >>> class Doubler(Messenger):
        ...     def _pyro_post_sample(self, msg):
        ...         msg["value"] = 2 * msg["value"]
        >>> with Doubler():
        ...     ember.sample("x", dist.Delta(torch.tensor(1.5)))
        tensor(3.)
    """

    _process_hooks: dict = {}
    _post_hooks: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._process_hooks = {}
        cls._post_hooks = {}

    @classmethod
    def _resolve_hook(cls, mtype: str, post: bool) -> Callable | None:
        """Find (once) the function this class runs for messages of type ``mtype``."""
        generic_name, prefix = (
            ("_postprocess_message", "_pyro_post_") if post else ("_process_message", "_pyro_")
        )
        generic = getattr(cls, generic_name)
        if generic is not getattr(Messenger, generic_name):  # overridden: sees every message
            hook = generic
        else:
            hook = getattr(cls, prefix + mtype, None)
        (cls._post_hooks if post else cls._process_hooks)[mtype] = hook
        return hook

    @classmethod
    def _forget_hooks(cls) -> None:
        """Drop the resolved hooks of this class and its subclasses (after a change)."""
        for sub in [cls] + _all_subclasses(cls):
            sub._process_hooks.clear()
            sub._post_hooks.clear()

    def __call__(self, fn: Callable) -> Callable:
        if not callable(fn):
            raise ValueError(
                f"{type(self).__name__} can only wrap a callable, got {type(fn).__name__}; "
                "use it as a decorator on a function or as a `with` block"
            )
        return functools.update_wrapper(HandledFunction(_run_inside, self, fn), fn, updated=())

    def __enter__(self):
        stack = _get_stack()  # (push_handler, inlined)
        if not stack:
            note_stack_filled()
        elif GENERATOR_HANDLERS:
            check_no_suspended_generator(stack)
        HANDLER_STACK.set(stack + (self,))
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        stack = _get_stack()
        if stack and stack[-1] is self:
            HANDLER_STACK.set(stack[:-1])
            if len(stack) == 1:
                note_stack_emptied()
        else:
            # out of order (an error, see exit_handler), unwinding, or a generator closing
            exit_handler(self, exc_type)
        return False

    def hides(self, msg) -> bool:
        """Whether this handler hides ``msg`` from the handlers outside it (False here;
        :class:`~ember.poutine.block_messenger.BlockMessenger` says which it hides).

        A ``NonlocalExit`` resets the handlers it passed through up to the first one
        that hides its site.
        """
        return False

    def _reset(self) -> None:
        """Reset per-run state (called when a ``NonlocalExit`` unwinds the stack)."""

    def _process_message(self, msg) -> None:
        method = getattr(self, f"_pyro_{msg['type']}", None)
        if method is not None:
            method(msg)

    def _postprocess_message(self, msg) -> None:
        method = getattr(self, f"_pyro_post_{msg['type']}", None)
        if method is not None:
            method(msg)

    @classmethod
    def register(cls, fn: Callable | None = None, type: str | None = None, post=None):
        """Add a hook for message ``type`` to this class (``post=True``: on the way up).

        Example::

            >>> from ember.poutine.messenger import Messenger
            >>> class Counter(Messenger):
            ...     count = 0
            >>> @Counter.register(type="sample")
            ... def _count(self, msg):
            ...     type(self).count += 1
            >>> hasattr(Counter, "_pyro_sample")
            True
        """
        if fn is None:
            return lambda fn: cls.register(fn, type=type, post=post)
        if type is None:
            raise ValueError("Messenger.register needs type=, the message type to handle")
        name = f"_pyro_post_{type}" if post else f"_pyro_{type}"
        setattr(cls, name, fn)
        cls._forget_hooks()
        return fn

    @classmethod
    def unregister(cls, fn: Callable | None = None, type: str | None = None):
        """Remove the hooks for message ``type`` added by :meth:`register`."""
        if type is None:
            raise ValueError("Messenger.unregister needs type=")
        for name in (f"_pyro_{type}", f"_pyro_post_{type}"):
            if name in cls.__dict__:
                delattr(cls, name)
        cls._forget_hooks()
        return fn


def _run_inside(msngr, fn, *args, **kwargs):
    with msngr:
        return fn(*args, **kwargs)


class HandledFunction(functools.partial):
    """``fn`` wrapped so that every call runs inside the handler ``msngr``
    (what ``handler(fn)`` returns). ``.msngr`` is the handler, ``.fn`` the function.

    Unlike a closure it pickles (when ``msngr`` and ``fn`` do), and used as a method
    in a class body it binds like a function: ``obj.method(...)`` passes ``obj``.

    Example::

        >>> import ember
        >>> class Model:
        ...     @ember.poutine.block
        ...     def run(self, x):
        ...         return 2 * x
        >>> Model().run(3)
        6
    """

    @property
    def msngr(self):
        """The handler every call runs inside."""
        return self.args[0]

    @property
    def fn(self):
        """The wrapped function."""
        return self.args[1]

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        return functools.partial(self, instance)


def unwrap(fn: Callable) -> Callable:
    """The function under any handlers wrapped around ``fn`` with ``handler(fn)``.

    Example::

        >>> import ember
        >>> def model():
        ...     pass
        >>> wrapped = ember.poutine.block(ember.poutine.scale(model, scale=2.0))
        >>> unwrap(wrapped) is model
        True
    """
    while True:
        if isinstance(fn, HandledFunction):
            fn = fn.fn
        elif isinstance(fn, functools.partial) and isinstance(fn.func, HandledFunction):
            fn = fn.func  # a handled function bound to an instance (used as a method)
        else:
            return fn


def _all_subclasses(cls):
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def block_messengers(predicate: Callable):
    """Context manager that temporarily removes handlers for which ``predicate`` is true.

    Example::

        >>> import ember
        >>> from ember.poutine.messenger import block_messengers
        >>> from ember.poutine.runtime import get_stack
        >>> with ember.poutine.trace():
        ...     with block_messengers(lambda m: True):
        ...         len(get_stack())
        0
    """

    @contextlib.contextmanager
    def _ctx():
        old = _get_stack()
        kept = tuple(m for m in old if not predicate(m))
        HANDLER_STACK.set(kept)
        try:
            yield [m for m in old if predicate(m)]
        finally:
            HANDLER_STACK.set(old)

    return _ctx()
