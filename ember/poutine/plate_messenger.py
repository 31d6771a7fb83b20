"""Plates: conditional independence, subsampling and broadcasting of sample sites.

:class:`IndepMessenger` declares independence (a frame on each site's
``cond_indep_stack``), :class:`SubsampleMessenger` adds subsampling and
log-density scaling, :class:`PlateMessenger` adds automatic broadcasting of
distributions to the plates in scope. ``ember.plate`` is a PlateMessenger.
"""

from __future__ import annotations

import numbers
from contextlib import contextmanager

import torch

from ember.distributions.distribution import Distribution
from ember.distributions.util import broadcast_shape
from ember.poutine.messenger import Messenger
from ember.poutine.runtime import (
    _DIM_ALLOCATOR,
    CondIndepStackFrame,
    _apply,
    _get_stack,
    new_message,
)
from ember.util import is_validation_enabled

_EMPTY_SHAPE = torch.Size()
_new_frame = tuple.__new__  # builds a CondIndepStackFrame without its Python-level __new__


def _plates_text(frames) -> str:
    if not frames:
        return "(no plates)"
    return ", ".join(
        f"plate({f.name!r}, size={f.size}, dim={f.dim})" for f in frames if f.dim is not None
    )


def broadcast_to_plates(msg) -> None:
    """Expand ``msg["fn"]``'s batch shape to the vectorized plates of the message.

    Raises a ``ValueError`` naming the site, shapes and plates when the
    distribution (or, with validation on, an observed value) has a size at a
    plate's dim that is neither 1 nor the plate size.

    Example::

        >>> import ember.distributions as dist
        >>> from ember.poutine.runtime import CondIndepStackFrame, new_message
        >>> from ember.poutine.plate_messenger import broadcast_to_plates
        >>> msg = new_message("sample", "x", dist.Normal(0.0, 1.0))
        >>> msg["cond_indep_stack"] = (CondIndepStackFrame("p", -2, 3, 0),)
        >>> broadcast_to_plates(msg); msg["fn"].batch_shape
        torch.Size([3, 1])
    """
    fn = msg["fn"]
    batch_shape = getattr(fn, "batch_shape", None)
    if batch_shape is None:
        return
    n = len(batch_shape)
    value = msg["value"]
    for f in msg["cond_indep_stack"]:
        dim = f.dim
        if dim is not None and f.size != -1 and (-dim > n or batch_shape[dim] != f.size):
            break
    else:
        # Fast path: the distribution already has every plate's size at its dim, so it
        # needs no expanding; an observed value whose batch shape is exactly that passes
        # the checks below too.
        if value is None or not is_validation_enabled() or not isinstance(value, torch.Tensor):
            return
        event_dim = len(getattr(fn, "event_shape", ()))
        if value.shape[: value.dim() - event_dim] == batch_shape:
            return
    frames = [f for f in msg["cond_indep_stack"] if f.dim is not None and f.size != -1]
    if not frames:
        return
    width = n
    for f in frames:
        if -f.dim > width:
            width = -f.dim
    target = [1] * (width - len(batch_shape)) + list(batch_shape)
    for f in frames:
        actual = target[f.dim]
        if actual != 1 and actual != f.size:
            raise ValueError(
                f"Shape mismatch inside plate({f.name!r}) at site {msg['name']!r} dim {f.dim}: "
                f"the distribution has batch_shape {tuple(batch_shape)}, size {actual} at dim "
                f"{f.dim}, but the plate has size {f.size}. Plates in scope: "
                f"{_plates_text(frames)}. Hint: make that dim of the parameters size 1 or "
                f"{f.size}, or move the plate to another dim (dim=...)."
            )
        target[f.dim] = f.size
    target = torch.Size(target)
    if is_validation_enabled():
        if isinstance(value, torch.Tensor):
            event_dim = len(getattr(fn, "event_shape", ()))
            vshape = value.shape[: value.dim() - event_dim]
            bad = None
            for f in frames:
                if -f.dim <= len(vshape) and vshape[f.dim] not in (1, f.size):
                    bad = f
                    break
            if bad is None:
                try:
                    broadcast_shape(vshape, target)
                except ValueError:
                    bad = frames[0]
            if bad is not None:
                raise ValueError(
                    f"Shape mismatch at site {msg['name']!r}: value of shape "
                    f"{tuple(value.shape)} (batch part {tuple(vshape)}, event_dim {event_dim}) "
                    f"does not broadcast with the batch_shape {tuple(target)} required by the "
                    f"plates in scope: {_plates_text(frames)}. Hint: the value's size at each "
                    "plate dim must be 1 or the plate size (after subsampling); index the data "
                    "with the plate's indices, or reshape it so the plate dims line up."
                )
    if target != batch_shape:
        msg["fn"] = fn.expand(target)


