"""Data-parallel training on ``torch.distributed``.

Each process (a *rank*, started by ``torchrun``) runs the same model and guide
on its shard of the data; :class:`DistributedOptimizer` averages the gradients
of every parameter across the ranks before the optimizer step, so every rank
holds the same parameters after every step. :func:`shard_indices` gives a rank
its part of a data plate: inside ``plate(name, size, subsample=shard)`` the
log-densities are scaled by ``size / len(shard)``, so each rank's loss is an
unbiased estimate of the full-data loss and their average (what the averaged
gradients follow) is the full-data loss itself when the shards partition the
data evenly.

What is synchronized:

* gradients, averaged in one all-reduce per step over one flat bucket per
  dtype and device (not one call per parameter);
* parameters, broadcast from rank 0 when a step first reads them (at their
  creation, inside :class:`~ember.infer.SVI` steps: the optimizer's
  :meth:`~DistributedOptimizer.step_context`), so ranks whose initial values
  differ (e.g. drawn from the data) compute their first gradients at the same
  point; parameters that reach the optimizer without having been broadcast
  (a hand-written loop) are broadcast before their first update;
* the order of parameters: by name in the param store, on every rank.

What is not: the data (each rank loads its shard), random numbers (seed every
rank alike with ``ember.set_rng_seed`` for identical draws of global latents,
or differently for independent ones), and the param store and optimizer state
on disk (rank 0 saves; every rank loads the same files to resume).

Example (one process, no process group: the optimizer is the wrapped one)::

    >>> import torch, ember
    >>> from ember.optim import Adam
    >>> from ember.optim.distributed import DistributedOptimizer, shard_indices
    >>> optim = DistributedOptimizer(Adam({"lr": 0.1}))
    >>> optim.world_size, shard_indices(10, rank=1, world_size=3).tolist()
    (1, [4, 5, 6])
"""

from __future__ import annotations

import weakref
import zlib
from contextlib import contextmanager
from typing import Dict, Iterator, List, Tuple

import torch
import torch.distributed as tdist

from ember.optim.optim import PyroOptim
from ember.params.param_store import get_param_store
from ember.poutine.messenger import Messenger
from ember.poutine.scale_messenger import ScaleMessenger
from ember.primitives import plate

__all__ = [
    "DistributedOptimizer",
    "HorovodOptimizer",
    "broadcast_parameters",
    "get_rank",
    "get_world_size",
    "shard_indices",
    "shard_plate",
]


def _initialized() -> bool:
    return tdist.is_available() and tdist.is_initialized()


def get_rank(group=None) -> int:
    """This process's rank in ``group`` (0 without a process group)."""
    return tdist.get_rank(group) if _initialized() else 0


def get_world_size(group=None) -> int:
    """The number of processes in ``group`` (1 without a process group)."""
    return tdist.get_world_size(group) if _initialized() else 1


