"""Kingman's coalescent: distributions of the coalescence times of a binary phylogeny whose
leaves were sampled at given times, under a constant or a piecewise constant rate.

Going back in time from the latest leaf, every leaf adds a lineage at its sampling time
and each of the ``C(k, 2) = k (k - 1) / 2`` pairs of ``k`` lineages merges at the pairwise
rate ``r(t)``; ``N`` leaves end in one root after ``N - 1`` coalescences. The sorted
coalescence times ``c`` have density

    ``prod_i r(c_i) C(k_i, 2) * exp(-integral r(t) C(k(t), 2) dt)``

with ``k_i`` the number of lineages just before (more recent than) the ``i``-th
coalescence and ``k(t)`` the number at time ``t``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch.distributions import constraints

from ember.distributions.torch_distribution import TorchDistribution
from ember.distributions.util import broadcast_shape
from ember.util import is_validation_enabled

__all__ = [
    "CoalescentRateLikelihood",
    "CoalescentTimes",
    "CoalescentTimesConstraint",
    "CoalescentTimesWithRate",
    "Phylogeny",
    "bio_phylo_to_times",
    "make_phylogeny",
    "sample_coalescent_times",
]

_EMPTY = torch.Size()


class Phylogeny(NamedTuple):
    """The events of a phylogeny (leaves and coalescences) sorted from latest to earliest.

    ``times``: event times, descending (differentiable in the inputs); ``lineages``: the
    number of lineages just earlier than each event; ``binomial``: ``C(lineages, 2)``;
    ``coal_binomial``: for each coalescence, in the order given, ``C(k, 2)`` of the ``k``
    lineages just later than it.
    """

    times: torch.Tensor
    lineages: torch.Tensor
    binomial: torch.Tensor
    coal_binomial: torch.Tensor


def make_phylogeny(leaf_times: torch.Tensor, coal_times: torch.Tensor) -> Phylogeny:
    """Sort the leaves and coalescences of (a batch of) phylogenies into a
    :class:`Phylogeny`; a leaf and a coalescence at the same time count the leaf first."""
    n = leaf_times.size(-1)
    if coal_times.size(-1) != n - 1:
        raise ValueError(
            f"a phylogeny of {n} leaves has {n - 1} coalescence times, got "
            f"{coal_times.size(-1)} (coal_times shape {tuple(coal_times.shape)})"
        )
    batch_shape = broadcast_shape(leaf_times.shape[:-1], coal_times.shape[:-1])
    times = torch.cat(
        [leaf_times.expand(batch_shape + (n,)), coal_times.expand(batch_shape + (n - 1,))], -1
    )
    signs = torch.cat(
        [
            torch.ones(n, dtype=times.dtype, device=times.device),
            -torch.ones(n - 1, dtype=times.dtype, device=times.device),
        ]
    )
    with torch.no_grad():
        order = times.sort(dim=-1, descending=True, stable=True).indices
        position = torch.empty_like(order).scatter_(
            -1, order, torch.arange(2 * n - 1, device=order.device).expand_as(order)
        )
    times = times.gather(-1, order)
    lineages = signs[order].cumsum(-1)
    binomial = lineages * (lineages - 1) / 2
    coal_position = position[..., n:]
    coal_binomial = binomial.gather(-1, (coal_position - 1).clamp(min=0))
    return Phylogeny(times, lineages, binomial, coal_binomial)


class CoalescentTimesConstraint(constraints.Constraint):
    """Coalescence times valid for the given leaf times: at every time at least one
    lineage exists (no coalescence more recent than the second lineage), and, if
    ``ordered``, the times are sorted ascending."""

    event_dim = 1

    def __init__(self, leaf_times, *, ordered: bool = True):
        self.leaf_times = leaf_times
        self.ordered = ordered
        super().__init__()

    def check(self, value):
        phylogeny = make_phylogeny(self.leaf_times, value)
        ok = (phylogeny.lineages > 0).all(-1)
        if self.ordered:
            ok = ok & (value[..., :-1] <= value[..., 1:]).all(-1)
        return ok

    def __repr__(self):
        return (
            f"{type(self).__name__}(num_leaves={self.leaf_times.size(-1)}, ordered={self.ordered})"
        )


def sample_coalescent_times(leaf_times: torch.Tensor, rate=1.0) -> torch.Tensor:
    """Draw sorted coalescence times for (a batch of) leaf times under a constant pairwise
    rate ``rate`` (a number or a tensor broadcasting with the batch shape), by simulating
    the coalescent backwards in time: exponential waiting times at rate
    ``rate * C(k, 2)``, restarted at each leaf (the waits are memoryless)."""
    leaf_times = leaf_times.detach()
    n = leaf_times.size(-1)
    rate = torch.as_tensor(rate, dtype=leaf_times.dtype).detach()
    batch_shape = broadcast_shape(leaf_times.shape[:-1], rate.shape)
    flat_leaves = leaf_times.expand(batch_shape + (n,)).reshape(-1, n).cpu().tolist()
    flat_rates = rate.expand(batch_shape).reshape(-1).cpu().tolist()
    waits = torch.empty(len(flat_leaves), max(2 * n - 2, 1), dtype=torch.float64)
    waits = waits.exponential_().tolist()
    result = []
    for leaves, r, wait in zip(flat_leaves, flat_rates, waits):
        leaves = sorted(leaves, reverse=True)
        t, k, nxt, coal = leaves[0], 1, 1, []
        draws = iter(wait)
        while len(coal) < n - 1:
            if k < 2:
                t, k, nxt = leaves[nxt], k + 1, nxt + 1
                continue
            candidate = t - next(draws) / (r * k * (k - 1) / 2)
            if nxt < n and leaves[nxt] >= candidate:
                t, k, nxt = leaves[nxt], k + 1, nxt + 1
            else:
                t, k = candidate, k - 1
                coal.append(t)
        result.append(coal[::-1])
    out = torch.tensor(result, dtype=leaf_times.dtype).reshape(batch_shape + (n - 1,))
    return out.to(leaf_times.device)


# The name Pyro gives the sampler in its own module (code written against Pyro's
# internals, e.g. its test-suite, imports it from here).
_sample_coalescent_times = sample_coalescent_times


def _check_leaf_times(name, leaf_times):
    if not isinstance(leaf_times, torch.Tensor) or leaf_times.dim() < 1:
        raise ValueError(f"{name}: leaf_times must be a tensor with a leaf dim, got {leaf_times!r}")
    if leaf_times.size(-1) < 2:
        raise ValueError(
            f"{name}: needs at least 2 leaves (one coalescence), got leaf_times of shape "
            f"{tuple(leaf_times.shape)}"
        )


def gather_time_grid(grid: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``grid[..., index]`` along the rightmost dim, broadcasting the batch dims."""
    shape = broadcast_shape(grid.shape[:-1], index.shape[:-1])
    return grid.expand(shape + grid.shape[-1:]).gather(-1, index.expand(shape + index.shape[-1:]))


