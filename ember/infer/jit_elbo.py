"""The ``Jit*_ELBO`` names of Pyro, for programs that use them.

Pyro's ``JitTrace_ELBO`` and friends compile the loss with the PyTorch JIT.
ember has no such compilation step: each name here is the corresponding
estimator, unchanged, and constructing one warns once (``UserWarning``) that
it runs without compilation. Results are the same in distribution, so a Pyro
program that chose a JIT loss runs unchanged under ``import ember as pyro``.
"""

from __future__ import annotations

from ember.infer.trace_elbo import Trace_ELBO
from ember.infer.trace_mean_field_elbo import TraceMeanField_ELBO
from ember.infer.traceenum_elbo import TraceEnum_ELBO
from ember.infer.tracegraph_elbo import TraceGraph_ELBO
from ember.util import warn_once

__all__ = ["JitTraceEnum_ELBO", "JitTraceGraph_ELBO", "JitTraceMeanField_ELBO", "JitTrace_ELBO"]


def _warn_once(name: str, base: str) -> None:
    warn_once(
        name,
        f"ember.infer.{name} runs as {base}: ember does not JIT-compile losses "
        f"(the results are the same in distribution); use {base} to silence this warning",
        UserWarning,
        stacklevel=4,
    )


class JitTrace_ELBO(Trace_ELBO):
    """:class:`~ember.infer.trace_elbo.Trace_ELBO` under Pyro's JIT name (no compilation).

    Example::

        >>> import warnings
        >>> from ember.infer import JitTrace_ELBO, Trace_ELBO
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     elbo = JitTrace_ELBO(num_particles=2)
        >>> isinstance(elbo, Trace_ELBO), elbo.num_particles
        (True, 2)
    """

    def __init__(self, *args, **kwargs):
        _warn_once("JitTrace_ELBO", "Trace_ELBO")
        super().__init__(*args, **kwargs)


class JitTraceGraph_ELBO(TraceGraph_ELBO):
    """:class:`~ember.infer.tracegraph_elbo.TraceGraph_ELBO` under Pyro's JIT name.

    Example::

        >>> import warnings
        >>> from ember.infer import JitTraceGraph_ELBO, TraceGraph_ELBO
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     elbo = JitTraceGraph_ELBO()
        >>> isinstance(elbo, TraceGraph_ELBO)
        True
    """

    def __init__(self, *args, **kwargs):
        _warn_once("JitTraceGraph_ELBO", "TraceGraph_ELBO")
        super().__init__(*args, **kwargs)


class JitTraceMeanField_ELBO(TraceMeanField_ELBO):
    """:class:`~ember.infer.trace_mean_field_elbo.TraceMeanField_ELBO` under Pyro's JIT name.

    Example::

        >>> import warnings
        >>> from ember.infer import JitTraceMeanField_ELBO, TraceMeanField_ELBO
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     elbo = JitTraceMeanField_ELBO()
        >>> isinstance(elbo, TraceMeanField_ELBO)
        True
    """

    def __init__(self, *args, **kwargs):
        _warn_once("JitTraceMeanField_ELBO", "TraceMeanField_ELBO")
        super().__init__(*args, **kwargs)


class JitTraceEnum_ELBO(TraceEnum_ELBO):
    """:class:`~ember.infer.traceenum_elbo.TraceEnum_ELBO` under Pyro's JIT name.

    Example::

        >>> import warnings
        >>> from ember.infer import JitTraceEnum_ELBO, TraceEnum_ELBO
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     elbo = JitTraceEnum_ELBO(max_plate_nesting=1)
        >>> isinstance(elbo, TraceEnum_ELBO)
        True
    """

    def __init__(self, *args, **kwargs):
        _warn_once("JitTraceEnum_ELBO", "TraceEnum_ELBO")
        super().__init__(*args, **kwargs)
