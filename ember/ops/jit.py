"""Pyro's ``pyro.ops.jit.trace`` interface, run eagerly.

Pyro traces a function with :func:`torch.jit.trace` once per call signature,
feeding its ``pyro.param`` values in as trace inputs. ember's runtime is lean
enough that it does not rely on TorchScript tracing: :func:`trace` returns a
:class:`CompiledFunction` that keeps Pyro's interface (per-signature cache in
:attr:`CompiledFunction.compiled`, ``ignore_warnings``, ``jit_options``,
``compile_time``) but calls the wrapped function eagerly, so parameters, random
sampling and Python control flow behave exactly as without the decorator.
"""

import time

from ember.util import ignore_jit_warnings

__all__ = ["CompiledFunction", "trace"]


class CompiledFunction:
    """Callable returned by :func:`trace`; runs ``fn`` eagerly.

    :attr:`compiled` maps a call signature ``(number of positional args, sorted
    keyword names)`` to the callable used for it (``fn`` itself, wrapped to silence
    JIT warnings when ``ignore_warnings`` is set). :attr:`compile_time` is the
    time spent preparing the first signature when ``jit_options`` contains
    ``time_compilation=True`` (essentially zero, since nothing is compiled).

    Example::

        >>> import torch
        >>> f = CompiledFunction(lambda x, y=1.0: x * y)
        >>> f(torch.tensor(2.0), y=3.0)
        tensor(6.)
        >>> list(f.compiled)
        [(1, ('y',))]
    """

    def __init__(self, fn, ignore_warnings=False, jit_options=None):
        if not callable(fn):
            raise TypeError(f"trace expects a callable, got {type(fn).__name__}")
        self.fn = fn
        self.compiled = {}
        self.ignore_warnings = ignore_warnings
        self.jit_options = {} if jit_options is None else dict(jit_options)
        self.jit_options.setdefault("check_trace", False)
        self.compile_time = None

    def __call__(self, *args, **kwargs):
        key = (len(args), tuple(sorted(kwargs)))
        runner = self.compiled.get(key)
        if runner is None:
            start = time.perf_counter()
            runner = ignore_jit_warnings()(self.fn) if self.ignore_warnings else self.fn
            self.compiled[key] = runner
            if self.jit_options.get("time_compilation", False):
                self.compile_time = time.perf_counter() - start
        return runner(*args, **kwargs)


def trace(fn=None, ignore_warnings=False, jit_options=None):
    """Decorator with the interface of Pyro's ``pyro.ops.jit.trace``; the result is a
    :class:`CompiledFunction` that runs ``fn`` eagerly (see the module docstring).

    Usable bare (``@trace``) or with options (``@trace(ignore_warnings=True)``).

    Example::

        >>> import torch
        >>> @trace
        ... def add(*xs):
        ...     return sum(xs)
        >>> add(torch.tensor(1.0), torch.tensor(2.0))
        tensor(3.)
    """
    if fn is None:
        return lambda f: trace(f, ignore_warnings=ignore_warnings, jit_options=jit_options)
    return CompiledFunction(fn, ignore_warnings=ignore_warnings, jit_options=jit_options)
