"""Random perfect matchings of sources to destinations with edge logits: the one-one case
(a random permutation), and the shared exact and Bethe computations that the one-two case
(:mod:`ember.distributions.one_two_matching`) uses too.

A matching assigns every source ``s`` one destination ``v[s]`` so that every destination
receives exactly ``capacity`` sources; its probability is proportional to
``exp(sum_s logits[s, v[s]])``. The exact partition function is a dynamic program over
sources in order, whose state is how many sources each destination has received so far
(``(capacity + 1) ** N`` states instead of the ``(capacity N)! / capacity!**N``
matchings); the same table gives exact sampling, backwards from the full state. For large
problems the Bethe free energy at Sinkhorn-balanced edge beliefs approximates
``log Z`` (``bp_iters`` iterations).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch.distributions import constraints
from torch.distributions.utils import lazy_property

from ember.distributions.torch import Categorical
from ember.distributions.torch_distribution import TorchDistribution

__all__ = [
    "MatchingConstraint",
    "MatchingDistribution",
    "MatchingTables",
    "OneOneMatching",
    "bethe_log_partition",
    "maximum_weight_matching",
]

_EMPTY = torch.Size()
#: the exact algorithms refuse problems with more dynamic-programming states than this
MAX_EXACT_STATES = 2_000_000


class MatchingConstraint(constraints.Constraint):
    """Vectors of ``num_sources`` destination indices in ``0 .. num_destins - 1`` in which
    every destination occurs exactly ``capacity`` times.

    ``check`` answers for the whole batch at once: a single boolean, true when every
    vector of the batch is such a matching.
    """

    is_discrete = True
    event_dim = 1

    def __init__(self, num_destins: int, capacity: int):
        self.num_destins = num_destins
        self.capacity = capacity
        self.num_sources = num_destins * capacity
        super().__init__()

    def check(self, value):
        value = torch.as_tensor(value)
        if value.dim() == 0 or value.shape[-1] != self.num_sources:
            return torch.tensor(False)
        if value.is_floating_point():
            if not bool((value == value.round()).all()):
                return torch.tensor(False)
            value = value.long()
        if value.numel() == 0:
            return torch.tensor(True)
        if int(value.min()) < 0 or int(value.max()) >= self.num_destins:
            return torch.tensor(False)
        counts = torch.zeros(value.shape[:-1] + (self.num_destins,), dtype=torch.long)
        counts.scatter_add_(-1, value.cpu(), torch.ones(value.shape, dtype=torch.long))
        return (counts == self.capacity).all()

    def __repr__(self):
        return f"{type(self).__name__}(num_destins={self.num_destins}, capacity={self.capacity})"


def _logsumexp_or_neg_inf(scores):
    """``scores.logsumexp(-1)`` whose gradient is 0 (not NaN) on rows that are all
    ``-inf`` (states that no matching with finite weight reaches)."""
    dead = ~(scores > -math.inf).any(-1, keepdim=True)
    result = torch.where(dead, 0.0, scores).logsumexp(-1)
    return result.masked_fill(dead.squeeze(-1), -math.inf)


class MatchingTables:
    """Index tables of the dynamic program over matchings of ``capacity * num_destins``
    sources to ``num_destins`` destinations.

    Layer ``k`` holds the states after ``k`` sources are assigned: count vectors (how many
    sources each destination has) summing to ``k``, coded in base ``capacity + 1`` and
    sorted. ``pred[k]`` (shape ``(S_k, N)``) gives, for each state of layer ``k`` and each
    destination ``j``, the index in layer ``k - 1`` of the state with one source fewer at
    ``j``; ``valid[k]`` says whether that destination had a source to remove.
    """

    def __init__(self, num_destins: int, capacity: int):
        n, c = num_destins, capacity
        base = c + 1
        total = base**n
        if total > MAX_EXACT_STATES:
            raise ValueError(
                f"exact matching computations need {base}**{n} = {total} states, more than "
                f"{MAX_EXACT_STATES}; hint: pass bp_iters=... for the Bethe approximation"
            )
        powers = base ** np.arange(n, dtype=np.int64)
        codes = np.zeros(1, dtype=np.int64)
        self.pred, self.valid = [None], [None]
        for _ in range(n * c):
            digits = (codes[:, None] // powers) % base
            grown = codes[:, None] + powers
            nxt = np.unique(grown[digits < c])
            digits = (nxt[:, None] // powers) % base
            valid = digits > 0
            pred = np.searchsorted(codes, np.where(valid, nxt[:, None] - powers, codes[0]))
            self.pred.append(torch.from_numpy(pred))
            self.valid.append(torch.from_numpy(valid))
            codes = nxt
        self.num_destins, self.capacity = n, c

    @staticmethod
    @functools.lru_cache(maxsize=16)
    def get(num_destins: int, capacity: int) -> MatchingTables:
        """The (cached) tables for a problem size."""
        return MatchingTables(num_destins, capacity)

    def forward(self, logits: torch.Tensor) -> list:
        """Log partial partition functions: entry ``k`` (shape ``(S_k,)``) sums
        ``exp(sum_{s<k} logits[s, v[s]])`` over assignments of the first ``k`` sources
        reaching each state of layer ``k``; entry ``-1`` is ``log Z`` (one state)."""
        device = logits.device
        layers = [logits.new_zeros(1)]
        neg_inf = logits.new_tensor(-math.inf)
        for k in range(1, len(self.pred)):
            pred, valid = self.pred[k].to(device), self.valid[k].to(device)
            scores = torch.where(valid, layers[-1][pred] + logits[k - 1], neg_inf)
            layers.append(_logsumexp_or_neg_inf(scores))
        return layers

    def sample(self, logits: torch.Tensor, layers: list, num_samples: int) -> torch.Tensor:
        """``num_samples`` exact draws (shape ``(num_samples, num_sources)``), assigning
        sources last to first given the forward ``layers``."""
        device = logits.device
        num_sources = len(self.pred) - 1
        state = torch.zeros(num_samples, dtype=torch.long, device=device)  # the full state
        out = torch.empty(num_samples, num_sources, dtype=torch.long, device=device)
        neg_inf = logits.new_tensor(-math.inf)
        for k in range(num_sources, 0, -1):
            pred, valid = self.pred[k].to(device)[state], self.valid[k].to(device)[state]
            scores = torch.where(valid, layers[k - 1][pred] + logits[k - 1], neg_inf)
            j = Categorical(logits=scores, validate_args=False).sample()
            out[:, k - 1] = j
            state = pred.gather(-1, j.unsqueeze(-1)).squeeze(-1)
        return out

    def enumerate(self) -> torch.Tensor:
        """Every matching, shape ``(num_matchings, num_sources)``, in lexicographic order."""
        n, c = self.num_destins, self.capacity
        values = np.zeros((1, 0), dtype=np.int64)
        counts = np.zeros((1, n), dtype=np.int64)
        for _ in range(n * c):
            rows, cols = np.nonzero(counts < c)
            values = np.concatenate([values[rows], cols[:, None]], axis=1)
            counts = counts[rows]
            counts[np.arange(len(rows)), cols] += 1
        return torch.from_numpy(values)


def bethe_log_partition(logits: torch.Tensor, capacity: int, num_iters: int) -> torch.Tensor:
    """The Bethe approximation of ``log Z`` for matchings with ``capacity`` sources per
    destination (1 or 2), at edge beliefs balanced by ``num_iters`` Sinkhorn iterations
    (rows summing to 1, columns to ``capacity``).

    The free energy is the internal energy ``-sum b * logits`` minus the entropies of the
    source factors and destination factors plus the binary entropies of the edges. With
    capacity 1 these combine to ``sum b log b - sum (1 - b) log(1 - b)``; with capacity 2 a
    destination factor picks a pair of sources, whose entropy is taken as that of a uniform
    choice of 2 among ``exp(h)`` sources, ``log(exp(h) (exp(h) - 1) / 2)``, with ``h`` the
    entropy of the destination's normalized beliefs ``b / 2``.
    """
    finfo = torch.finfo(logits.dtype)
    # shifting each source's row changes log Z by the shift (every matching uses each row once)
    shift = logits.max(-1, keepdim=True).values.clamp(min=finfo.min, max=finfo.max)
    theta = logits - shift
    log_c = math.log(capacity)
    col = theta.logsumexp(0) - log_c
    row = (theta - col).logsumexp(-1, keepdim=True)
    for _ in range(num_iters):
        col = (theta - row).logsumexp(0) - log_c
        row = (theta - col).logsumexp(-1, keepdim=True)
    b = (theta - row - col).exp()

    def xlogx(x):
        return x * x.clamp(min=finfo.tiny).log()

    energy = -(b * theta.clamp(min=-1 / finfo.eps)).sum()
    edges = xlogx((1 - b).clamp(min=0)).sum()
    if capacity == 1:
        free = energy + xlogx(b).sum() - edges
    else:
        z = b / capacity
        h = -xlogx(z).sum(0)
        pairs = h + h.expm1().clamp(min=finfo.tiny).log() - math.log(2)
        free = energy - pairs.sum() - edges
    return shift.sum() - free


def maximum_weight_matching(logits: torch.Tensor, capacity: int = 1) -> torch.Tensor:
    """A matching maximizing ``sum_s logits[s, v[s]]`` (each destination taking
    ``capacity`` sources), by the Hungarian algorithm of SciPy (an optional dependency)."""
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError as e:  # pragma: no cover - scipy is installed with the test extras
        raise ImportError("the mode of a matching distribution needs scipy installed") from e
    cost = -logits.detach().cpu().double()
    num_destins = cost.shape[-1]
    cost = cost.repeat(1, capacity)  # one column per destination slot
    cost = cost.nan_to_num(posinf=1e300)
    value = torch.as_tensor(linear_sum_assignment(cost.numpy())[1], dtype=torch.long)
    return (value % num_destins).to(logits.device)


def check_logits(name: str, logits, capacity: int) -> torch.Tensor:
    """``logits`` as a ``(capacity * N, N)`` tensor, or a clear error."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"{name}: logits must be a tensor, got {type(logits).__name__}")
    if logits.dim() != 2 or logits.shape[0] != capacity * logits.shape[1]:
        want = "(N, N)" if capacity == 1 else f"({capacity} * N, N)"
        raise ValueError(
            f"{name}: logits must have shape {want} (sources by destinations; batching is not "
            f"supported, expand the distribution instead), got {tuple(logits.shape)}"
        )
    return logits