class _Subsample(Distribution):
    """Draws ``subsample_size`` distinct indices from ``range(size)`` (all when equal)."""

    def __init__(self, size: int, subsample_size: int, device=None):
        self.size = size
        self.subsample_size = subsample_size
        self.device = device

    def sample(self, sample_shape=_EMPTY_SHAPE):
        if sample_shape:
            raise ValueError("a plate's subsample site cannot draw a sample_shape")
        if self.subsample_size >= self.size:
            return torch.arange(self.size, device=self.device)
        return torch.randperm(self.size, device=self.device)[: self.subsample_size]

    def log_prob(self, x):
        return torch.zeros((), device=x.device if isinstance(x, torch.Tensor) else None)


class IndepMessenger(Messenger):
    """Mark the sites in its block conditionally independent along one dim.

    Used with ``with`` it is vectorized: it claims a batch dim (``dim`` or the
    next free one from the right). Iterated with ``for`` it is sequential:
    each iteration gets its own counter and no dim.

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember.poutine.plate_messenger import IndepMessenger
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
            if size < -1:
                raise ValueError(f"plate {name!r}: size must be a non-negative int, got {size!r}")
        elif not isinstance(size, (numbers.Integral, torch.Tensor)) or (
            isinstance(size, numbers.Integral) and size < -1
        ):
            raise ValueError(f"plate {name!r}: size must be a non-negative int, got {size!r}")
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
            self.dim = _DIM_ALLOCATOR.allocate(self.name, self._user_dim)
        self._frame = _new_frame(
            CondIndepStackFrame, (self.name, self.dim, self._frame_size(), self.counter, self.size)
        )
        super().__enter__()
        return self.indices

    def __exit__(self, exc_type, exc_value, traceback):
        if self._vectorized:
            _DIM_ALLOCATOR.free(self.name, self.dim)
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
            _DIM_ALLOCATOR.free(self.name, self.dim)
        self._vectorized = None
        self.counter = 0

    def _process_message(self, msg) -> None:
        msg["cond_indep_stack"] = (self._frame,) + msg["cond_indep_stack"]


def _subsample_site(name, size, subsample_size, subsample, device):
    """Draw (or record) the subsample indices of a plate through the handler stack."""
    if size == -1:
        if subsample_size is not None or subsample is not None:
            raise ValueError(f"plate {name!r}: give size= when subsampling")
        return -1, -1, None
    if subsample_size is not None:
        if not isinstance(subsample_size, numbers.Integral) or subsample_size <= 0:
            raise ValueError(
                f"plate {name!r}: subsample_size must be a positive int, got {subsample_size!r}"
            )
        if isinstance(size, numbers.Integral) and subsample_size > size:
            raise ValueError(
                f"plate {name!r}: subsample_size={subsample_size} exceeds size={size}; "
                "use a subsample_size between 1 and size"
            )
    stack = _get_stack()
    if stack:
        fn = _Subsample(size, size if subsample_size is None else subsample_size, device)
        msg = new_message("sample", name, fn, (), None, subsample)
        _apply(stack, msg)
        subsample = msg["value"]
    elif subsample is None:
        if subsample_size is None or subsample_size == size:
            return size, size, None  # the indices are made only if asked for
        subsample = _Subsample(size, subsample_size, device).sample()
    n = subsample.shape[0] if isinstance(subsample, torch.Tensor) else len(subsample)
    if subsample_size is None:
        subsample_size = n
    elif subsample_size != n:
        raise ValueError(
            f"plate {name!r}: subsample_size does not match len(subsample), {subsample_size} vs "
            f"{n}. Did you use a different subsample_size in the model and the guide?"
        )
    return size, subsample_size, subsample


class SubsampleMessenger(IndepMessenger):
    """An :class:`IndepMessenger` that subsamples and scales log-densities by size/subsample_size.

    Example::

        >>> import ember
        >>> from ember.poutine.plate_messenger import SubsampleMessenger
        >>> with SubsampleMessenger("data", 100, subsample_size=10) as idx:
        ...     idx.shape
        torch.Size([10])
    """

    def __init__(
        self,
        name: str,
        size: int | None = None,
        subsample_size: int | None = None,
        subsample=None,
        dim: int | None = None,
        use_cuda=None,
        device=None,
    ):
        if size is None and subsample is not None:
            size = len(subsample)
        if device is None and use_cuda:
            device = "cuda"
        super().__init__(name, size, dim, device)
        self.size, self.subsample_size, self._indices = _subsample_site(
            name, self.size, subsample_size, subsample, device
        )
        self._scaled = self.size != self.subsample_size
        self._scale_factor = self.size / self.subsample_size if self._scaled else 1.0

    @property
    def indices(self) -> torch.Tensor | None:
        if self._indices is None:
            if self.size == -1:
                return None  # a plate without a size only declares independence
            self._indices = torch.arange(int(self.size), device=self.device)
        return self._indices

    def _frame_size(self):
        return self.subsample_size

    def _process_message(self, msg) -> None:
        msg["cond_indep_stack"] = (self._frame,) + msg["cond_indep_stack"]
        if self._scaled:
            msg["scale"] = msg["scale"] * self._scale_factor

    def _subsample_value(self, msg) -> None:
        if self.dim is None:
            return
        event_dim = msg["kwargs"].get("event_dim")
        if event_dim is None:
            return
        value = msg["value"]
        dim = self.dim - event_dim
        shape = value.shape
        if len(shape) < -dim or shape[dim] == 1:
            return
        if shape[dim] != self.size:
            if is_validation_enabled():
                what = (
                    f"ember.param({msg['name']!r}, ..., event_dim={event_dim})"
                    if msg["type"] == "param"
                    else f"ember.subsample(..., event_dim={event_dim})"
                )
                raise ValueError(
                    f"Inside plate({self.name!r}, size={self.size}, dim={self.dim}) invalid shape "
                    f"of {what}: {tuple(shape)}; dim {dim} must have size 1 or the full plate "
                    f"size {self.size}. Hint: check event_dim and the plate's dim."
                )
            return
        if self.subsample_size < self.size:
            new_value = value.index_select(dim, self.indices)
            if msg["type"] == "param":
                unconstrained = getattr(value, "unconstrained", None)
                if unconstrained is not None:
                    new_value.unconstrained = unconstrained
            msg["value"] = new_value

    def _pyro_post_param(self, msg) -> None:
        self._subsample_value(msg)

    def _pyro_post_subsample(self, msg) -> None:
        self._subsample_value(msg)


class PlateMessenger(SubsampleMessenger):
    """A subsampling plate that also broadcasts sample sites' distributions to the plates in scope.

    Example::

        >>> import ember, ember.distributions as dist
        >>> with ember.plate("a", 3), ember.plate("b", 2):
        ...     ember.sample("x", dist.Normal(0.0, 1.0)).shape
        torch.Size([2, 3])
    """

    def __enter__(self):
        # Only the outermost vectorized plate broadcasts: it is the last to see a message
        # and then knows every plate around the site.
        broadcast = True
        for h in _get_stack():
            if isinstance(h, PlateMessenger) and h._vectorized:
                broadcast = False
                break
        self._broadcast = broadcast
        return super().__enter__()

    def _process_message(self, msg) -> None:
        msg["cond_indep_stack"] = (self._frame,) + msg["cond_indep_stack"]
        if self._scaled:
            msg["scale"] = msg["scale"] * self._scale_factor
        if self._broadcast and msg["type"] == "sample" and not msg["done"]:
            broadcast_to_plates(msg)


class BroadcastMessenger(Messenger):
    """Expand sample sites' distributions to the vectorized plates around them.

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember.poutine.plate_messenger import IndepMessenger
        >>> with ember.poutine.broadcast(), IndepMessenger("i", 4):
        ...     ember.sample("x", dist.Normal(0.0, 1.0)).shape
        torch.Size([4])
    """

    def _pyro_sample(self, msg) -> None:
        if msg["done"]:
            return
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
    from ember.poutine.messenger import block_messengers

    if (name is None) == (dim is None):
        raise ValueError("block_plate: give exactly one of name= or dim=")

    def predicate(m):
        return isinstance(m, IndepMessenger) and (
            m.name == name if name is not None else m.dim == dim
        )

    with block_messengers(predicate) as blocked:
        if strict and not blocked:
            raise ValueError(
                "block_plate: no enclosing plate with "
                + (f"name {name!r}" if name is not None else f"dim {dim}")
            )
        yield