class CoalescentTimes(TorchDistribution):
    """The sorted coalescence times of the binary phylogeny of leaves sampled at
    ``leaf_times`` (any order, duplicates allowed) under Kingman's coalescent with a
    constant pairwise coalescence rate ``rate``.

    The event shape is ``(N - 1,)`` for ``N`` leaves; the batch shape broadcasts
    ``leaf_times.shape[:-1]`` with ``rate.shape``. The density is exact (see the module
    docstring) and differentiable in the times and the rate; sampling simulates the
    coalescent.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.CoalescentTimes(torch.tensor([0.0, 0.0]), rate=2.0)
        >>> d.log_prob(torch.tensor([-0.5]))  # one pair: Exponential(2) back from 0
        tensor(-0.3069)
        >>> d.sample((3,)).shape
        torch.Size([3, 1])
    """

    arg_constraints = {"leaf_times": constraints.real, "rate": constraints.positive}

    def __init__(self, leaf_times, rate=1.0, *, validate_args=None):
        _check_leaf_times("CoalescentTimes", leaf_times)
        rate = torch.as_tensor(rate, dtype=leaf_times.dtype, device=leaf_times.device)
        self.leaf_times = leaf_times
        self.rate = rate
        batch_shape = broadcast_shape(rate.shape, leaf_times.shape[:-1])
        event_shape = torch.Size((leaf_times.size(-1) - 1,))
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @classmethod
    def infer_shapes(cls, leaf_times, rate=()):
        leaf_times = torch.Size(leaf_times)
        batch_shape = broadcast_shape(leaf_times[:-1], torch.Size(rate))
        return batch_shape, torch.Size((leaf_times[-1] - 1,))

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self.__new__(type(self)) if _instance is None else _instance
        new.leaf_times = self.leaf_times.expand(batch_shape + self.leaf_times.shape[-1:])
        new.rate = self.rate.expand(batch_shape)
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self):
        return CoalescentTimesConstraint(self.leaf_times)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        phylogeny = make_phylogeny(self.leaf_times, value)
        intervals = phylogeny.times[..., :-1] - phylogeny.times[..., 1:]
        integral = (phylogeny.binomial[..., :-1] * intervals).sum(-1)
        num_coal = value.size(-1)
        return (
            num_coal * self.rate.log()
            + phylogeny.coal_binomial.log().sum(-1)
            - self.rate * integral
        )

    def sample(self, sample_shape=_EMPTY):
        shape = self.shape(sample_shape)[:-1]
        leaf_times = self.leaf_times.expand(shape + self.leaf_times.shape[-1:])
        return sample_coalescent_times(leaf_times, self.rate.expand(shape))


