"""Enumeration of discrete sites: :func:`config_enumerate` marks a program's
discrete sample sites for enumeration by :class:`~ember.infer.TraceEnum_ELBO`;
:func:`iter_discrete_traces` runs a program once per joint value of its
sequentially enumerated sites."""

from __future__ import annotations

import functools
import queue
from typing import Callable, Iterator

from ember import poutine
from ember.infer.util import get_importance_trace
from ember.poutine.messenger import Messenger
from ember.poutine.subsample_messenger import site_is_subsample
from ember.poutine.trace_struct import Trace

__all__ = [
    "config_enumerate",
    "get_importance_trace",
    "iter_discrete_escape",
    "iter_discrete_extend",
    "iter_discrete_traces",
]

_STRATEGIES = ("parallel", "sequential", "flat", None)
_TMC_STRATEGIES = ("diagonal", "mixture", "full")


class _EnumerateConfig(Messenger):
    """Add enumeration settings to the ``infer`` dict of qualifying sample sites."""

    def __init__(self, default, expand, num_samples, tmc):
        super().__init__()
        self.default = default
        self.expand = expand
        self.num_samples = num_samples
        self.tmc = tmc

    def _pyro_sample(self, msg):
        if msg["is_observed"] or site_is_subsample(msg):
            return
        infer = dict(msg["infer"] or {})
        if infer.get("_subsample"):
            return
        if self.num_samples is not None:
            infer.setdefault("enumerate", self.default)
            infer.setdefault("num_samples", self.num_samples)
            infer.setdefault("expand", self.expand)
            infer.setdefault("tmc", self.tmc)
        elif getattr(msg["fn"], "has_enumerate_support", False):
            infer.setdefault("enumerate", self.default)
            infer.setdefault("expand", self.expand)
        else:
            return
        msg["infer"] = infer


def config_enumerate(
    guide: Callable | None = None,
    default: str | None = "parallel",
    expand: bool = False,
    num_samples: int | None = None,
    tmc: str = "diagonal",
):
    """Mark every discrete, unobserved sample site of ``guide`` for enumeration.

    Sites whose distribution has ``enumerate_support`` get
    ``infer={"enumerate": default, "expand": expand}``; settings a site already
    has win. With ``num_samples``, every unobserved site (discrete or not) is
    instead "enumerated" by ``num_samples`` Monte Carlo draws in parallel. Works
    on models too, and as a decorator with or without arguments.

    :param default: ``"parallel"`` (the default), ``"sequential"``, ``"flat"`` or
        ``None`` (which leaves the sites alone).
    :param expand: whether parallel enumeration expands values to the full batch
        shape (else they broadcast).
    :param num_samples: draws per site for Monte Carlo enumeration (parallel
        only): the site's value is ``num_samples`` draws along its enumeration
        dim, and the ELBO averages over them.
    :param tmc: how Tensor Monte Carlo pairs the draws of dependent sites
        (``"diagonal"``, ``"mixture"`` or ``"full"``), recorded with ``num_samples``.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember import poutine
        >>> @config_enumerate
        ... def model():
        ...     ember.sample("z", dist.Bernoulli(0.5))
        ...     ember.sample("w", dist.Normal(0.0, 1.0))
        >>> tr = poutine.trace(model).get_trace()
        >>> tr.nodes["z"]["infer"], tr.nodes["w"]["infer"]
        ({'enumerate': 'parallel', 'expand': False}, {})
    """
    if default not in _STRATEGIES:
        raise ValueError(f"config_enumerate: default must be one of {_STRATEGIES}, got {default!r}")
    if not isinstance(expand, bool):
        raise TypeError(f"config_enumerate: expand must be True or False, got {expand!r}")
    if num_samples is not None:
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
            raise ValueError(
                f"config_enumerate: num_samples must be a positive int, got {num_samples!r}"
            )
        if default == "sequential":
            raise ValueError(
                "config_enumerate: local sampling (num_samples) does not support "
                "\"sequential\" sampling; use default='parallel' (Monte Carlo draws are taken "
                "in parallel)"
            )
    if tmc not in _TMC_STRATEGIES:
        raise ValueError(f"config_enumerate: tmc must be one of {_TMC_STRATEGIES}, got {tmc!r}")
    if tmc == "full" and num_samples is not None and num_samples > 1:
        expand = True
    if guide is None:
        return functools.partial(
            config_enumerate, default=default, expand=expand, num_samples=num_samples, tmc=tmc
        )
    if not callable(guide):
        raise TypeError(f"config_enumerate expects a callable, got {type(guide).__name__}")
    return _EnumerateConfig(default, expand, num_samples, tmc)(guide)


