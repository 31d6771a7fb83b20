"""TraceGraph_ELBO: score-function gradients with only the costs that depend on each site.

A non-reparameterized guide site ``z`` gets the score-function term
``log q(z) * (downstream cost of z - baseline)``, where the downstream cost
keeps only the terms that can depend on ``z`` (Rao-Blackwellization):

* guide sites downstream of ``z`` by the trace's dependency edges (a dense
  graph: every later site not in a different iteration of a sequential
  ``plate``), closed transitively, together with ``z`` itself;
* model sites of the same names and every model site downstream of them;
* inside a vectorized ``plate`` that ``z`` belongs to, only the element of the
  cost with ``z``'s own index (other elements are conditionally independent);
  costs outside the plates of ``z`` are summed over their plates.

The dependency structure depends only on the program's site names and plates,
so it is computed once per structure and cached; each step then forms every
site's downstream cost with one matrix product per group of sites.

Baselines further reduce variance; set them per site with
``infer={"baseline": {...}}`` (the decaying average may be combined with one
of the other two; the baselines then add up):

* ``use_decaying_avg_baseline=True`` (with ``baseline_beta``, default 0.90): an
  exponentially decaying average of past downstream costs;
* ``nn_baseline=module`` with ``nn_baseline_input=tensor``: a neural network
  (register it with ``ember.module`` in the guide so it is trained) fitted to
  the downstream cost by least squares;
* ``baseline_value=tensor``: a user-computed baseline (also fitted by least
  squares when it requires grad).
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch

from ember.infer.elbo import ELBO, ParticleEstimate
from ember.infer.trace_elbo import trace_pair_elbo
from ember.infer.util import is_identically_zero, particle_sum
from ember.poutine.trace_struct import identify_dense_edges

__all__ = ["JitTraceGraph_ELBO", "TraceGraph_ELBO"]

_BASELINE_KEYS = {
    "use_decaying_avg_baseline",
    "baseline_beta",
    "nn_baseline",
    "nn_baseline_input",
    "baseline_value",
}


def _frames_key(site) -> tuple:
    return tuple(
        (
            f.name,
            f.dim,
            f.size,
            bool(getattr(f, "vectorized", True)),
            getattr(f, "counter", None),
        )
        for f in (site.get("cond_indep_stack") or ())
    )


def _reachability(trace, sites) -> torch.Tensor:
    """``R[i, j]``: ``sites[j]`` is downstream of ``sites[i]``.

    Uses the trace's dependency edges (``identify_dense_edges`` adds them to a
    copy when the trace was recorded flat), closed transitively.
    """
    n = len(sites)
    if trace.graph_type != "dense" or not trace.edges:
        trace = trace.copy()
        identify_dense_edges(trace)
    index = {s["name"]: i for i, s in enumerate(sites)}
    reach = torch.zeros(n, n)
    for i, s in enumerate(sites):
        for succ in trace.successors(s["name"]):
            j = index.get(succ)
            if j is not None:
                reach[i, j] = 1.0
    if bool((reach.triu(1) == torch.ones(n, n).triu(1)).all()):
        return reach.bool()  # every later site is downstream: already closed
    while True:
        closed = ((reach @ reach + reach) > 0).float()
        if torch.equal(closed, reach):
            return reach.bool()
        reach = closed


class _Structure:
    """The cached dependency structure of one (model, guide) site layout."""

    def __init__(self, guide_trace, model_trace, guide_sites, model_sites, nonreparam):
        guide_frames = [_frames_key(s) for s in guide_sites]
        guide_reach = _reachability(guide_trace, guide_sites)
        model_reach = _reachability(model_trace, model_sites)
        model_index = {s["name"]: i for i, s in enumerate(model_sites)}
        n_g, n_m = len(guide_sites), len(model_sites)
        rows = []
        for i in nonreparam:
            guide_down = guide_reach[i].clone()
            guide_down[i] = True
            model_down = torch.zeros(n_m, dtype=torch.bool)
            for j in guide_down.nonzero().flatten().tolist():
                k = model_index.get(guide_sites[j]["name"])
                if k is not None:
                    model_down[k] = True
                    model_down |= model_reach[k]
            rows.append(torch.cat([guide_down, model_down]))
        # (num nonreparam sites, num guide terms + num model terms)
        self.downstream = torch.stack(rows).float() if rows else torch.zeros(0, n_g + n_m)
        self.nonreparam = list(nonreparam)
        # group the non-reparameterized sites by their vectorized plates; for each
        # group and cost term, the dims the term keeps: those of the plates it
        # shares with the group (another plate at the same dim is summed over)
        term_plates = [_plates(f) for f in guide_frames + [_frames_key(s) for s in model_sites]]
        groups: Dict[frozenset, List[int]] = {}
        for row, i in enumerate(nonreparam):
            groups.setdefault(_plates(guide_frames[i]), []).append(row)
        self.groups = [
            ([frozenset(d for (_, d) in plates & term) for term in term_plates], rows_)
            for plates, rows_ in groups.items()
        ]
        self._cast: Dict[Tuple, torch.Tensor] = {}

    def matrix(self, like: torch.Tensor) -> torch.Tensor:
        key = (like.dtype, like.device)
        m = self._cast.get(key)
        if m is None:
            m = self._cast[key] = self.downstream.to(dtype=like.dtype, device=like.device)
        return m


def _detached(value):
    return value.detach() if isinstance(value, torch.Tensor) else value


def _plates(frames_key: tuple) -> frozenset:
    """The ``(name, dim)`` of the vectorized plates in a :func:`_frames_key`."""
    return frozenset((name, d) for (name, d, _, vec, _) in frames_key if vec and d is not None)


def _reduce(tensor: torch.Tensor, keep: frozenset, rank: int) -> torch.Tensor:
    """Sum ``tensor`` over every dim not in ``keep`` (keepdim) and left-pad it to ``rank``."""
    dims = [tensor.dim() - i for i in range(1, tensor.dim() + 1) if -i not in keep]
    if dims:
        tensor = tensor.sum(dims, keepdim=True)
    return _pad(tensor, rank)


def _pad(tensor: torch.Tensor, rank: int) -> torch.Tensor:
    """Left-pad ``tensor`` with size-1 dims to ``rank`` dims."""
    if tensor.dim() < rank:
        return tensor.reshape((1,) * (rank - tensor.dim()) + tensor.shape)
    return tensor


class TraceGraph_ELBO(ELBO):
    """ELBO whose score-function terms use only each site's downstream cost.

    For models with non-reparameterizable latent variables (e.g. discrete
    ones) this gives much lower-variance gradients than
    :class:`~ember.infer.trace_elbo.Trace_ELBO`; the loss value is the same
    estimate. Arguments as for :class:`~ember.infer.elbo.ELBO`; baselines are
    set per site through ``infer={"baseline": {...}}`` (see the module docs).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer import TraceGraph_ELBO
        >>> def model():
        ...     z = ember.sample("z", dist.Bernoulli(0.5))
        ...     ember.sample("x", dist.Normal(z, 1.0), obs=torch.tensor(1.0))
        >>> def guide():
        ...     p = ember.param("p_tracegraph_doc", torch.tensor(0.5))
        ...     baseline = {"use_decaying_avg_baseline": True}
        ...     ember.sample("z", dist.Bernoulli(p), infer={"baseline": baseline})
        >>> loss = TraceGraph_ELBO().loss_and_grads(model, guide)
        >>> ember.param("p_tracegraph_doc").grad is not None
        True
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._structures: Dict[tuple, _Structure] = {}
        self._avg_baselines: Dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------ one trace pair
    def _structure(self, guide_trace, model_trace, guide_sites, model_sites, nonreparam):
        key = (
            tuple((s["name"], _frames_key(s)) for s in guide_sites),
            tuple((s["name"], _frames_key(s)) for s in model_sites),
            tuple(nonreparam),
        )
        structure = self._structures.get(key)
        if structure is None:
            if len(self._structures) > 64:  # programs whose structure keeps changing
                self._structures.clear()
            structure = self._structures[key] = _Structure(
                guide_trace, model_trace, guide_sites, model_sites, nonreparam
            )
        return structure

    def _baseline(self, site, cost: torch.Tensor, particle_dim):
        """``(baseline, baseline_loss)`` for one site (``0`` when it has none)."""
        options = (site.get("infer") or {}).get("baseline")
        if not options:
            return 0.0, 0.0
        if not isinstance(options, dict):
            raise TypeError(
                f"site {site['name']!r}: infer['baseline'] must be a dict, got "
                f"{type(options).__name__}"
            )
        unknown = set(options) - _BASELINE_KEYS
        if unknown:
            raise ValueError(
                f"site {site['name']!r}: unknown baseline options {sorted(unknown)}; expected "
                f"some of {sorted(_BASELINE_KEYS)}"
            )
        nn_baseline = options.get("nn_baseline")
        value = options.get("baseline_value")
        use_avg = bool(options.get("use_decaying_avg_baseline", False))
        if nn_baseline is not None and value is not None:
            raise ValueError(
                f"site {site['name']!r}: use nn_baseline or baseline_value, not both (either "
                "may be combined with use_decaying_avg_baseline)"
            )
        baseline = 0.0
        baseline_loss = 0.0
        cost = cost.detach()
        if use_avg:
            beta = float(options.get("baseline_beta", 0.90))
            if not 0.0 <= beta < 1.0:
                raise ValueError(
                    f"site {site['name']!r}: baseline_beta must be in [0, 1), got {beta}"
                )
            target = cost
            if particle_dim is not None and cost.dim() >= -particle_dim:
                target = cost.mean(cost.dim() + particle_dim, keepdim=True)
            old = self._avg_baselines.get(site["name"])
            if old is None or old.shape != target.shape:
                self._avg_baselines[site["name"]] = target
            else:
                baseline = old
                self._avg_baselines[site["name"]] = beta * old + (1.0 - beta) * target
        learned = None
        if nn_baseline is not None:
            if "nn_baseline_input" not in options:
                raise ValueError(
                    f"site {site['name']!r}: nn_baseline needs nn_baseline_input (the tensor "
                    "the network is applied to)"
                )
            # the input's own gradient must not come from the baseline's loss
            learned = nn_baseline(_detached(options["nn_baseline_input"]))
        elif value is not None:
            if not isinstance(value, torch.Tensor):
                value = torch.as_tensor(value, dtype=cost.dtype, device=cost.device)
            learned = value
        if learned is not None:
            baseline = baseline + learned
        if isinstance(baseline, torch.Tensor) and baseline.requires_grad:
            try:
                torch.broadcast_shapes(baseline.shape, cost.shape)
            except RuntimeError as e:
                raise ValueError(
                    f"site {site['name']!r}: baseline shape {tuple(baseline.shape)} does not "
                    f"broadcast with the downstream cost shape {tuple(cost.shape)}"
                ) from e
            baseline_loss = (cost - baseline).pow(2).sum()
            baseline = baseline.detach()
        return baseline, baseline_loss

    def _particle(self, model_trace, guide_trace, particle_dim):
        """``(elbo, surrogate_elbo, score_and_baseline)`` for one trace pair."""
        # (observed guide sites, e.g. a factor, enter log q like latent ones)
        guide_sites = [s for s in guide_trace.nodes.values() if s["type"] == "sample"]
        nonreparam = [
            i for i, s in enumerate(guide_sites) if not is_identically_zero(s["score_parts"][1])
        ]
        if not nonreparam:
            elbo, surrogate = trace_pair_elbo(model_trace, guide_trace, particle_dim)
            return elbo, surrogate, 0.0
        model_sites = [s for s in model_trace.nodes.values() if s["type"] == "sample"]
        structure = self._structure(guide_trace, model_trace, guide_sites, model_sites, nonreparam)

        terms = [-s["score_parts"][0] for s in guide_sites] + [s["log_prob"] for s in model_sites]
        terms = [
            t if isinstance(t, torch.Tensor) else torch.as_tensor(t, dtype=terms[0].dtype)
            for t in terms
        ]
        log_p = sum(particle_sum(s["log_prob"], particle_dim) for s in model_sites)
        log_q = sum(particle_sum(s["score_parts"][0], particle_dim) for s in guide_sites)
        entropy = 0.0
        for s in guide_sites:
            ent = s["score_parts"][2]
            if not is_identically_zero(ent):
                entropy = entropy + particle_sum(ent, particle_dim)
        elbo = log_p - log_q
        surrogate = log_p - entropy

        # downstream costs, one group of sites (same plates) at a time
        detached = [t.detach() for t in terms]
        scores = [guide_sites[i]["score_parts"][1] for i in structure.nonreparam]
        rank = max(max(t.dim() for t in detached), max(s.dim() for s in scores))
        matrix = structure.matrix(detached[0])
        score_total = 0.0
        for keeps, rows in structure.groups:
            reduced = [_reduce(t, keep, rank) for t, keep in zip(detached, keeps)]
            buckets: Dict[torch.Size, List[int]] = {}
            for j, r in enumerate(reduced):
                buckets.setdefault(r.shape, []).append(j)
            row_index = torch.tensor(rows, device=matrix.device)
            sub = matrix.index_select(0, row_index)
            cost = 0.0
            for cols in buckets.values():
                stacked = torch.stack([reduced[j] for j in cols])
                weights = sub[:, cols] if len(cols) < len(reduced) else sub
                cost = cost + torch.tensordot(weights, stacked, dims=1)
            group_sites = [guide_sites[structure.nonreparam[r]] for r in rows]
            group_scores = [_pad(scores[r], rank) for r in rows]
            baselines = []
            for k, site in enumerate(group_sites):
                baseline, baseline_loss = self._baseline(site, cost[k], particle_dim)
                baselines.append(baseline)
                if not is_identically_zero(baseline_loss):
                    # minimized together with the loss: subtract from the surrogate ELBO
                    score_total = score_total - baseline_loss
            if all(is_identically_zero(b) for b in baselines):
                advantages = cost
                same = True
            else:
                advantages = [cost[k] - b for k, b in enumerate(baselines)]
                same = len({a.shape for a in advantages}) == 1
                if same:
                    advantages = torch.stack(advantages)
            if same and len({s.shape for s in group_scores}) == 1:
                score_total = score_total + (torch.stack(group_scores) * advantages).sum()
            else:
                for k, s in enumerate(group_scores):
                    score_total = score_total + (s * advantages[k]).sum()
        return elbo, surrogate, score_total

    def particle_elbo(self, model, guide, args, kwargs, particle_dim) -> ParticleEstimate:
        model_trace, guide_trace = self.get_trace_pair(model, guide, args, kwargs, particle_dim)
        traces = (model_trace, guide_trace)
        if not torch.is_grad_enabled():
            # the value alone (loss, evaluate_loss) is Trace_ELBO's: it needs no score
            # terms and must not move the decaying-average baselines
            elbo, surrogate = trace_pair_elbo(model_trace, guide_trace, particle_dim)
            return ParticleEstimate(elbo, surrogate, traces)
        elbo, surrogate, score = self._particle(model_trace, guide_trace, particle_dim)
        if is_identically_zero(score):
            return ParticleEstimate(elbo, surrogate, traces)
        if particle_dim is not None:
            # the score terms are summed over the particles: average them with the rest
            if isinstance(surrogate, torch.Tensor) and surrogate.dim():
                surrogate = surrogate.mean()
            surrogate = surrogate + score / self.num_particles
        else:
            surrogate = surrogate + score
        return ParticleEstimate(elbo, surrogate, traces)


class JitTraceGraph_ELBO(TraceGraph_ELBO):
    """:class:`TraceGraph_ELBO` under Pyro's JIT name. ember runs every loss eagerly (its
    eager step costs less than a JIT-compiled step in Pyro), so this is
    :class:`TraceGraph_ELBO` with the same results; Pyro's ``ignore_jit_warnings`` and
    ``jit_options`` are accepted and have no effect.

    Example::

        >>> from ember.infer import JitTraceGraph_ELBO, TraceGraph_ELBO
        >>> isinstance(JitTraceGraph_ELBO(max_plate_nesting=1), TraceGraph_ELBO)
        True
    """