class CoalescentTimesWithRate(TorchDistribution):
    """The sorted coalescence times of the binary phylogeny of leaves sampled at
    ``leaf_times`` under Kingman's coalescent whose pairwise rate is piecewise constant on
    a unit time grid: ``rate_grid[..., t]`` on ``[t, t + 1)``, the first value extending to
    ``-inf`` and the last to ``+inf`` (``T = rate_grid.size(-1)`` cells).

    The event shape is ``(N - 1,)``; the batch shape broadcasts ``leaf_times.shape[:-1]``
    with ``rate_grid.shape[:-1]``. ``log_prob`` is exact (the integral of the piecewise
    constant rate is piecewise linear) and costs ``O(T + N log N)`` per value; there is no
    sampler. :class:`CoalescentRateLikelihood` gives the same log-density as a sum of
    terms, one per grid cell.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.CoalescentTimesWithRate(torch.tensor([2.0, 2.0]), torch.tensor([1.0, 3.0]))
        >>> d.log_prob(torch.tensor([0.5]))  # rate 3 on [1, 2), 1 before: log(1) - (3 + 0.5)
        tensor(-3.5000)
    """

    arg_constraints = {"leaf_times": constraints.real, "rate_grid": constraints.positive}

    def __init__(self, leaf_times, rate_grid, *, validate_args=None):
        _check_leaf_times("CoalescentTimesWithRate", leaf_times)
        if not isinstance(rate_grid, torch.Tensor) or rate_grid.dim() < 1:
            raise ValueError(
                "CoalescentTimesWithRate: rate_grid must be a tensor whose rightmost dim is "
                f"time, got {rate_grid!r}"
            )
        self.leaf_times = leaf_times
        self.rate_grid = rate_grid
        batch_shape = broadcast_shape(leaf_times.shape[:-1], rate_grid.shape[:-1])
        event_shape = torch.Size((leaf_times.size(-1) - 1,))
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @classmethod
    def infer_shapes(cls, leaf_times, rate_grid):
        leaf_times, rate_grid = torch.Size(leaf_times), torch.Size(rate_grid)
        batch_shape = broadcast_shape(leaf_times[:-1], rate_grid[:-1])
        return batch_shape, torch.Size((leaf_times[-1] - 1,))

    @property
    def duration(self) -> int:
        """The number of cells of the rate grid."""
        return self.rate_grid.size(-1)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self.__new__(type(self)) if _instance is None else _instance
        new.leaf_times = self.leaf_times.expand(batch_shape + self.leaf_times.shape[-1:])
        new.rate_grid = self.rate_grid.expand(batch_shape + self.rate_grid.shape[-1:])
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self):
        return CoalescentTimesConstraint(self.leaf_times)

    def _cell(self, times):
        with torch.no_grad():
            return times.floor().clamp(min=0, max=self.duration - 1).long()

    def _cumulative_rate(self, times):
        """``integral_0^t rate(s) ds`` at ``times`` (negative before 0)."""
        cum = torch.nn.functional.pad(self.rate_grid.cumsum(-1), (1, 0))[..., :-1]
        cell = self._cell(times)
        start = gather_time_grid(cum, cell)
        slope = gather_time_grid(self.rate_grid, cell)
        return start + slope * (times - cell.to(times.dtype))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        phylogeny = make_phylogeny(self.leaf_times, value)
        cumulative = self._cumulative_rate(phylogeny.times)
        integral = (
            phylogeny.binomial[..., :-1] * (cumulative[..., :-1] - cumulative[..., 1:])
        ).sum(-1)
        rates = gather_time_grid(self.rate_grid, self._cell(value))
        log_prob = (phylogeny.coal_binomial * rates).log().sum(-1) - integral
        return log_prob.expand(broadcast_shape(self.batch_shape, value.shape[:-1]))