def check_bp_iters(name: str, bp_iters):
    """``bp_iters`` if it is None or a positive int, else a clear error."""
    if bp_iters is not None and (
        isinstance(bp_iters, bool) or not isinstance(bp_iters, int) or bp_iters <= 0
    ):
        raise ValueError(f"{name}: bp_iters must be None or a positive int, got {bp_iters!r}")
    return bp_iters


class MatchingDistribution(TorchDistribution):
    """Shared implementation of :class:`OneOneMatching` and
    :class:`~ember.distributions.one_two_matching.OneTwoMatching`; a subclass sets
    ``capacity``."""

    arg_constraints = {"logits": constraints.real}
    has_enumerate_support = True
    capacity = 1

    def __init__(self, logits, *, bp_iters=None, validate_args=None):
        name = type(self).__name__
        self.logits = check_logits(name, logits, self.capacity)
        self.bp_iters = check_bp_iters(name, bp_iters)
        self.num_sources, self.num_destins = logits.shape
        super().__init__(_EMPTY, torch.Size((self.num_sources,)), validate_args=validate_args)

    @classmethod
    def infer_shapes(cls, logits):
        """``(batch_shape, event_shape)``: empty, and ``(num_sources,)``."""
        return _EMPTY, torch.Size(logits[:1])

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        if batch_shape == self.batch_shape and _instance is None:
            return self
        return super().expand(batch_shape, _instance)

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self):
        return MatchingConstraint(self.num_destins, self.capacity)

    def _tables(self) -> MatchingTables:
        return MatchingTables.get(self.num_destins, self.capacity)

    @lazy_property
    def log_partition_function(self) -> torch.Tensor:
        """``log Z``: exact by dynamic programming when ``bp_iters`` is None, else the
        Bethe approximation after ``bp_iters`` Sinkhorn iterations."""
        if self.bp_iters is None:
            return self._tables().forward(self.logits)[-1][0]
        return bethe_log_partition(self.logits, self.capacity, self.bp_iters)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        sources = torch.arange(self.num_sources, device=value.device)
        return self.logits[sources, value].sum(-1) - self.log_partition_function

    def enumerate_support(self, expand=True):
        return self._tables().enumerate().to(self.logits.device)

    def sample(self, sample_shape=_EMPTY):
        """Exact draws (whatever ``bp_iters``), from the dynamic program; problems too
        large for it raise ``NotImplementedError``."""
        sample_shape = torch.Size(sample_shape)
        try:
            tables = self._tables()
        except ValueError as e:
            raise NotImplementedError(f"{type(self).__name__}.sample: {e}") from e
        with torch.no_grad():
            logits = self.logits.detach()
            layers = tables.forward(logits)
            draws = tables.sample(logits, layers, max(sample_shape.numel(), 1))
        return draws.reshape(sample_shape + self.event_shape)

    def mode(self) -> torch.Tensor:
        """A most probable matching (the maximum-weight matching of the logits)."""
        return maximum_weight_matching(self.logits, self.capacity)


class OneOneMatching(MatchingDistribution):
    """A random perfect matching of ``N`` sources to ``N`` destinations (a random
    permutation ``v``), with ``log p(v) = sum_s logits[s, v[s]] - log Z``.

    Values are long tensors of shape ``(N,)`` holding each source's destination. ``log Z``
    (the log permanent of ``exp(logits)``) is computed exactly by a dynamic program over
    subsets of destinations (``2**N`` states), or, with ``bp_iters``, approximated by the
    Bethe free energy. Sampling is exact; :meth:`mode` is the maximum-weight matching.

    :param torch.Tensor logits: ``(N, N)`` edge logits (sources by destinations).
    :param int bp_iters: Sinkhorn iterations of the Bethe approximation of ``log Z``;
        None (default) for the exact value.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.OneOneMatching(torch.tensor([[2.0, 0.0], [0.0, 2.0]]))
        >>> d.enumerate_support()
        tensor([[0, 1],
                [1, 0]])
        >>> d.log_prob(d.enumerate_support()).exp()
        tensor([0.9820, 0.0180])
        >>> d.mode()
        tensor([0, 1])
    """

    capacity = 1
