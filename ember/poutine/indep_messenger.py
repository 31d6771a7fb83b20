"""IndepMessenger: conditional independence along one dim, the base of every plate.

Example::

    >>> from ember.poutine.indep_messenger import CondIndepStackFrame, IndepMessenger
    >>> IndepMessenger.__name__
    'IndepMessenger'
"""

from __future__ import annotations

import numbers

import torch

from ember.poutine.messenger import Messenger
from ember.poutine.runtime import DIM_ALLOCATOR, CondIndepStackFrame
from ember.util import is_poutine_validation_enabled

__all__ = ["CondIndepStackFrame", "IndepMessenger", "ZeroSizePlateError"]

_new_frame = tuple.__new__  # builds a CondIndepStackFrame without its Python-level __new__


class ZeroSizePlateError(ValueError, ZeroDivisionError):
    """A plate of size 0: its log-density scale ``size / subsample_size`` is undefined.

    A ``ValueError``, and a ``ZeroDivisionError`` as Pyro raises there.
    """


class IndepMessenger(Messenger):
    """Mark the sites in its block conditionally independent along one dim.

    Used with ``with`` it is vectorized: it claims a batch dim (``dim`` or the
    next free one from the right). Iterated with ``for`` it is sequential:
    each iteration gets its own counter and no dim.

    Example::

        >>> import ember, ember.distributions as dist
        >>> with ember.poutine.trace() as tr, IndepMessenger("i", size=4) as ind:
        ...     x = ember.sample("x", dist.Normal(0.0, 1.0).expand([4]))
        >>> tr.trace.nodes["x"]["cond_indep_stack"][0].dim
        -1
    """

    def __init__(self, name: str, size: int | None = None, dim: int | None = None, device=None):
        if not isinstance(name, str):
            raise TypeError(f"plate name must be a str, got {type(name).__name__}")
        if size is None:
            size = -1
        elif type(size) is int:  # the common case, without the slower abstract-class checks
            if size < 1:
                _bad_size(name, size)
        else:
            _check_size(name, size)
        if dim is not None and (not isinstance(dim, int) or dim >= 0):
            raise ValueError(
                f"plate {name!r}: dim must be a negative int counted from the right (e.g. -1), "
                f"got {dim!r}"
            )
        self.name = name
        self.size = size
        self._user_dim = dim
        self.dim = dim
        self.device = device
        self.counter = 0
        self._vectorized = None
        self._frame = None

    @property
    def indices(self) -> torch.Tensor | None:
        """``arange(size)`` (None for a plate without a size)."""
        if self.size == -1:
            return None
        return torch.arange(int(self.size), device=self.device)

    def _frame_size(self):
        return self.size

    def __enter__(self):
        if self._vectorized is not False:
            self._vectorized = True
        if self._vectorized:
            self.dim = DIM_ALLOCATOR.allocate(self.name, self._user_dim)
        self._frame = _new_frame(
            CondIndepStackFrame, (self.name, self.dim, self._frame_size(), self.counter, self.size)
        )
        super().__enter__()
        return self.indices

    def __exit__(self, exc_type, exc_value, traceback):
        if self._vectorized:
            DIM_ALLOCATOR.free(self.name, self.dim)
        return super().__exit__(exc_type, exc_value, traceback)

    def next_context(self) -> None:
        """Advance the counter of a sequential plate."""
        self.counter += 1

    def __iter__(self):
        if self._vectorized:
            raise ValueError(f"plate {self.name!r} is already used as a vectorized `with` block")
        self._vectorized = False
        self.dim = None
        for i in self.indices:
            self.next_context()
            with self:
                yield i if isinstance(i, numbers.Number) else int(i)

    def __len__(self) -> int:
        return int(self.size)

    def _reset(self) -> None:
        if self._vectorized:
            DIM_ALLOCATOR.free(self.name, self.dim)
        self._vectorized = None
        self.counter = 0

    def _process_message(self, msg) -> None:
        msg["cond_indep_stack"] = (self._frame,) + msg["cond_indep_stack"]


def _check_size(name, size) -> None:
    """Refuse a plate size that is not a positive integer (``size`` is not a plain int)."""
    if isinstance(size, bool) or (isinstance(size, torch.Tensor) and size.dtype == torch.bool):
        raise TypeError(
            f"plate {name!r}: size must be a positive int, got the bool {size!r}. Hint: pass "
            "the number of elements, e.g. len(data)"
        )
    if isinstance(size, torch.Tensor):
        if size.dim() != 0 or size.is_floating_point() or size.is_complex():
            raise TypeError(
                f"plate {name!r}: a tensor size must be a 0-dim integer tensor, got shape "
                f"{tuple(size.shape)} and dtype {size.dtype}. Hint: pass len(data) or "
                "data.shape[0]"
            )
        # (reading the value is a host sync: only with validation on, and never while
        # the JIT traces, where the size is symbolic)
        if is_poutine_validation_enabled() and not torch.jit.is_tracing():
            if int(size) < 1:
                _bad_size(name, int(size))
        return
    if not isinstance(size, numbers.Integral):
        raise TypeError(
            f"plate {name!r}: size must be a positive int, got {type(size).__name__} {size!r}. "
            "Hint: pass the number of elements as an int, e.g. int(size)"
        )
    if size < 1:
        _bad_size(name, size)


def _bad_size(name, size) -> None:
    if size == 0:
        raise ZeroSizePlateError(
            f"plate {name!r} has size 0; a plate needs at least one element (its "
            "log-densities are scaled by size / subsample_size). Hint: skip the plate when "
            "there is no data."
        )
    raise ValueError(
        f"plate {name!r}: size must be a positive int, got {size!r}. Hint: leave size unset "
        "(None) for a plate of unknown size, or pass the number of elements"
    )