def shard_indices(
    size: int, rank: int | None = None, world_size: int | None = None, device=None
) -> torch.Tensor:
    """The indices of ``range(size)`` that rank ``rank`` of ``world_size`` owns.

    Contiguous blocks whose lengths differ by at most one (the first
    ``size % world_size`` ranks take one more). Use them as a plate's
    ``subsample`` to make the plate carry the global size and this rank's
    shard: ``with ember.plate("data", size, subsample=shard_indices(size)):``.
    To subsample within the shard, index it with random positions, e.g.
    ``shard[torch.randperm(len(shard))[:batch]]``.

    :param size: the global size of the data plate.
    :param rank: the rank (default: this process's).
    :param world_size: the number of ranks (default: the process group's).

    Example::

        >>> [shard_indices(7, r, 3).tolist() for r in range(3)]
        [[0, 1, 2], [3, 4], [5, 6]]
    """
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    for what, value in (("size", size), ("world_size", world_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"shard_indices: {what} must be a positive int, got {value!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"shard_indices: rank must be an int in [0, {world_size}), got {rank!r}")
    if size < world_size:
        raise ValueError(
            f"shard_indices: {size} data points cannot be shared by {world_size} ranks (each "
            "rank needs at least one); use fewer processes"
        )
    base, extra = divmod(size, world_size)
    start = rank * base + min(rank, extra)
    stop = start + base + (1 if rank < extra else 0)
    return torch.arange(start, stop, device=device)


@contextmanager
def shard_plate(
    name: str, size: int, subsample_size: int | None = None, dim: int | None = None, group=None
) -> Iterator[torch.Tensor]:
    """A data plate of global size ``size`` over this rank's shard (optionally a random
    ``subsample_size`` of it), scaled so that the average over the ranks of their
    losses (what :class:`DistributedOptimizer`'s averaged gradients follow) is an
    unbiased estimate of the full-data loss, and equals it exactly without
    subsampling, also when the shards differ in size. Yields the indices, as
    ``ember.plate`` does. With one process it is the plate over all the data.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> def model(data):
        ...     with shard_plate("data", len(data)) as idx:
        ...         ember.sample("x", dist.Normal(0.0, 1.0), obs=data[idx])
        >>> tr = ember.poutine.trace(model).get_trace(torch.zeros(4))
        >>> tr.nodes["x"]["value"].shape
        torch.Size([4])
    """
    world = get_world_size(group)
    shard = shard_indices(size, get_rank(group), world)
    index = shard
    if subsample_size is not None:
        if isinstance(subsample_size, bool) or not isinstance(subsample_size, int):
            raise ValueError(f"shard_plate: subsample_size must be an int, got {subsample_size!r}")
        if not 0 < subsample_size <= len(shard):
            raise ValueError(
                f"shard_plate {name!r}: subsample_size={subsample_size} must be in [1, "
                f"{len(shard)}] (this rank's shard of the {size} data points)"
            )
        index = shard[torch.randperm(len(shard), device=shard.device)[:subsample_size]]
    # the plate scales by size / len(index); the ranks' average needs world * len(shard) /
    # len(index) for each rank's sum: equal when the shards are equal
    correction = world * len(shard) / size
    with plate(name, size, subsample=index, dim=dim) as idx:
        if correction == 1.0:
            yield idx
        else:
            with ScaleMessenger(scale=correction):
                yield idx


def _buckets(tensors: List[torch.Tensor]) -> Dict[Tuple, List[int]]:
    """Positions of ``tensors`` grouped by (dtype, device): one flat bucket each."""
    buckets: Dict[Tuple, List[int]] = {}
    for i, t in enumerate(tensors):
        buckets.setdefault((t.dtype, t.device), []).append(i)
    return buckets


def broadcast_parameters(params: List[torch.Tensor], src: int = 0, group=None) -> None:
    """Overwrite ``params`` (in place, on every rank) with rank ``src``'s values: one
    broadcast per flat bucket. Every rank must pass the same parameters in the same
    order (e.g. sorted by name). Without a process group it does nothing."""
    if get_world_size(group) == 1 or not params:
        return
    with torch.no_grad():
        for positions in _buckets(params).values():
            flat = torch.cat([params[i].detach().reshape(-1) for i in positions])
            tdist.broadcast(flat, src=src, group=group)
            offset = 0
            for i in positions:
                p = params[i]
                n = p.numel()
                p.copy_(flat[offset : offset + n].view_as(p))
                offset += n


class DistributedOptimizer(PyroOptim):
    """A :class:`~ember.optim.PyroOptim` for data-parallel training: before each
    step it averages the gradients of the step's parameters across the ranks of
    the process group (one all-reduce per flat bucket), and broadcasts from rank
    0 the parameters it has not seen before. Parameters are ordered by their
    names in the param store on every rank, so they must be named alike on every
    rank (they are when every rank runs the same model and guide).

    Without an initialized process group (or with one process) it steps as the
    wrapped optimizer does.

    :param optim: the optimizer to wrap (e.g. ``ember.optim.Adam({"lr": 0.01})``):
        its constructor, arguments and clipping are used.
    :param group: the ``torch.distributed`` process group (default: the world).
    :param validate: on each change of the set of parameters, check with one
        extra all-reduce that every rank has the same parameter names (a
        mismatch would otherwise mix gradients of different parameters).

    Example::

        >>> import torch
        >>> from ember.optim import SGD
        >>> from ember.optim.distributed import DistributedOptimizer
        >>> x = torch.tensor([1.0], requires_grad=True)
        >>> (2 * x).sum().backward()
        >>> DistributedOptimizer(SGD({"lr": 0.5}))([x]); x.detach()
        tensor([0.])
    """

    def __init__(self, optim: PyroOptim, group=None, validate: bool = True):
        if not isinstance(optim, PyroOptim):
            raise TypeError(
                "DistributedOptimizer wraps an ember.optim optimizer such as "
                f"ember.optim.Adam({{'lr': 0.01}}), got {type(optim).__name__}"
            )
        super().__init__(optim.pt_optim_constructor, optim.pt_optim_args, optim.pt_clip_args)
        self.group = group
        self.validate = validate
        self._synced: Dict[int, weakref.ref] = {}  # the parameters broadcast so far
        self._order: tuple | None = None  # (params as passed, the same sorted by name)

    def is_synced(self, p: torch.Tensor) -> bool:
        """Whether the unconstrained parameter ``p`` has been broadcast from rank 0."""
        ref = self._synced.get(id(p))
        return ref is not None and ref() is p

    def mark_synced(self, p: torch.Tensor) -> None:
        """Record that ``p`` now holds rank 0's value on every rank."""
        self._synced[id(p)] = weakref.ref(p)

    def step_context(self) -> Messenger:
        """The context a step's model and guide run in (:class:`~ember.infer.SVI`
        enters it): it broadcasts each parameter from rank 0 the first time a
        ``param`` statement reads it, before any rank computes with it. Every rank
        reads the same parameters in the same order when all run the same model
        and guide."""
        return BroadcastNewParams(self)

    @property
    def world_size(self) -> int:
        """The number of ranks whose gradients are averaged."""
        return get_world_size(self.group)

    def __call__(self, params, *args, **kwargs) -> None:
        if not isinstance(params, (list, tuple)):
            params = list(params)
        if self.world_size > 1:
            params = self._sorted(params)
            new = [p for p in params if not self.is_synced(p)]
            if new:
                broadcast_parameters(new, src=0, group=self.group)
                for p in new:
                    self.mark_synced(p)
            self._average_gradients(params)
        super().__call__(params, *args, **kwargs)

    def _sorted(self, params) -> List[torch.Tensor]:
        order = self._order
        if order is not None and len(order[0]) == len(params):
            if all(a is b for a, b in zip(order[0], params)):
                return order[1]
        store = get_param_store()
        named = []
        for p in params:
            name = store.param_name(p)
            if name is None:
                raise ValueError(
                    "DistributedOptimizer: a parameter of shape "
                    f"{tuple(p.shape)} is not in ember's param store, so it cannot be matched "
                    "across ranks by name; create parameters with ember.param or as PyroModule "
                    "attributes"
                )
            named.append((name, p))
        named.sort(key=lambda item: item[0])
        if self.validate:
            self._check_same_names([name for name, _ in named])
        ordered = [p for _, p in named]
        self._order = (tuple(params), ordered)
        return ordered

    def _check_same_names(self, names: List[str]) -> None:
        digest = zlib.crc32("\0".join(names).encode())
        check = torch.tensor([digest, -digest], dtype=torch.int64)
        tdist.all_reduce(check, op=tdist.ReduceOp.MAX, group=self.group)
        if int(check[0]) != digest or int(-check[1]) != digest:
            raise ValueError(
                f"DistributedOptimizer: rank {get_rank(self.group)} steps the parameters "
                f"{names}, which differ from another rank's: every rank must run the same "
                "model and guide (the same parameter names)"
            )

    def _average_gradients(self, params: List[torch.Tensor]) -> None:
        world = self.world_size
        for positions in _buckets(params).values():
            grads = []
            for i in positions:
                p = params[i]
                g = p.grad
                grads.append(torch.zeros_like(p).reshape(-1) if g is None else g.reshape(-1))
            flat = torch.cat(grads)
            tdist.all_reduce(flat, group=self.group)
            flat.div_(world)
            offset = 0
            for i in positions:
                p = params[i]
                n = p.numel()
                average = flat[offset : offset + n].view_as(p)
                if p.grad is None:
                    p.grad = average.clone()
                else:
                    p.grad.copy_(average)
                offset += n


class BroadcastNewParams(Messenger):
    """Broadcast each parameter from rank 0 the first time a ``param`` statement reads
    it inside this context (see :meth:`DistributedOptimizer.step_context`)."""

    def __init__(self, optimizer: DistributedOptimizer):
        super().__init__()
        self.optimizer = optimizer

    def _pyro_post_param(self, msg) -> None:
        optimizer = self.optimizer
        if optimizer.world_size == 1:
            return
        value = msg["value"]
        unconstrained = value.unconstrained() if hasattr(value, "unconstrained") else value
        if optimizer.is_synced(unconstrained):
            return
        broadcast_parameters([unconstrained], src=0, group=optimizer.group)
        optimizer.mark_synced(unconstrained)
        store = get_param_store()
        if value is not unconstrained and msg["name"] in store:
            # the constrained value was computed from the unconstrained one before it
            # changed: read it again
            msg["value"] = store[msg["name"]]


class HorovodOptimizer(DistributedOptimizer):
    """Pyro's name for data-parallel training with Horovod. ember averages gradients
    with ``torch.distributed`` (:class:`DistributedOptimizer`); this name needs the
    ``horovod`` package and a process group, and otherwise refuses with a hint."""

    def __init__(self, pyro_optim: PyroOptim, **horovod_kwargs):
        try:
            import horovod.torch  # noqa: F401  (optional dependency)
        except ImportError as e:
            raise ImportError(
                "HorovodOptimizer needs the horovod package (pip install horovod); ember's "
                "own data-parallel optimizer needs only torch: "
                "ember.optim.distributed.DistributedOptimizer(optim) under torchrun"
            ) from e
        if horovod_kwargs:
            raise TypeError(
                f"HorovodOptimizer: ember averages gradients with torch.distributed and takes "
                f"no Horovod options, got {sorted(horovod_kwargs)}"
            )
        super().__init__(pyro_optim)
