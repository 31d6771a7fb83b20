"""Plates: conditional independence, subsampling and broadcasting of sample sites.

:class:`~ember.poutine.indep_messenger.IndepMessenger` declares independence (a
frame on each site's ``cond_indep_stack``),
:class:`~ember.poutine.subsample_messenger.SubsampleMessenger` adds subsampling
and log-density scaling, :class:`PlateMessenger` adds automatic broadcasting of
distributions to the plates in scope (:mod:`ember.poutine.broadcast`).
``ember.plate`` is a PlateMessenger.
"""

from __future__ import annotations

import inspect
import sys
from contextlib import contextmanager

from ember.poutine.broadcast import broadcast_to_plates
from ember.poutine.indep_messenger import IndepMessenger
from ember.poutine.messenger import block_messengers
from ember.poutine.runtime import GENERATOR_HANDLERS, HANDLER_STACK
from ember.poutine.subsample_messenger import SubsampleMessenger

__all__ = ["PlateMessenger", "block_plate"]

_GENERATOR = inspect.CO_GENERATOR
# the code that runs a @contextmanager generator up to its yield
_CM_ENTER = type(contextmanager(iter)(())).__enter__.__code__


class PlateMessenger(SubsampleMessenger):
    """A subsampling plate that also broadcasts sample sites' distributions to the plates in scope.

    Example::

        >>> import ember, ember.distributions as dist
        >>> with ember.plate("a", 3), ember.plate("b", 2):
        ...     ember.sample("x", dist.Normal(0.0, 1.0)).shape
        torch.Size([2, 3])
    """

    #: The generator frame that entered this plate with ``with`` (None for other callers);
    #: while that generator is suspended no handler may be entered above the plate.
    generator_frame = None

    def __enter__(self):
        if self._vectorized is not False:  # (a sequential plate's __iter__ is a generator)
            caller = sys._getframe(1)
            if caller.f_code.co_flags & _GENERATOR and (
                caller.f_back is not None and caller.f_back.f_code is not _CM_ENTER
            ):
                self.generator_frame = caller
                GENERATOR_HANDLERS.add(self)
        # Only the outermost vectorized plate broadcasts: it is the last to see a message
        # and then knows every plate around the site.
        broadcast = True
        for h in HANDLER_STACK.get():
            if isinstance(h, PlateMessenger) and h._vectorized:
                broadcast = False
                break
        self._broadcast = broadcast
        return super().__enter__()

    def __exit__(self, exc_type, exc_value, traceback):
        if self.generator_frame is not None:
            self.generator_frame = None
            GENERATOR_HANDLERS.discard(self)
        return super().__exit__(exc_type, exc_value, traceback)

    def _process_message(self, msg) -> None:
        msg["cond_indep_stack"] = (self._frame,) + msg["cond_indep_stack"]
        if self._scaled:
            msg["scale"] = msg["scale"] * self._scale_factor
        if self._broadcast and msg["type"] == "sample" and not msg["done"]:
            broadcast_to_plates(msg)


@contextmanager
def block_plate(name: str | None = None, dim: int | None = None, *, strict: bool = True):
    """Temporarily leave the enclosing plate named ``name`` (or at ``dim``).

    Sites inside the block are not in that plate (no frame, no scaling, no
    broadcasting along it). With ``strict`` a missing plate is an error.

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember.poutine.plate_messenger import block_plate
        >>> with ember.plate("a", 3):
        ...     with block_plate("a"):
        ...         ember.sample("x", dist.Normal(0.0, 1.0)).shape
        torch.Size([])
    """
    if (name is None) == (dim is None):
        raise ValueError("block_plate: give exactly one of name= or dim=")

    def predicate(m):
        return isinstance(m, IndepMessenger) and (
            m.name == name if name is not None else m.dim == dim
        )

    with block_messengers(predicate) as blocked:
        if strict and not blocked:
            raise ValueError(
                "block_plate matched 0 messengers: no enclosing plate with "
                + (f"name {name!r}" if name is not None else f"dim {dim}")
            )
        yield