class CoalescentRateLikelihood:
    """The log-density of :class:`CoalescentTimesWithRate` for fixed ``leaf_times`` and
    ``coal_times``, as a function of the rate grid that splits into one term per grid
    cell: ``const[t] + linear[t] * rate[t] + count[t] * log(rate[t])``.

    It is not a distribution: call it on a whole grid (``likelihood(rate_grid)``, shape
    ``batch + (T,)``, to be summed over ``t`` or used under a time plate) or on one cell
    (``likelihood(rate_grid[..., t], t)``, for models that build the grid step by step).

    :param torch.Tensor leaf_times: leaf sampling times, shape ``batch + (N,)``.
    :param torch.Tensor coal_times: coalescence times, shape ``batch + (N - 1,)`` (any
        order).
    :param int duration: the number of grid cells ``T``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> leaves, coal = torch.tensor([2.0, 2.0]), torch.tensor([0.5])
        >>> lik = dist.CoalescentRateLikelihood(leaves, coal, 2)
        >>> lik(torch.tensor([1.0, 3.0])).sum()
        tensor(-3.5000)
        >>> lik(torch.tensor(3.0), 1)
        tensor(-3.)
    """

    def __init__(self, leaf_times, coal_times, duration, *, validate_args=None):
        _check_leaf_times("CoalescentRateLikelihood", leaf_times)
        if coal_times.size(-1) + 1 != leaf_times.size(-1):
            raise ValueError(
                f"CoalescentRateLikelihood: {leaf_times.size(-1)} leaves need "
                f"{leaf_times.size(-1) - 1} coalescence times, got coal_times of shape "
                f"{tuple(coal_times.shape)}"
            )
        if isinstance(duration, bool) or not isinstance(duration, int) or duration < 1:
            raise ValueError(
                f"CoalescentRateLikelihood: duration must be a positive int, got {duration!r}"
            )
        validate = is_validation_enabled() if validate_args is None else validate_args
        if validate:
            ok = CoalescentTimesConstraint(leaf_times, ordered=False).check(coal_times)
            if not bool(ok.all()):
                raise ValueError(
                    "CoalescentRateLikelihood: invalid (leaf_times, coal_times): some "
                    "coalescence is more recent than the second-latest leaf allows (fewer than "
                    "two lineages at that time)"
                )
        phylogeny = make_phylogeny(leaf_times, coal_times)
        times = phylogeny.times
        # overlap of each inter-event interval (times[e + 1], times[e]) with each cell
        lo = torch.arange(duration, dtype=times.dtype, device=times.device)
        hi = lo + 1
        lo[0], hi[-1] = -math.inf, math.inf
        later, earlier = times[..., :-1, None], times[..., 1:, None]
        overlap = (torch.minimum(later, hi) - torch.maximum(earlier, lo)).clamp(min=0)
        self.linear = -(phylogeny.binomial[..., :-1, None] * overlap).sum(-2)
        cell = coal_times.detach().floor().clamp(min=0, max=duration - 1).long()
        shape = phylogeny.coal_binomial.shape[:-1] + (duration,)
        cell = cell.expand(phylogeny.coal_binomial.shape)
        self.const = times.new_zeros(shape).scatter_add(-1, cell, phylogeny.coal_binomial.log())
        self.count = times.new_zeros(shape).scatter_add(
            -1, cell, torch.ones_like(phylogeny.coal_binomial)
        )
        self.duration = duration

    def __call__(self, rate_grid, t=slice(None)):
        """The terms of cells ``t`` (all cells by default, or one int) at rates
        ``rate_grid`` (of those cells)."""
        tiny = torch.finfo(rate_grid.dtype).tiny
        return (
            self.const[..., t]
            + self.linear[..., t] * rate_grid
            + self.count[..., t] * rate_grid.clamp(min=tiny).log()
        )


def bio_phylo_to_times(tree, *, get_time=None):
    """``(leaf_times, coal_times)`` of a ``Bio.Phylo`` tree (Biopython): the times of its
    leaves and of its internal nodes, an internal node with ``m`` children counting as
    ``m - 1`` binary coalescences.

    :param tree: a ``Bio.Phylo.BaseTree.Tree`` or ``Clade``.
    :param callable get_time: maps a clade to its time; by default the time is the sum
        of branch lengths from the root (a missing branch length counts as 1).
    """
    root = getattr(tree, "root", tree)

    def branch(clade):
        return 1.0 if clade.branch_length is None else clade.branch_length

    leaf_times, coal_times = [], []
    stack = [(root, branch(root) if get_time is None else None)]
    while stack:
        clade, time = stack.pop()
        if get_time is not None:
            time = get_time(clade)
        children = list(clade)
        if children:
            coal_times.extend([time] * (len(children) - 1))
        else:
            leaf_times.append(time)
        for child in reversed(children):
            stack.append((child, None if get_time is not None else time + branch(child)))
    if len(leaf_times) != len(coal_times) + 1:
        raise ValueError(
            f"bio_phylo_to_times: found {len(leaf_times)} leaves and {len(coal_times)} "
            "coalescences, which is not a tree"
        )
    return torch.tensor(leaf_times), torch.tensor(coal_times)