def iter_discrete_escape(trace: Trace, msg) -> bool:
    """Whether a run should stop at ``msg`` to branch: an unobserved sample site marked
    ``infer={"enumerate": "sequential"}`` that ``trace`` does not fix yet.

    The ``escape_fn`` of :func:`iter_discrete_traces` (for :func:`~ember.poutine.queue`).
    """
    return (
        msg["type"] == "sample"
        and not msg["is_observed"]
        and (msg["infer"] or {}).get("enumerate") == "sequential"
        and msg["name"] not in trace
    )


def iter_discrete_extend(trace: Trace, site, **ignored) -> Iterator[Trace]:
    """Copies of ``trace`` extended at ``site``, one per value of its support.

    Each value is one entry of ``enumerate_support`` (expanded over the site's
    batch when ``infer["expand"]`` is set, else broadcasting), so every batch
    element takes the same value in a copy; the copy records the support size
    in ``infer["_enum_total"]``. The ``extend_fn`` of :func:`iter_discrete_traces`.

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.poutine.runtime import new_message
        >>> msg = new_message("sample", "k", dist.Categorical(torch.ones(3) / 3))
        >>> msg["infer"] = {"enumerate": "sequential"}
        >>> [int(t.nodes["k"]["value"]) for t in iter_discrete_extend(Trace(), msg)]
        [0, 1, 2]
    """
    fn = site["fn"]
    if not getattr(fn, "has_enumerate_support", False):
        raise ValueError(
            f"site {site['name']!r} is marked for sequential enumeration but its distribution "
            f"{type(fn).__name__} has no enumerable support"
        )
    infer = site["infer"] or {}
    values = fn.enumerate_support(expand=infer.get("expand", False))
    total = values.shape[0]
    for value in values:
        extended = site.copy()
        extended["infer"] = dict(infer, _enum_total=total)
        extended["value"] = value
        new = trace.copy()
        new.add_node(site["name"], **extended)
        yield new


def iter_discrete_traces(graph_type: str, fn: Callable, *args, **kwargs) -> Iterator[Trace]:
    """Traces of ``fn(*args, **kwargs)``, one per joint value of its sequential sites.

    Sites marked ``infer={"enumerate": "sequential"}`` (e.g. by
    ``config_enumerate(default="sequential")``) are enumerated: the program is
    re-run once per joint value of them (all batch elements of a site taking
    the same value in a run); every other site is sampled as usual.

    :param graph_type: ``"flat"`` or ``"dense"`` (see :func:`~ember.poutine.trace`).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> @config_enumerate(default="sequential")
        ... def model():
        ...     a = ember.sample("a", dist.Bernoulli(0.5))
        ...     b = ember.sample("b", dist.Categorical(torch.ones(3) / 3))
        ...     return a, b
        >>> len(list(iter_discrete_traces("flat", model)))
        6
    """
    pending = queue.LifoQueue()
    pending.put(Trace())
    traced = poutine.trace(
        poutine.queue(
            fn, queue=pending, escape_fn=iter_discrete_escape, extend_fn=iter_discrete_extend
        ),
        graph_type=graph_type,
    )
    while not pending.empty():
        yield traced.get_trace(*args, **kwargs)
