"""SpanningTree: a distribution over the spanning trees of the complete graph on
``V`` vertices, with probability proportional to the product of
``exp(edge_logits)`` over the tree's edges.

Edges ``(v1, v2)`` with ``v1 < v2`` are ranked colexicographically,
``(0,1), (0,2), (1,2), (0,3), (1,3), (2,3), ...``, i.e. by the pairing function
``k = v1 + v2 * (v2 - 1) // 2``. The normalizer comes from the matrix-tree
theorem (the log-determinant of a reduced weighted Laplacian). Sampling starts
from a cheap approximate draw (Kruskal's algorithm on Gumbel-perturbed logits)
and runs exact Gibbs moves: remove a random tree edge, then reconnect the two
pieces with an edge of the cut drawn in proportion to ``exp(edge_logits)``.
Every step is vectorized over the batch of samples.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch.distributions import constraints

from ember.distributions.torch_distribution import TorchDistribution
from ember.distributions.util import broadcast_shape

_EMPTY = torch.Size()

_MAX_ENUMERATE_VERTICES = 6
_SUPPORT_CACHE = {}


def make_complete_graph(num_vertices: int, backend: str = "python") -> torch.Tensor:
    """The edges of the complete graph on ``num_vertices`` vertices, in colexicographic order.

    Returns a ``LongTensor`` of shape ``(2, V * (V - 1) // 2)`` whose columns
    are the sorted pairs ``(v1, v2)``; column ``k`` holds the edge of rank
    ``k = v1 + v2 * (v2 - 1) // 2``. ``backend`` is accepted for compatibility.

    Example::

        >>> v1, v2 = make_complete_graph(4)
        >>> list(zip(v1.tolist(), v2.tolist()))
        [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    """
    if not isinstance(num_vertices, int) or num_vertices < 1:
        raise ValueError(f"num_vertices must be a positive int, got {num_vertices!r}")
    _check_backend(backend)
    v2 = torch.arange(num_vertices).repeat_interleave(torch.arange(num_vertices))
    start = v2 * (v2 - 1) // 2
    v1 = torch.arange(v2.numel()) - start
    return torch.stack([v1, v2])


def _check_backend(backend):
    if backend not in ("python", "cpp"):
        raise ValueError(f"backend must be 'python' or 'cpp', got {backend!r}")


def _num_vertices(num_edges: int) -> int:
    V = (1 + math.isqrt(1 + 8 * num_edges)) // 2
    if V * (V - 1) // 2 != num_edges:
        raise ValueError(
            f"edge_logits has {num_edges} entries, which is not V*(V-1)//2 for any V; "
            "give one logit per edge of the complete graph (3 for V=3, 6 for V=4, 10 for V=5, ...)"
        )
    return V


def _edge_rank(edges: torch.Tensor) -> torch.Tensor:
    v1, v2 = edges[..., 0], edges[..., 1]
    return v1 + v2 * (v2 - 1) // 2


def _mask_to_edges(mask: torch.Tensor, graph: torch.Tensor, num_vertices: int) -> torch.Tensor:
    """``(N, E)`` bool masks, each with ``V-1`` edges, to sorted ``(N, V-1, 2)`` edges."""
    rank = mask.nonzero()[:, 1].reshape(mask.size(0), num_vertices - 1)
    return graph.t()[rank]


def _reachable(adjacency: torch.Tensor) -> torch.Tensor:
    """Transitive closure (with self loops) of a batch of ``(N, V, V)`` bool adjacencies."""
    V = adjacency.size(-1)
    reach = adjacency | torch.eye(V, dtype=torch.bool, device=adjacency.device)
    for _ in range(max(1, math.ceil(math.log2(max(V - 1, 1))))):
        reach = (reach.unsqueeze(-1) & reach.unsqueeze(-3)).any(-2)
    return reach


def _pair_to_edge(num_vertices: int, device) -> torch.Tensor:
    """``(V * V,)`` map from a vertex pair ``u * V + w`` to its edge rank, ``E`` on the diagonal."""
    V = num_vertices
    u = torch.arange(V, device=device).unsqueeze(-1)
    w = torch.arange(V, device=device)
    lo, hi = torch.minimum(u, w), torch.maximum(u, w)
    rank = lo + hi * (hi - 1) // 2
    return torch.where(u == w, V * (V - 1) // 2, rank).reshape(-1)


def _adjacency(mask: torch.Tensor, num_vertices: int) -> torch.Tensor:
    """``(N, V, V)`` bool adjacency matrices of ``(N, E)`` edge masks."""
    V = num_vertices
    padded = torch.cat([mask, mask.new_zeros(mask.size(0), 1)], dim=-1)
    return padded[:, _pair_to_edge(V, mask.device)].reshape(mask.size(0), V, V)


def _component_of(adjacency: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """``(N, V)`` bool: the vertices connected to vertex ``start[n]`` in forest ``n``."""
    N, V, _ = adjacency.shape
    side = torch.zeros(N, V, dtype=torch.bool, device=adjacency.device)
    side[torch.arange(N, device=adjacency.device), start] = True
    for _ in range(V - 2):
        side = side | (adjacency & side.unsqueeze(-2)).any(-1)
    return side


def _gumbel(shape, like):
    u = torch.rand(shape, dtype=like.dtype, device=like.device)
    tiny = torch.finfo(like.dtype).tiny
    return -(-(u.clamp(min=tiny)).log()).log()


def _kruskal_init(logits: torch.Tensor, graph: torch.Tensor, num_vertices: int, num_samples: int):
    """Maximum spanning trees of Gumbel-perturbed logits: a cheap approximate sample.
    ``logits`` is ``(E,)``, shared by the samples, or ``(num_samples, E)``."""
    E = logits.size(-1)
    device = logits.device
    scores = logits + _gumbel((num_samples, E), logits)
    order = scores.argsort(dim=-1, descending=True)
    label = torch.arange(num_vertices, device=device).expand(num_samples, num_vertices).clone()
    mask = torch.zeros(num_samples, E, dtype=torch.bool, device=device)
    rows = torch.arange(num_samples, device=device)
    for t in range(E):
        k = order[:, t]
        la = label.gather(1, graph[0, k].unsqueeze(1))
        lb = label.gather(1, graph[1, k].unsqueeze(1))
        add = (la != lb).squeeze(1)
        mask[rows, k] |= add
        label = torch.where((label == lb) & add.unsqueeze(1), la, label)
    return mask


def _gibbs_update(mask, logits, graph, num_vertices):
    """Remove a uniformly chosen tree edge and redraw it from the cut it leaves."""
    N = mask.size(0)
    rows = torch.arange(N, device=mask.device)
    noise = torch.rand(mask.shape, dtype=logits.dtype, device=logits.device)
    removed = torch.where(mask, noise, noise.new_full((), -1.0)).argmax(-1)
    mask = mask.clone()
    mask[rows, removed] = False
    # (N, V): the piece holding one end of the removed edge
    side = _component_of(_adjacency(mask, num_vertices), graph[0, removed])
    cut = side[:, graph[0]] != side[:, graph[1]]  # (N, E)
    scores = torch.where(cut, logits + _gumbel(mask.shape, logits), logits.new_full((), -math.inf))
    mask[rows, scores.argmax(-1)] = True
    return mask


def _prufer_trees(num_vertices: int) -> torch.Tensor:
    """Every spanning tree of the complete graph, decoded from Prüfer sequences."""
    V = num_vertices
    if V == 2:
        return torch.tensor([[[0, 1]]])
    trees = []
    for seq in itertools.product(range(V), repeat=V - 2):
        degree = [1] * V
        for x in seq:
            degree[x] += 1
        edges = []
        for x in seq:
            leaf = min(v for v in range(V) if degree[v] == 1)
            edges.append((min(leaf, x), max(leaf, x)))
            degree[leaf] -= 1
            degree[x] -= 1
        u, w = (v for v in range(V) if degree[v] == 1)
        edges.append((u, w))
        edges.sort(key=lambda e: e[0] + e[1] * (e[1] - 1) // 2)
        trees.append(edges)
    trees.sort(key=lambda es: [e[0] + e[1] * (e[1] - 1) // 2 for e in es])
    return torch.tensor(trees, dtype=torch.long)


class SpanningTree(TorchDistribution):
    """Distribution over the spanning trees of the complete graph on ``V`` vertices.

    A tree is a ``LongTensor`` of shape ``(V-1, 2)``: each edge ``(v1, v2)`` is
    sorted (``v1 < v2``) and the edges are sorted colexicographically, i.e. by
    the rank ``k = v1 + v2 * (v2 - 1) // 2``. ``edge_logits`` holds one logit
    per edge of the complete graph, in that rank order; to convert a ``V x V``
    matrix use ``v1, v2 = make_complete_graph(V); edge_logits = matrix[v1, v2]``.
    ``P(tree)`` is proportional to ``exp(sum of the tree's edge logits)``.

    :param torch.Tensor edge_logits: ``batch + (V*(V-1)//2,)`` edge logits (a batch of
        independent trees when there are batch dims).
    :param dict sampler_options: optional ``mcmc_steps`` (default 1; one step
        is ``V-1`` Gibbs edge moves), ``initial_edges`` (a tree to start every
        chain from; default a cheap approximate sample) and ``backend``
        (``"python"`` or ``"cpp"``; both select ember's vectorized torch sampler).

    Example::

        >>> import torch, ember.distributions as dist
        >>> _ = torch.manual_seed(0)
        >>> d = dist.SpanningTree(torch.zeros(6))  # V = 4 vertices
        >>> d.sample((3,)).shape
        torch.Size([3, 3, 2])
        >>> d.enumerate_support().shape  # Cayley: 4 ** 2 trees
        torch.Size([16, 3, 2])
        >>> d.log_prob(d.mode).exp()
        tensor(0.0625)
    """

    arg_constraints = {"edge_logits": constraints.real}
    support = constraints.nonnegative_integer
    has_enumerate_support = True

    def __init__(self, edge_logits: torch.Tensor, sampler_options=None, validate_args=None):
        if not isinstance(edge_logits, torch.Tensor):
            raise TypeError(f"edge_logits must be a torch.Tensor, got {type(edge_logits).__name__}")
        if edge_logits.dim() < 1:
            raise ValueError(
                "edge_logits must have a rightmost dim of V*(V-1)//2 logits, got a scalar"
            )
        V = _num_vertices(edge_logits.size(-1))
        if V < 2:
            raise ValueError("edge_logits must be non-empty: a spanning tree needs V >= 2 vertices")
        options = {} if sampler_options is None else dict(sampler_options)
        unknown = set(options) - {"mcmc_steps", "initial_edges", "backend"}
        if unknown:
            raise ValueError(
                f"unknown sampler_options {sorted(unknown)}; "
                "valid keys are 'mcmc_steps', 'initial_edges' and 'backend'"
            )
        steps = options.get("mcmc_steps", 1)
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f"sampler_options['mcmc_steps'] must be an int >= 0, got {steps!r}")
        _check_backend(options.get("backend", "python"))
        self.edge_logits = edge_logits
        self.num_vertices = V
        self.sampler_options = options
        batch_shape = edge_logits.shape[:-1]
        super().__init__(batch_shape, torch.Size((V - 1, 2)), validate_args=validate_args)
        if "initial_edges" in options:
            self.validate_edges(options["initial_edges"])

    @classmethod
    def infer_shapes(cls, edge_logits):
        """``(batch_shape, event_shape)`` from the shape of ``edge_logits``:
        ``(edge_logits[:-1], (V-1, 2))``."""
        V = _num_vertices(edge_logits[-1])
        return torch.Size(edge_logits[:-1]), torch.Size((V - 1, 2))

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self.__new__(type(self)) if _instance is None else _instance
        new.edge_logits = self.edge_logits.expand(batch_shape + self.edge_logits.shape[-1:])
        new.num_vertices = self.num_vertices
        new.sampler_options = self.sampler_options
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _weight_matrix(self):
        """``batch + (V, V)`` symmetric edge weights ``exp(logit - shift)`` and the
        ``batch`` shift (the largest logit of each member)."""
        V = self.num_vertices
        logits = self.edge_logits
        shift = logits.detach().max(-1).values
        weights = (logits - shift.unsqueeze(-1)).exp()
        v1, v2 = self._graph()
        W = logits.new_zeros(self.batch_shape + (V, V))
        W[..., v1, v2] = weights
        W[..., v2, v1] = weights
        return W, shift

    def _graph(self):
        return make_complete_graph(self.num_vertices).to(self.edge_logits.device)

    def validate_edges(self, edges: torch.Tensor) -> None:
        """Check that ``edges`` is a batch of well-formed trees; raise ``ValueError`` if not.

        Each tree must have shape ``(V-1, 2)`` with in-range vertices, sorted
        edges, colexicographically sorted rows, and must connect all vertices.
        """
        V = self.num_vertices
        if not isinstance(edges, torch.Tensor):
            raise ValueError(f"edges must be a LongTensor, got {type(edges).__name__}")
        if edges.dtype not in (torch.long, torch.int, torch.int16, torch.int8, torch.uint8):
            raise ValueError(f"edges must be an integer tensor, got dtype {edges.dtype}")
        if edges.shape[-2:] != (V - 1, 2):
            raise ValueError(
                f"edges must have shape (..., {V - 1}, 2) for V = {V} vertices, "
                f"got {tuple(edges.shape)}"
            )
        flat = edges.reshape(-1, V - 1, 2).long()
        if bool(((flat < 0) | (flat >= V)).any()):
            raise ValueError(f"edges has vertex ids outside [0, {V}): {flat.unique().tolist()}")
        bad = flat[..., 0] >= flat[..., 1]
        if bool(bad.any()):
            n, e = bad.nonzero()[0].tolist()
            raise ValueError(
                f"each edge (v1, v2) must satisfy v1 < v2; tree {n} has edge {flat[n, e].tolist()}"
            )
        rank = _edge_rank(flat)
        unsorted = rank[:, 1:] <= rank[:, :-1]
        if bool(unsorted.any()):
            n = int(unsorted.any(-1).nonzero()[0])
            raise ValueError(
                "edges must be distinct and sorted colexicographically (by v2, then v1); "
                f"tree {n} is {flat[n].tolist()}"
            )
        mask = torch.zeros(flat.size(0), V * (V - 1) // 2, dtype=torch.bool, device=flat.device)
        mask.scatter_(1, rank, True)
        connected = _reachable(_adjacency(mask, V))[:, 0].all(-1)
        if not bool(connected.all()):
            n = int((~connected).nonzero()[0])
            raise ValueError(
                f"edges must form a spanning tree; tree {n} {flat[n].tolist()} has a cycle"
            )

    @property
    def log_partition_function(self) -> torch.Tensor:
        """``log`` of the sum over trees of ``exp(sum of edge logits)`` (matrix-tree theorem)."""
        W, shift = self._weight_matrix()
        laplacian = torch.diag_embed(W.sum(-1)) - W
        chol = torch.linalg.cholesky(laplacian[..., 1:, 1:])
        log_det = 2 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        return log_det + (self.num_vertices - 1) * shift

    def log_prob(self, edges: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self.validate_edges(edges)
        rank = _edge_rank(edges.long())
        shape = broadcast_shape(rank.shape[:-1], self.batch_shape)
        logits = self.edge_logits.expand(shape + self.edge_logits.shape[-1:])
        score = logits.gather(-1, rank.expand(shape + rank.shape[-1:])).sum(-1)
        return score - self.log_partition_function

    def sample(self, sample_shape=_EMPTY) -> torch.Tensor:
        """Draw trees by a cheap approximate initializer followed by Gibbs MCMC.

        Each of ``sampler_options["mcmc_steps"]`` steps makes ``V-1`` exact
        Gibbs moves (remove a random tree edge, reconnect across the cut in
        proportion to ``exp(edge_logits)``), which leave the distribution
        invariant, so more steps give draws closer to exact.
        """
        sample_shape = torch.Size(sample_shape)
        V = self.num_vertices
        shape = sample_shape + self.batch_shape
        N = shape.numel()
        graph = self._graph()
        with torch.no_grad():
            E = self.edge_logits.size(-1)
            logits = self.edge_logits.detach()
            if self.batch_shape:  # one row of logits per chain
                logits = logits.expand(shape + (E,)).reshape(N, E)
            initial = self.sampler_options.get("initial_edges")
            if initial is None:
                mask = _kruskal_init(logits, graph, V, N)
            else:
                ranks = _edge_rank(initial.long().to(logits.device))
                mask = torch.zeros(N, E, dtype=torch.bool, device=logits.device)
                mask[:, ranks] = True
            for _ in range(self.sampler_options.get("mcmc_steps", 1) * (V - 1)):
                mask = _gibbs_update(mask, logits, graph, V)
            edges = _mask_to_edges(mask, graph, V)
        return edges.reshape(shape + (V - 1, 2))

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        """All ``V ** (V-2)`` spanning trees (Cayley's formula), for ``V <= 6``."""
        V = self.num_vertices
        if V > _MAX_ENUMERATE_VERTICES:
            raise ValueError(
                f"SpanningTree.enumerate_support is available for V <= {_MAX_ENUMERATE_VERTICES} "
                f"vertices (there are V**(V-2) trees); got V = {V}"
            )
        if V not in _SUPPORT_CACHE:
            _SUPPORT_CACHE[V] = _prufer_trees(V)
        trees = _SUPPORT_CACHE[V].to(self.edge_logits.device)
        if not self.batch_shape:
            return trees
        trees = trees.reshape((trees.size(0),) + (1,) * len(self.batch_shape) + (V - 1, 2))
        if expand:
            trees = trees.expand((trees.size(0),) + self.batch_shape + (V - 1, 2))
        return trees

    @property
    def mode(self) -> torch.Tensor:
        """The most probable tree (of each batch member): the maximum spanning tree of
        ``edge_logits`` (Kruskal)."""
        if not self.batch_shape:
            return find_best_tree(self.edge_logits)
        flat = self.edge_logits.reshape(-1, self.edge_logits.size(-1))
        trees = torch.stack([find_best_tree(row) for row in flat])
        return trees.reshape(self.batch_shape + self.event_shape)

    @property
    def edge_mean(self) -> torch.Tensor:
        """Marginal probability of each edge to be in the tree, as a symmetric ``(V, V)``
        matrix (``batch + (V, V)`` for a batch).

        For an edge ``(u, v)`` of weight ``w = exp(logit)`` it is ``w`` times the
        effective resistance between ``u`` and ``v`` in the graph with
        conductances ``w`` (Kirchhoff); the diagonal is zero.

        Example::

            >>> import torch, ember.distributions as dist
            >>> dist.SpanningTree(torch.zeros(3)).edge_mean  # each of 3 trees drops one edge
            tensor([[0.0000, 0.6667, 0.6667],
                    [0.6667, 0.0000, 0.6667],
                    [0.6667, 0.6667, 0.0000]])
        """
        W, _ = self._weight_matrix()
        laplacian = torch.diag_embed(W.sum(-1)) - W
        # Ground vertex 0: the inverse of the reduced Laplacian, padded with zeros.
        green = torch.linalg.inv(laplacian[..., 1:, 1:])
        green = torch.nn.functional.pad(green, (1, 0, 1, 0))
        diag = green.diagonal(dim1=-2, dim2=-1)
        resistance = diag.unsqueeze(-1) + diag.unsqueeze(-2) - 2 * green
        return resistance * W


def _check_edge_logits(edge_logits) -> int:
    if not isinstance(edge_logits, torch.Tensor) or edge_logits.dim() != 1:
        raise ValueError(
            "edge_logits must be a 1-dim tensor of V*(V-1)//2 logits, got "
            + (
                f"shape {tuple(edge_logits.shape)}"
                if isinstance(edge_logits, torch.Tensor)
                else type(edge_logits).__name__
            )
        )
    V = _num_vertices(edge_logits.numel())
    if V < 2:
        raise ValueError("edge_logits must be non-empty: a spanning tree needs V >= 2 vertices")
    return V


def sample_tree_approx(edge_logits: torch.Tensor, backend: str = "python") -> torch.Tensor:
    """A cheap approximate draw from ``SpanningTree(edge_logits)``: the maximum spanning
    tree of Gumbel-perturbed logits.

    :param torch.Tensor edge_logits: ``V*(V-1)//2`` edge logits (colexicographic order).
    :param str backend: ``"python"`` or ``"cpp"`` (both run ember's torch code).
    :returns: a ``(V-1, 2)`` tree.

    Example::

        >>> sample_tree_approx(torch.zeros(6)).shape
        torch.Size([3, 2])
    """
    _check_backend(backend)
    V = _check_edge_logits(edge_logits)
    graph = make_complete_graph(V).to(edge_logits.device)
    with torch.no_grad():
        mask = _kruskal_init(edge_logits.detach(), graph, V, 1)
    return _mask_to_edges(mask, graph, V)[0]


def sample_tree_mcmc(
    edge_logits: torch.Tensor, edges: torch.Tensor, backend: str = "python"
) -> torch.Tensor:
    """One MCMC step from the tree ``edges``: ``V-1`` exact Gibbs edge moves, each
    removing a random edge and reconnecting the two pieces across the cut with
    an edge drawn in proportion to ``exp(edge_logits)``. The moves leave
    ``SpanningTree(edge_logits)`` invariant.

    :param torch.Tensor edge_logits: ``V*(V-1)//2`` edge logits (colexicographic order).
    :param torch.Tensor edges: the current ``(V-1, 2)`` tree.
    :param str backend: ``"python"`` or ``"cpp"`` (both run ember's torch code).
    :returns: the next ``(V-1, 2)`` tree.

    Example::

        >>> path = torch.tensor([[0, 1], [1, 2], [2, 3]])
        >>> sample_tree_mcmc(torch.zeros(6), path).shape
        torch.Size([3, 2])
    """
    _check_backend(backend)
    V = _check_edge_logits(edge_logits)
    edges = torch.as_tensor(edges).long().to(edge_logits.device)
    if edges.shape != (V - 1, 2):
        raise ValueError(
            f"edges must have shape ({V - 1}, 2) for V = {V}, got {tuple(edges.shape)}"
        )
    edges = edges.sort(-1).values  # each edge as (smaller, larger) vertex
    graph = make_complete_graph(V).to(edge_logits.device)
    mask = torch.zeros(1, edge_logits.numel(), dtype=torch.bool, device=edge_logits.device)
    mask[0, _edge_rank(edges)] = True
    if int(mask.sum()) != V - 1 or not bool(_reachable(_adjacency(mask, V))[:, 0].all()):
        raise ValueError(f"edges must form a spanning tree of {V} vertices, got {edges.tolist()}")
    with torch.no_grad():
        for _ in range(V - 1):
            mask = _gibbs_update(mask, edge_logits.detach(), graph, V)
    return _mask_to_edges(mask, graph, V)[0]


def sample_tree(
    edge_logits: torch.Tensor, init_edges=None, mcmc_steps: int = 1, backend: str = "python"
) -> torch.Tensor:
    """Draw a spanning tree: start from ``init_edges`` (default: :func:`sample_tree_approx`)
    and make ``mcmc_steps`` steps of :func:`sample_tree_mcmc`.

    :returns: a ``(V-1, 2)`` tree, edges sorted colexicographically.

    Example::

        >>> _ = torch.manual_seed(0)
        >>> tree = sample_tree(torch.zeros(3))
        >>> tree.shape, bool((tree[:, 0] < tree[:, 1]).all())
        (torch.Size([2, 2]), True)
    """
    if not isinstance(mcmc_steps, int) or mcmc_steps < 0:
        raise ValueError(f"mcmc_steps must be an int >= 0, got {mcmc_steps!r}")
    edges = init_edges
    if edges is None:
        edges = sample_tree_approx(edge_logits, backend=backend)
    for _ in range(mcmc_steps):
        edges = sample_tree_mcmc(edge_logits, edges, backend=backend)
    return edges


def find_best_tree(edge_logits: torch.Tensor, backend: str = "python") -> torch.Tensor:
    """The maximum spanning tree of ``edge_logits`` (Kruskal), the mode of the distribution.

    :returns: a ``(V-1, 2)`` tree, edges sorted colexicographically.

    Example::

        >>> find_best_tree(torch.tensor([3.0, 1.0, 2.0]))  # edges (0,1), (0,2), (1,2)
        tensor([[0, 1],
                [1, 2]])
    """
    _check_backend(backend)
    V = _check_edge_logits(edge_logits)
    graph = make_complete_graph(V).to(edge_logits.device)
    label = list(range(V))
    chosen = []
    for k in edge_logits.detach().argsort(descending=True).tolist():
        a, b = label[graph[0, k]], label[graph[1, k]]
        if a != b:
            chosen.append(k)
            label = [a if lab == b else lab for lab in label]
    chosen.sort()
    return graph.t()[chosen]


#: Number of spanning trees of the complete graph on ``V`` vertices, indexed by
#: ``V``: Cayley's formula ``V ** (V - 2)`` (and 1 for ``V < 2``).
NUM_SPANNING_TREES = [1, 1] + [v ** (v - 2) for v in range(2, 20)]


def enumerate_spanning_trees(V: int) -> torch.Tensor:
    """Every spanning tree of the complete graph on ``V`` vertices, as a ``(T, V-1, 2)`` tensor.

    Trees and their edges are sorted colexicographically; ``T =``
    ``NUM_SPANNING_TREES[V]``. Available for ``2 <= V <= 6``.

    Example::

        >>> enumerate_spanning_trees(3).tolist()
        [[[0, 1], [0, 2]], [[0, 1], [1, 2]], [[0, 2], [1, 2]]]
    """
    if not isinstance(V, int) or not 2 <= V <= _MAX_ENUMERATE_VERTICES:
        raise ValueError(
            f"enumerate_spanning_trees is available for 2 <= V <= {_MAX_ENUMERATE_VERTICES} "
            f"vertices (there are V**(V-2) trees); got V = {V!r}"
        )
    if V not in _SUPPORT_CACHE:
        _SUPPORT_CACHE[V] = _prufer_trees(V)
    return _SUPPORT_CACHE[V].clone()
