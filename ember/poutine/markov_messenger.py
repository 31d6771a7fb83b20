"""MarkovMessenger: declares that a program is Markov, so enumeration can
recycle tensor dims of sites that later sites can no longer see."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Callable, Union

from ember.poutine.messenger import Messenger

_MARKOV_IDS = itertools.count()


class MarkovMessenger(Messenger):
    """Mark a sequence of steps as Markov with ``history`` steps of memory.

    Each entry into the messenger (each iteration of ``markov(range(T))``, each
    ``with`` block, each call of a decorated function) opens a new *frame*. A
    sample site may depend only on sites of its own frame, of the ``history``
    frames before it, and of sites outside the Markov context. Entries nested
    in an open frame (recursion) follow that frame; with ``keep=False`` sibling
    branches cannot see each other, with ``keep=True`` each entry follows the
    one before it, as in a sequence.

    :class:`~ember.poutine.enum_messenger.EnumMessenger` uses this to reuse the
    enumeration dims of sites that are out of sight, so an HMM of any length
    needs only ``history + 1`` enumeration dims. Each sample site records, per
    Markov context, its frame, the frames it sees, and the oldest frame that any
    site still to come can see (frames are numbered in the order they open).

    :param history: how many previous frames a site may depend on.
    :param keep: whether branches entered from the same frame see each other.
    :param dim: an optional tensor dim for this index; recorded in each site's
        ``infer["_markov_dim"]`` for inference algorithms, not used otherwise.
    :param name: an optional name for this Markov index; recorded likewise in
        ``infer["_markov_name"]``.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember import poutine
        >>> def hmm():
        ...     x = 0
        ...     for t in poutine.markov(range(5)):
        ...         probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]])[x]
        ...         x = ember.sample(f"x_{t}", dist.Categorical(probs),
        ...                          infer={"enumerate": "parallel"})
        >>> tr = poutine.trace(poutine.enum(hmm, first_available_dim=-1)).get_trace()
        >>> [tuple(tr.nodes[f"x_{t}"]["value"].shape) for t in range(5)]
        [(2,), (2, 1), (2,), (2, 1), (2,)]
    """

    def __init__(
        self,
        history: int = 1,
        keep: bool = False,
        dim: int | None = None,
        name: str | None = None,
    ):
        if not isinstance(history, int) or isinstance(history, bool) or history < 0:
            raise ValueError(f"markov: history must be a non-negative int, got {history!r}")
        if dim is not None and (not isinstance(dim, int) or dim >= 0):
            raise ValueError(f"markov: dim must be a negative int or None, got {dim!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"markov: name must be a str or None, got {type(name).__name__}")
        super().__init__()
        self.history = history
        self.keep = bool(keep)
        self.dim = dim
        self.name = name
        self._key = next(_MARKOV_IDS)
        self._frame_ids = itertools.count()
        self._chain = []  # frames a new entry can follow, oldest first
        self._open = []  # indices into _chain of the frames currently entered

    def __enter__(self):
        if not self._open:
            super().__enter__()
        self._chain.append(next(self._frame_ids))
        self._open.append(len(self._chain) - 1)
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        index = self._open.pop()
        if self._open and not self.keep:
            del self._chain[index:]  # siblings entered later must not see this branch
        if not self._open:
            return super().__exit__(exc_type, exc_value, traceback)
        return None

    def __call__(self, fn: Callable) -> Callable:
        def wrapped(*args, **kwargs):
            with self:
                return fn(*args, **kwargs)

        wrapped.__wrapped__ = fn
        wrapped.__name__ = getattr(fn, "__name__", "markov_wrapped")
        wrapped.__doc__ = getattr(fn, "__doc__", None)
        return wrapped

    def generator(self, iterable: Iterable):
        """Yield the items of ``iterable``, each inside a new frame."""
        for item in iterable:
            with self:
                yield item

    def _visible_frames(self) -> frozenset:
        here = self._open[-1]
        recent = self._chain[max(0, here - self.history) : here + 1]
        ancestors = [self._chain[i] for i in self._open[-self.history - 1 :]]
        return frozenset(recent).union(ancestors)

    def _pyro_sample(self, msg) -> None:
        if not self._open:
            return
        infer = dict(msg["infer"] or {})
        scope = dict(infer.get("_markov", {}))
        # (this frame, the frames it sees, the oldest frame any later site may still see)
        horizon = self._chain[max(0, self._open[0] - self.history)]
        scope[self._key] = (self._chain[self._open[-1]], self._visible_frames(), horizon)
        infer["_markov"] = scope
        if self.dim is not None:
            infer.setdefault("_markov_dim", self.dim)
        if self.name is not None:
            infer.setdefault("_markov_name", self.name)
        msg["infer"] = infer


def markov(
    fn: Union[Callable, Iterable, None] = None,
    history: int = 1,
    keep: bool = False,
    dim: int | None = None,
    name: str | None = None,
):
    """Markov declaration as a context manager, decorator or iterator wrapper.

    ``markov()`` is a context manager (each ``with`` block is one step);
    ``markov(fn)`` decorates a function (each call is one step, recursion nests);
    ``markov(iterable)`` yields the items of the iterable, each inside its own
    step. See :class:`MarkovMessenger` for the arguments.

    Example::

        >>> from ember import poutine
        >>> [t for t in poutine.markov(range(3))]
        [0, 1, 2]
        >>> with poutine.markov(history=2):
        ...     pass
    """
    messenger = MarkovMessenger(history=history, keep=keep, dim=dim, name=name)
    if fn is None:
        return messenger
    if callable(fn):
        return messenger(fn)
    if isinstance(fn, Iterable):
        return messenger.generator(fn)
    raise TypeError(
        f"markov expects a callable, an iterable or None as its first argument, got "
        f"{type(fn).__name__}"
    )
