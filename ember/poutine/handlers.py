"""The lowercase handler functions: ``trace(fn)``, ``replay(fn, trace=...)``, ...

Each returns a wrapped function when given ``fn``, and the handler itself
(usable in a ``with`` block) when ``fn`` is None.
"""

from __future__ import annotations

import functools
from typing import Callable

from ember.poutine.block_messenger import BlockMessenger
from ember.poutine.condition_messenger import ConditionMessenger, UnconditionMessenger
from ember.poutine.do_messenger import DoMessenger
from ember.poutine.enum_messenger import EnumMessenger, enum
from ember.poutine.escape_messenger import EscapeMessenger
from ember.poutine.infer_config_messenger import InferConfigMessenger
from ember.poutine.lift_messenger import LiftMessenger
from ember.poutine.markov_messenger import MarkovMessenger, markov
from ember.poutine.mask_messenger import MaskMessenger
from ember.poutine.plate_messenger import BroadcastMessenger
from ember.poutine.replay_messenger import ReplayMessenger
from ember.poutine.runtime import NonlocalExit
from ember.poutine.scale_messenger import ScaleMessenger
from ember.poutine.seed_messenger import SeedMessenger
from ember.poutine.substitute_messenger import SubstituteMessenger
from ember.poutine.trace_messenger import TraceMessenger

__all__ = [
    "BlockMessenger",
    "BroadcastMessenger",
    "ConditionMessenger",
    "DoMessenger",
    "EnumMessenger",
    "EscapeMessenger",
    "InferConfigMessenger",
    "LiftMessenger",
    "MarkovMessenger",
    "MaskMessenger",
    "ReplayMessenger",
    "ScaleMessenger",
    "SeedMessenger",
    "SubstituteMessenger",
    "TraceMessenger",
    "UnconditionMessenger",
    "block",
    "broadcast",
    "condition",
    "do",
    "enum",
    "escape",
    "infer_config",
    "lift",
    "markov",
    "mask",
    "queue",
    "replay",
    "scale",
    "seed",
    "substitute",
    "trace",
    "uncondition",
]


def _wrap(msngr, fn):
    return msngr if fn is None else msngr(fn)


def trace(
    fn: Callable | None = None, graph_type: str | None = None, param_only: bool | None = None
):
    """Record every site of a run: ``trace(fn).get_trace(*args)`` returns a :class:`Trace`.

    Example::

        >>> import ember, ember.distributions as dist
        >>> tr = trace(lambda: ember.sample("x", dist.Normal(0.0, 1.0))).get_trace()
        >>> tr.stochastic_nodes
        ['x']
    """
    return _wrap(TraceMessenger(graph_type=graph_type, param_only=param_only), fn)


def replay(fn: Callable | None = None, trace=None, params: dict | None = None):
    """Reuse sample values from ``trace`` and param values from ``params``.

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember import poutine
        >>> model = lambda: ember.sample("x", dist.Normal(0.0, 1.0))
        >>> tr = poutine.trace(model).get_trace()
        >>> bool(replay(model, trace=tr)() == tr.nodes["x"]["value"])
        True
    """
    return _wrap(ReplayMessenger(trace=trace, params=params), fn)


def block(
    fn: Callable | None = None,
    hide_fn=None,
    expose_fn=None,
    hide_all: bool = True,
    expose_all: bool = False,
    hide=None,
    expose=None,
    hide_types=None,
    expose_types=None,
):
    """Hide sites from the handlers outside (see :class:`BlockMessenger`).

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember import poutine
        >>> model = lambda: ember.sample("x", dist.Normal(0.0, 1.0))
        >>> len(poutine.trace(block(model)).get_trace().stochastic_nodes)
        0
    """
    return _wrap(
        BlockMessenger(
            hide_fn=hide_fn,
            expose_fn=expose_fn,
            hide_all=hide_all,
            expose_all=expose_all,
            hide=hide,
            expose=expose,
            hide_types=hide_types,
            expose_types=expose_types,
        ),
        fn,
    )


def condition(fn: Callable | None = None, data=None):
    """Observe sample sites at the values in ``data`` (a dict or a Trace).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> model = lambda: ember.sample("x", dist.Normal(0.0, 1.0))
        >>> condition(model, data={"x": torch.tensor(1.0)})()
        tensor(1.)
    """
    if data is None:
        raise ValueError("condition needs data=, a dict from site names to values")
    return _wrap(ConditionMessenger(data=data), fn)


def uncondition(fn: Callable | None = None):
    """Sample observed sites instead of observing them (see :class:`UnconditionMessenger`).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> model = lambda: ember.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(50.0))
        >>> bool(uncondition(model)() < 40)
        True
    """
    return _wrap(UnconditionMessenger(), fn)


