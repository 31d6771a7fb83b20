"""TraceMessenger: record every site of a run into a :class:`Trace`."""

from __future__ import annotations

from typing import Callable

from ember.poutine.messenger import Messenger
from ember.poutine.trace_struct import Trace, identify_dense_edges


class TraceMessenger(Messenger):
    """Record the inputs, sites and return value of a run in ``self.trace``.

    ``graph_type="dense"`` also adds dependency edges between sample sites
    (see :mod:`ember.poutine.trace_struct`); ``param_only=True`` records only
    param sites (no sample sites, no ``_INPUT``/``_RETURN``).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> with ember.poutine.trace() as tracer:
        ...     x = ember.sample("x", dist.Normal(0.0, 1.0))
        >>> list(tracer.trace.nodes)
        ['x']
    """

    def __init__(self, graph_type: str | None = None, param_only: bool | None = None):
        graph_type = "flat" if graph_type is None else graph_type
        if graph_type != "flat" and graph_type != "dense":
            raise ValueError(f"graph_type must be 'flat' or 'dense', got {graph_type!r}")
        self.graph_type = graph_type
        self.param_only = bool(param_only)
        self.trace = Trace(graph_type=graph_type)
        self._fresh = True  # self.trace is new and empty: the first entry may use it

    def __enter__(self):
        if self._fresh and not self.trace.nodes:
            self._fresh = False
        else:
            self.trace = Trace(graph_type=self.graph_type)
        return super().__enter__()

    def __exit__(self, exc_type, exc_value, traceback):
        if exc_type is None and self.graph_type == "dense":
            identify_dense_edges(self.trace)
        return super().__exit__(exc_type, exc_value, traceback)

    def __call__(self, fn: Callable) -> TraceHandler:
        return TraceHandler(self, fn)

    def get_trace(self) -> Trace:
        """The trace of the last run."""
        return self.trace

    def _reset(self) -> None:
        # A NonlocalExit abandons the run so far; the inputs of the run stay recorded.
        inputs = self.trace.nodes.get("_INPUT")
        self.trace = Trace(graph_type=self.graph_type)
        if inputs is not None:
            self.trace.nodes["_INPUT"] = inputs

    def _postprocess_message(self, msg) -> None:
        name = msg["name"]
        if name is None:
            return
        if self.param_only and msg["type"] != "param":
            return
        if msg["infer"].get("_do_not_trace") and not msg["is_observed"]:
            return  # an auxiliary latent that exists only inside a reparameterizer
        trace = self.trace
        if name in trace.nodes:
            trace._add_site(name, msg.copy())  # raises for a duplicate sample site
        else:
            trace.nodes[name] = msg.copy()


def _add_shapes_to_error(exc, trace) -> None:
    if getattr(exc, "_ember_shapes_added", False):
        return
    if exc.args and isinstance(exc.args[0], str):
        exc.args = (f"{exc.args[0]}\n{trace.format_shapes()}",) + exc.args[1:]
    try:
        exc._ember_shapes_added = True
    except AttributeError:  # exceptions with __slots__
        pass


class TraceHandler:
    """A function wrapped by :class:`TraceMessenger`: call it, then read ``.trace``.

    Example::

        >>> import ember, ember.distributions as dist
        >>> traced = ember.poutine.trace(lambda: ember.sample("z", dist.Normal(0.0, 1.0)))
        >>> tr = traced.get_trace()
        >>> list(tr.nodes)
        ['_INPUT', 'z', '_RETURN']
    """

    def __init__(self, msngr: TraceMessenger, fn: Callable):
        if not callable(fn):
            raise ValueError(f"trace can only wrap a callable, got {type(fn).__name__}")
        self.fn = fn
        self.msngr = msngr

    def __call__(self, *args, **kwargs):
        return _run_traced(self.msngr, self.fn, args, kwargs)

    @property
    def trace(self) -> Trace:
        return self.msngr.trace

    def get_trace(self, *args, **kwargs) -> Trace:
        """Run the function and return its trace."""
        self(*args, **kwargs)
        return self.msngr.get_trace()


def _run_traced(msngr: TraceMessenger, fn: Callable, args, kwargs, inner=None):
    """Run ``fn(*args, **kwargs)`` under ``msngr`` (and the handler ``inner`` inside it),
    recording ``_INPUT`` and ``_RETURN`` sites; returns ``fn``'s value."""
    record_io = not msngr.param_only
    with msngr:
        trace = msngr.trace
        if record_io:
            trace.nodes["_INPUT"] = {
                "name": "_INPUT",
                "type": "args",
                "args": args,
                "kwargs": kwargs,
            }
        try:
            if inner is None:
                ret = fn(*args, **kwargs)
            else:
                with inner:
                    ret = fn(*args, **kwargs)
        except (ValueError, RuntimeError) as e:
            _add_shapes_to_error(e, trace)
            raise
        # (the trace may have been replaced by _reset after a NonlocalExit)
        if record_io:
            msngr.trace._add_site("_RETURN", {"name": "_RETURN", "type": "return", "value": ret})
    return ret


def trace_run(
    fn: Callable,
    args=(),
    kwargs=None,
    graph_type: str | None = None,
    inner=None,
    msngr: TraceMessenger | None = None,
) -> Trace:
    """The trace of one run of ``fn(*args, **kwargs)``, with the handler ``inner`` (e.g. a
    ``ReplayMessenger``) inside the trace: ``trace(inner(fn)).get_trace(*args, **kwargs)``
    without building the wrapped functions. A caller that needs the partial trace when
    ``fn`` raises passes its own ``msngr`` (a fresh ``TraceMessenger``) and reads
    ``msngr.trace``.

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember.poutine.trace_messenger import trace_run
        >>> tr = trace_run(lambda: ember.sample("z", dist.Normal(0.0, 1.0)))
        >>> list(tr.nodes)
        ['_INPUT', 'z', '_RETURN']
    """
    if msngr is None:
        msngr = TraceMessenger(graph_type=graph_type)
    _run_traced(msngr, fn, args, {} if kwargs is None else kwargs, inner)
    return msngr.trace
