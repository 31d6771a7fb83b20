"""The lowercase handler functions: ``trace(fn)``, ``replay(fn, trace=...)``, ...

Each is generated from its Messenger class by :func:`make_handler`:
``handler(fn, *args, **kwargs)`` returns ``fn`` wrapped so every call runs
inside ``Messenger(*args, **kwargs)``, and ``handler(*args, **kwargs)`` without
``fn`` (or with ``fn=None``) returns the Messenger itself, usable in a ``with``
block or as a decorator. The Messenger's constructor checks the arguments; the
handler's docstring is the class's.

Example::

    >>> import torch, ember, ember.distributions as dist
    >>> from ember import poutine
    >>> model = lambda: ember.sample("x", dist.Normal(0.0, 1.0))
    >>> poutine.condition(model, data={"x": torch.tensor(1.0)})()
    tensor(1.)
    >>> with poutine.condition(data={"x": torch.tensor(2.0)}):
    ...     model()
    tensor(2.)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterable
from typing import Callable

from ember.poutine.block_messenger import BlockMessenger
from ember.poutine.broadcast_messenger import BroadcastMessenger
from ember.poutine.collapse_messenger import CollapseMessenger
from ember.poutine.condition_messenger import ConditionMessenger, UnconditionMessenger
from ember.poutine.do_messenger import DoMessenger
from ember.poutine.enum_messenger import EnumMessenger
from ember.poutine.equalize_messenger import EqualizeMessenger
from ember.poutine.escape_messenger import EscapeMessenger
from ember.poutine.infer_config_messenger import InferConfigMessenger
from ember.poutine.lift_messenger import LiftMessenger
from ember.poutine.markov_messenger import MarkovMessenger
from ember.poutine.mask_messenger import MaskMessenger
from ember.poutine.reparam_messenger import ReparamHandler, ReparamMessenger
from ember.poutine.replay_messenger import ReplayMessenger
from ember.poutine.runtime import NonlocalExit
from ember.poutine.scale_messenger import ScaleMessenger
from ember.poutine.seed_messenger import SeedMessenger
from ember.poutine.substitute_messenger import SubstituteMessenger
from ember.poutine.trace_messenger import TraceMessenger
from ember.poutine.util import discrete_escape, enum_extend

__all__ = [
    "BlockMessenger",
    "BroadcastMessenger",
    "CollapseMessenger",
    "ConditionMessenger",
    "DoMessenger",
    "EnumMessenger",
    "EqualizeMessenger",
    "EscapeMessenger",
    "InferConfigMessenger",
    "LiftMessenger",
    "MarkovMessenger",
    "MaskMessenger",
    "NotCallableError",
    "ReparamHandler",
    "ReparamMessenger",
    "ReplayMessenger",
    "ScaleMessenger",
    "SeedMessenger",
    "SubstituteMessenger",
    "TraceMessenger",
    "UnconditionMessenger",
    "block",
    "broadcast",
    "collapse",
    "condition",
    "do",
    "enum",
    "equalize",
    "escape",
    "infer_config",
    "lift",
    "make_handler",
    "markov",
    "mask",
    "queue",
    "reparam",
    "replay",
    "scale",
    "seed",
    "substitute",
    "trace",
    "uncondition",
]


class NotCallableError(ValueError, TypeError):
    """A handler got a first argument that is neither a function to wrap nor None.

    A ``TypeError``, and a ``ValueError`` as Pyro raises there.
    """


def _handler_signature(msngr_cls) -> inspect.Signature:
    """``(fn, <the Messenger's parameters>)``: ``fn`` has the default None unless a
    parameter after it is required (then ``fn`` is shown required, as positional
    calls need it; keyword-only calls may still leave it out)."""
    params = list(inspect.signature(msngr_cls).parameters.values())
    required_after = any(
        p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        for p in params
    )
    fn = inspect.Parameter(
        "fn",
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        default=inspect.Parameter.empty if required_after else None,
    )
    return inspect.Signature([fn] + params)


def make_handler(msngr_cls, name: str, iterable: bool = False) -> Callable:
    """The functional form ``name(fn=None, *args, **kwargs)`` of the Messenger class
    ``msngr_cls``.

    With ``fn`` it returns ``fn`` wrapped by ``msngr_cls(*args, **kwargs)`` (its
    name and docstring kept); without, the Messenger. A non-callable ``fn`` (say
    a value meant for a keyword argument) raises ``ValueError``; bad arguments are
    reported by the Messenger's constructor, with the handler's usage added when
    they do not fit its signature. With ``iterable=True`` an iterable ``fn`` is
    wrapped by the Messenger's ``generator`` (as ``markov(range(T))`` does).

    Example::

        >>> from ember.poutine.scale_messenger import ScaleMessenger
        >>> scale = make_handler(ScaleMessenger, "scale")
        >>> type(scale(scale=2.0)).__name__
        'ScaleMessenger'
        >>> scale(lambda: 1, scale=2.0)()
        1
    """
    signature = _handler_signature(msngr_cls)
    usage = f"{name}{signature}"

    def handler(fn=None, *args, **kwargs):
        if fn is not None and not callable(fn):
            if not (iterable and isinstance(fn, Iterable)):
                expected = "a callable, an iterable or None" if iterable else "a callable or None"
                raise NotCallableError(
                    f"{name}: {fn!r} is not callable ({name} expects {expected} as its first "
                    f"argument); did you mean to pass it as a keyword argument? Usage: {usage}"
                )
        try:
            msngr = msngr_cls(*args, **kwargs)
        except TypeError as e:
            try:
                signature.bind(fn, *args, **kwargs)
            except TypeError:
                raise TypeError(f"{name}: {e}. Usage: {usage}") from None
            raise
        if fn is None:
            return msngr
        if not callable(fn):
            return msngr.generator(fn)
        wrapped = msngr(fn)
        if getattr(wrapped, "__wrapped__", None) is not fn:
            functools.update_wrapper(wrapped, fn, updated=())
        return wrapped

    handler.__name__ = handler.__qualname__ = name
    handler.__module__ = __name__
    handler.__signature__ = signature
    handler.__doc__ = (
        f"Functional form of :class:`~{msngr_cls.__module__}.{msngr_cls.__name__}`: "
        f"``{name}(fn, ...)`` wraps ``fn``, ``{name}(...)`` returns the handler.\n\n"
        + inspect.cleandoc(msngr_cls.__doc__ or "")
    )
    return handler


block = make_handler(BlockMessenger, "block")
broadcast = make_handler(BroadcastMessenger, "broadcast")
collapse = make_handler(CollapseMessenger, "collapse")
condition = make_handler(ConditionMessenger, "condition")
do = make_handler(DoMessenger, "do")
enum = make_handler(EnumMessenger, "enum")
equalize = make_handler(EqualizeMessenger, "equalize")
escape = make_handler(EscapeMessenger, "escape")
infer_config = make_handler(InferConfigMessenger, "infer_config")
lift = make_handler(LiftMessenger, "lift")
markov = make_handler(MarkovMessenger, "markov", iterable=True)
mask = make_handler(MaskMessenger, "mask")
replay = make_handler(ReplayMessenger, "replay")
reparam = make_handler(ReparamMessenger, "reparam")
scale = make_handler(ScaleMessenger, "scale")
seed = make_handler(SeedMessenger, "seed")
substitute = make_handler(SubstituteMessenger, "substitute")
trace = make_handler(TraceMessenger, "trace")
uncondition = make_handler(UnconditionMessenger, "uncondition")


def queue(
    fn: Callable | None = None,
    queue=None,
    max_tries: int | None = None,
    extend_fn: Callable | None = None,
    escape_fn: Callable | None = None,
    num_samples: int | None = None,
):
    """Run ``fn`` over partial traces taken from ``queue`` (systematic search).

    Each call takes a partial trace from ``queue``, replays it, and stops at
    the first site ``escape_fn(trace, msg)`` picks (default: an unseen
    discrete site); the partial traces extended at that site by
    ``extend_fn(trace, msg, num_samples=...)`` (default: every value of its
    support) go back on the queue, until a run completes.

    Example::

        >>> import queue as pyqueue, torch, ember, ember.distributions as dist
        >>> from ember import poutine
        >>> def model():
        ...     return ember.sample("b", dist.Bernoulli(0.5))
        >>> q = pyqueue.Queue(); q.put(poutine.Trace())
        >>> runs = [poutine.queue(model, queue=q)() for _ in range(2)]
        >>> sorted(float(r) for r in runs)
        [0.0, 1.0]
    """
    if queue is None:
        raise ValueError("queue needs queue=, a queue.Queue of partial traces")
    max_tries = int(1e6) if max_tries is None else max_tries
    extend_fn = enum_extend if extend_fn is None else extend_fn
    escape_fn = discrete_escape if escape_fn is None else escape_fn
    num_samples = -1 if num_samples is None else num_samples

    def wrapper(wrapped):
        @functools.wraps(wrapped)
        def _fn(*args, **kwargs):
            for _ in range(max_tries):
                if queue.empty():
                    raise ValueError(
                        "poutine.queue: the queue of partial traces is empty; put a "
                        "poutine.Trace() on it before running"
                    )
                next_trace = queue.get()
                ftr = trace(
                    escape(
                        replay(wrapped, trace=next_trace),
                        escape_fn=functools.partial(escape_fn, next_trace),
                    )
                )
                try:
                    return ftr(*args, **kwargs)
                except NonlocalExit as site_container:
                    site_container.reset_stack()
                    for tr in extend_fn(
                        ftr.trace.copy(), site_container.site, num_samples=num_samples
                    ):
                        queue.put(tr)
            raise ValueError(f"poutine.queue: max tries ({max_tries}) exceeded")

        return _fn

    return wrapper(fn) if fn is not None else wrapper