def substitute(fn: Callable | None = None, data: dict | None = None, substitute_fn=None):
    """Give param sites fixed values (see :class:`SubstituteMessenger`).

    Example::

        >>> import torch, ember
        >>> ember.clear_param_store()
        >>> substitute(lambda: ember.param("p", torch.zeros(1)), data={"p": torch.ones(1)})()
        tensor([1.])
    """
    return _wrap(SubstituteMessenger(data=data, substitute_fn=substitute_fn), fn)


def escape(fn: Callable | None = None, escape_fn: Callable | None = None):
    """Raise ``NonlocalExit`` at the first sample site where ``escape_fn(msg)`` holds.

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember.poutine.runtime import NonlocalExit
        >>> try:
        ...     escape(lambda: ember.sample("x", dist.Bernoulli(0.5)), lambda msg: True)()
        ... except NonlocalExit as e:
        ...     e.site["name"]
        'x'
    """
    if escape_fn is None:
        raise ValueError("escape needs escape_fn=, a predicate on messages")
    return _wrap(EscapeMessenger(escape_fn=escape_fn), fn)


def lift(fn: Callable | None = None, prior=None):
    """Turn param sites into sample sites drawn from ``prior`` (see :class:`LiftMessenger`).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> ember.clear_param_store()
        >>> lifted = lift(lambda: ember.param("w", torch.zeros(())), prior=dist.Normal(10.0, 0.1))
        >>> bool(lifted() > 9)
        True
    """
    if prior is None:
        raise ValueError("lift needs prior=, a distribution, a callable or a dict of them")
    return _wrap(LiftMessenger(prior=prior), fn)


def scale(fn: Callable | None = None, scale=None):
    """Multiply the log-densities inside by ``scale`` (see :class:`ScaleMessenger`).

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember import poutine
        >>> tr = poutine.trace(scale(lambda: ember.sample("x", dist.Normal(0.0, 1.0)),
        ...                          scale=3.0)).get_trace()
        >>> tr.nodes["x"]["scale"]
        3.0
    """
    if scale is None:
        raise ValueError("scale needs scale=, a positive number or tensor")
    return _wrap(ScaleMessenger(scale=scale), fn)


def mask(fn: Callable | None = None, mask=None):
    """Zero the log-densities inside where ``mask`` is False (see :class:`MaskMessenger`).

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember import poutine
        >>> tr = poutine.trace(mask(lambda: ember.sample("x", dist.Normal(0.0, 1.0)),
        ...                         mask=False)).get_trace()
        >>> tr.log_prob_sum()
        tensor(0.)
    """
    if mask is None:
        raise ValueError("mask needs mask=, a bool or a bool tensor")
    return _wrap(MaskMessenger(mask=mask), fn)


def seed(fn: Callable | None = None, rng_seed: int | None = None):
    """Run with the random seed ``rng_seed``, restoring the RNG state after.

    Example::

        >>> import torch
        >>> with seed(rng_seed=0):
        ...     a = torch.rand(1)
        >>> with seed(rng_seed=0):
        ...     b = torch.rand(1)
        >>> bool(a == b)
        True
    """
    if rng_seed is None:
        raise ValueError("seed needs rng_seed=, an int")
    return _wrap(SeedMessenger(rng_seed=rng_seed), fn)


def do(fn: Callable | None = None, data: dict | None = None):
    """Intervene on sample sites (see :class:`DoMessenger`).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> do(lambda: ember.sample("z", dist.Normal(0.0, 1.0)), data={"z": torch.tensor(2.0)})()
        tensor(2.)
    """
    if data is None:
        raise ValueError("do needs data=, a dict from site names to values")
    return _wrap(DoMessenger(data=data), fn)


def broadcast(fn: Callable | None = None):
    """Expand sample sites' distributions to the plates around them.

    Example::

        >>> import ember, ember.distributions as dist
        >>> with broadcast(), ember.plate("i", 2):
        ...     ember.sample("x", dist.Normal(0.0, 1.0)).shape
        torch.Size([2])
    """
    return _wrap(BroadcastMessenger(), fn)


def infer_config(fn: Callable | None = None, config_fn: Callable | None = None):
    """Add ``config_fn(msg)`` to each site's ``infer`` dict.

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember import poutine
        >>> model = infer_config(lambda: ember.sample("x", dist.Normal(0.0, 1.0)),
        ...                      config_fn=lambda msg: {"tag": 1})
        >>> poutine.trace(model).get_trace().nodes["x"]["infer"]
        {'tag': 1}
    """
    if config_fn is None:
        raise ValueError("infer_config needs config_fn=, a function of the message")
    return _wrap(InferConfigMessenger(config_fn=config_fn), fn)


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
    from ember.poutine import util

    if queue is None:
        raise ValueError("queue needs queue=, a queue.Queue of partial traces")
    max_tries = int(1e6) if max_tries is None else max_tries
    extend_fn = util.enum_extend if extend_fn is None else extend_fn
    escape_fn = util.discrete_escape if escape_fn is None else escape_fn
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
