"""Trace: the record of one run of a model, site by site, with cached log-densities.

Graph API (used by TraceGraph_ELBO for Rao-Blackwellization): sites are the
nodes (``trace.nodes``: name -> site dict, in execution order); edges are
added by ``trace(fn, graph_type="dense")`` from each sample site to every later
sample site that is not separated from it by a sequential plate; query them
with ``edges``, ``successors(name)``, ``predecessors(name)``, ``in_degree``
and ``topological_sort()``.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterator, List, Set

import torch

from ember.distributions.score_parts import ScoreParts
from ember.distributions.util import is_identically_zero, scale_and_mask
from ember.poutine.subsample_messenger import site_is_subsample

_Tensor = torch.Tensor


def _is_one(scale) -> bool:
    """Whether ``scale`` is the number 1 (a tensor scale is never inspected)."""
    return (type(scale) is float or type(scale) is int) and scale == 1


def _scale_and_mask(lp, scale, mask):
    """``scale_and_mask`` that skips the call for the common scale 1, no mask."""
    if mask is None and _is_one(scale):
        return lp
    return scale_and_mask(lp, scale, mask)


def _total(lp):
    """Sum of a log-density over all its entries; a 0-dim tensor is its own sum."""
    if isinstance(lp, _Tensor) and lp.dim():
        return lp.sum()
    return lp


class SiteError(ValueError, RuntimeError):
    """A mistake about a site (a duplicate name, a replay mismatch): both a ValueError
    and, as in Pyro, a RuntimeError.

    Example::

        >>> issubclass(SiteError, ValueError) and issubclass(SiteError, RuntimeError)
        True
    """


def _all_sites(name, site):
    return True


class Trace:
    """An ordered record of the sites of one execution.

    ``trace.nodes[name]`` is a site dict with the message keys (``type``,
    ``fn``, ``value``, ``scale``, ``mask``, ``cond_indep_stack``, ``infer``,
    ...). :meth:`compute_log_prob` caches ``log_prob`` (scaled and masked, of
    the site's batch shape), ``unscaled_log_prob`` and ``log_prob_sum`` on
    each sample site.

    Dependency graph (filled by ``trace(fn, graph_type="dense")``, used for
    Rao-Blackwellization): ``edges`` (list of ``(u, v)``), ``successors(name)``
    and ``predecessors(name)`` (sets of names), ``in_degree(name)``,
    ``add_edge(u, v)``, ``remove_node(name)``, ``reachable(name)``,
    ``topological_sort(reverse=False)``. The dense graph connects sample sites
    only (not ``_INPUT``/``_RETURN``/params).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> def model():
        ...     x = ember.sample("x", dist.Normal(0.0, 1.0))
        ...     ember.sample("y", dist.Normal(x, 1.0), obs=torch.tensor(0.0))
        >>> tr = ember.poutine.trace(model).get_trace()
        >>> tr.stochastic_nodes, tr.observation_nodes
        (['x'], ['y'])
        >>> tr.compute_log_prob()
        >>> bool(tr.log_prob_sum() == tr.nodes["x"]["log_prob"] + tr.nodes["y"]["log_prob"])
        True
    """

    def __init__(self, graph_type: str = "flat"):
        if graph_type not in ("flat", "dense"):
            raise ValueError(f"graph_type must be 'flat' or 'dense', got {graph_type!r}")
        self.graph_type = graph_type
        self.nodes: Dict[str, dict] = {}
        self._succ: Dict[str, Set[str]] = {}
        self._pred: Dict[str, Set[str]] = {}

    # ----------------------------------------------------------- container
    def __contains__(self, name) -> bool:
        return name in self.nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        return f"Trace({list(self.nodes)})"

    def add_node(self, site_name: str, **kwargs) -> None:
        """Add a site; a second sample site of the same name raises ``ValueError``."""
        self._add_site(site_name, kwargs)

    def _add_site(self, site_name, site) -> None:
        nodes = self.nodes
        if site_name in nodes:
            old = nodes[site_name]
            if old["type"] is None:  # a node added by add_edge: now it gets its site
                nodes[site_name] = site
                return
            if old["type"] != site["type"]:
                raise SiteError(
                    f"site {site_name!r} is already in the trace as a {old['type']} site; "
                    f"cannot add a {site['type']} site of the same name. Use distinct names."
                )
            if site["type"] != "param":
                raise SiteError(
                    f"Multiple {site['type']} sites named {site_name!r}. Every sample site in a "
                    "run needs a unique name; inside a loop use e.g. f'" + str(site_name) + "_{i}'."
                )
        nodes[site_name] = site

    def remove_node(self, site_name: str) -> None:
        """Remove a site and its edges."""
        del self.nodes[site_name]
        for other in self._succ.pop(site_name, ()):
            self._pred[other].discard(site_name)
        for other in self._pred.pop(site_name, ()):
            self._succ[other].discard(site_name)

    # --------------------------------------------------------------- graph
    def add_edge(self, u: str, v: str) -> None:
        """Add a dependency edge ``u -> v``.

        An endpoint that is not in the trace yet is added as a bare node
        (``{"name": ..., "type": None}``, which no site query counts); a site
        added later under that name takes its place and keeps its edges.

        Example::

            >>> tr = Trace()
            >>> tr.add_edge("a", "b"); tr.add_edge("b", "c")
            >>> tr.topological_sort(), tr.nodes["c"]
            (['a', 'b', 'c'], {'name': 'c', 'type': None})
        """
        nodes = self.nodes
        for n in (u, v):
            if n not in nodes:
                nodes[n] = {"name": n, "type": None}
        self._succ.setdefault(u, set()).add(v)
        self._pred.setdefault(v, set()).add(u)

    @property
    def edges(self) -> List[tuple]:
        """All edges ``(u, v)``, in site order."""
        order = {n: i for i, n in enumerate(self.nodes)}
        out = [(u, v) for u, vs in self._succ.items() for v in vs]
        out.sort(key=lambda e: (order[e[0]], order[e[1]]))
        return out

    def successors(self, name: str) -> Set[str]:
        """Names of the sites that depend on ``name``."""
        return set(self._succ.get(name, ()))

    def predecessors(self, name: str) -> Set[str]:
        """Names of the sites ``name`` depends on."""
        return set(self._pred.get(name, ()))

    def in_degree(self, name: str) -> int:
        """Number of edges into ``name``."""
        return len(self._pred.get(name, ()))

    def _dfs(self, name: str, visited: Set[str]) -> Iterator[str]:
        """The nodes reachable from ``name`` and not in ``visited``, each after its
        successors (depth-first post-order); adds them to ``visited``."""
        if name in visited:
            return
        visited.add(name)
        for succ in self._succ.get(name, ()):
            yield from self._dfs(succ, visited)
        yield name

    def reachable(self, name: str) -> List[str]:
        """``name`` and every node that depends on it through the edges, each listed
        after the nodes that depend on it.

        Example::

            >>> tr = Trace()
            >>> tr.add_edge("a", "b"); tr.add_edge("b", "c"); tr.add_edge("x", "c")
            >>> tr.reachable("a"), tr.reachable("c")
            (['c', 'b', 'a'], ['c'])
        """
        return list(self._dfs(name, set()))

    def topological_sort(self, reverse: bool = False) -> List[str]:
        """Node names such that every edge goes forward (backward when ``reverse``), ties
        broken by the order of the nodes in the trace. A cycle raises ``ValueError``."""
        order = {n: i for i, n in enumerate(self.nodes)}
        indeg = {n: len(self._pred.get(n, ())) for n in self.nodes}
        ready = [n for n in self.nodes if indeg[n] == 0]
        out = []
        while ready:
            n = ready.pop(0)
            out.append(n)
            for m in sorted(self._succ.get(n, ()), key=order.__getitem__):
                indeg[m] -= 1
                if indeg[m] == 0:
                    ready.append(m)
        if len(out) != len(self.nodes):
            raise ValueError("the trace's dependency graph has a cycle")
        return out[::-1] if reverse else out

    # ---------------------------------------------------------------- copy
    def copy(self) -> Trace:
        """A shallow copy: new node dict and edge sets, shared site dicts."""
        new = Trace(graph_type=self.graph_type)
        new.nodes = dict(self.nodes)
        new._succ = {k: set(v) for k, v in self._succ.items()}
        new._pred = {k: set(v) for k, v in self._pred.items()}
        return new

    def detach_(self) -> None:
        """Detach every site value from the autograd graph, in place."""
        for site in self.nodes.values():
            value = site.get("value")
            if isinstance(value, torch.Tensor):
                site["value"] = value.detach()

    # ----------------------------------------------------------- log probs
    def _log_prob(self, name, site, computing: str = "log_prob"):
        try:
            return site["fn"].log_prob(site["value"], *site["args"], **site["kwargs"])
        except ValueError as e:
            raise ValueError(
                f"Error while computing {computing} at site {name!r}:\n{e}\n"
                f"{self.format_shapes(last_site=name)}"
            ) from e

    def log_prob_sum(self, site_filter: Callable = _all_sites):
        """Sum of the scaled, masked log-densities of all sample sites (cached per site).

        Returns ``0.0`` when there is no sample site. The index sites of subsampled
        plates (whose density is zero) are left out, so that the sum has the dtype of
        the model's own log-densities.
        """
        result = None
        for name, site in self.nodes.items():
            if (
                site["type"] == "sample"
                and (site_filter is _all_sites or site_filter(name, site))
                and not site_is_subsample(site)
            ):
                lp_sum = site.get("log_prob_sum")
                if lp_sum is None:
                    lp = site.get("log_prob")
                    if lp is None:
                        lp = self._log_prob(name, site, "log_prob_sum")
                        lp = _scale_and_mask(lp, site["scale"], site["mask"])
                    lp_sum = _total(lp)
                    site["log_prob_sum"] = lp_sum
                result = lp_sum if result is None else result + lp_sum
        return 0.0 if result is None else result

    def compute_log_prob(self, site_filter: Callable = _all_sites) -> None:
        """Cache ``unscaled_log_prob``, ``log_prob`` and ``log_prob_sum`` on sample sites."""
        every = site_filter is _all_sites
        for name, site in self.nodes.items():
            if (
                site["type"] == "sample"
                and "log_prob" not in site
                and (every or site_filter(name, site))
            ):
                lp = self._log_prob(name, site)
                site["unscaled_log_prob"] = lp
                scale = site["scale"]
                mask = site["mask"]
                # (the common scale 1 without a mask needs no call: _scale_and_mask inlined)
                if mask is not None or not (
                    (type(scale) is float or type(scale) is int) and scale == 1
                ):
                    lp = scale_and_mask(lp, scale, mask)
                site["log_prob"] = lp
                site["log_prob_sum"] = lp.sum() if type(lp) is _Tensor and lp.dim() else _total(lp)

    def compute_score_parts(self, site_filter: Callable = _all_sites) -> None:
        """Cache ``score_parts`` (scaled and masked) and the log-prob keys on sample sites."""
        every = site_filter is _all_sites
        for name, site in self.nodes.items():
            if (
                site["type"] == "sample"
                and "score_parts" not in site
                and (every or site_filter(name, site))
            ):
                try:
                    parts = site["fn"].score_parts(site["value"], *site["args"], **site["kwargs"])
                except ValueError as e:
                    raise ValueError(
                        f"Error while computing score_parts at site {name!r}:\n{e}\n"
                        f"{self.format_shapes(last_site=name)}"
                    ) from e
                lp = parts.log_prob
                site["unscaled_log_prob"] = lp
                scale = site["scale"]
                mask = site["mask"]
                if mask is not None or not (
                    (type(scale) is float or type(scale) is int) and scale == 1
                ):
                    if parts.entropy_term is lp and is_identically_zero(parts.score_function):
                        # reparameterized: scale once, keep entropy_term the same tensor
                        lp = scale_and_mask(lp, scale, mask)
                        parts = ScoreParts(lp, parts.score_function, lp)
                    else:
                        # the score function is neither scaled nor masked: it multiplies
                        # a scaled and masked cost, to which a masked site's descendants
                        # still contribute
                        lp = scale_and_mask(lp, scale, mask)
                        ent = scale_and_mask(parts.entropy_term, scale, mask)
                        parts = ScoreParts(lp, parts.score_function, ent)
                site["score_parts"] = parts
                site["log_prob"] = lp
                site["log_prob_sum"] = lp.sum() if type(lp) is _Tensor and lp.dim() else _total(lp)

    # ------------------------------------------------------------- queries
    @property
    def param_nodes(self) -> List[str]:
        """Names of param sites."""
        return [n for n, s in self.nodes.items() if s["type"] == "param"]

    @property
    def stochastic_nodes(self) -> List[str]:
        """Names of unobserved sample sites."""
        return [n for n, s in self.nodes.items() if s["type"] == "sample" and not s["is_observed"]]

    @property
    def observation_nodes(self) -> List[str]:
        """Names of observed sample sites."""
        return [n for n, s in self.nodes.items() if s["type"] == "sample" and s["is_observed"]]

    @property
    def reparameterized_nodes(self) -> List[str]:
        """Names of unobserved sample sites whose distribution has ``rsample``."""
        return [
            n
            for n, s in self.nodes.items()
            if s["type"] == "sample"
            and not s["is_observed"]
            and getattr(s["fn"], "has_rsample", False)
        ]

    @property
    def nonreparam_stochastic_nodes(self) -> List[str]:
        """Names of unobserved sample sites without ``rsample``."""
        reparam = set(self.reparameterized_nodes)
        return [n for n in self.stochastic_nodes if n not in reparam]

    def iter_stochastic_nodes(self):
        """``(name, site)`` of unobserved sample sites, skipping plate subsample sites."""
        for name, site in self.nodes.items():
            if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site):
                yield name, site

    # -------------------------------------------------------------- shapes
    def format_shapes(self, title: str = "Trace Shapes:", last_site=None) -> str:
        """A table of every site's distribution batch/event shapes, value and log_prob shapes.

        Example::

            >>> import torch, ember, ember.distributions as dist
            >>> def model():
            ...     with ember.plate("data", 3):
            ...         ember.sample("x", dist.Normal(0.0, 1.0))
            >>> print(ember.poutine.trace(model).get_trace().format_shapes())
            Trace Shapes:
             site  type    batch  event  value  log_prob  plates
             x     sample  (3,)   ()     (3,)   -         data(3)@-1
        """
        rows = [("site", "type", "batch", "event", "value", "log_prob", "plates")]
        for name, site in self.nodes.items():
            stype = site["type"]
            if stype not in ("sample", "param") or site_is_subsample(site):
                continue
            fn = site.get("fn")
            batch = getattr(fn, "batch_shape", None) if stype == "sample" else None
            event = getattr(fn, "event_shape", None) if stype == "sample" else None
            value = site.get("value")
            vshape = tuple(value.shape) if isinstance(value, torch.Tensor) else "-"
            lp = site.get("log_prob")
            lpshape = tuple(lp.shape) if isinstance(lp, torch.Tensor) else "-"
            plates = " ".join(
                f"{f.name}({f.size})" + (f"@{f.dim}" if f.dim is not None else "")
                for f in reversed(site.get("cond_indep_stack", ()))
            )
            rows.append(
                (
                    str(name),
                    stype,
                    str(tuple(batch)) if batch is not None else "-",
                    str(tuple(event)) if event is not None else "-",
                    str(vshape),
                    str(lpshape),
                    plates or "-",
                )
            )
            if name == last_site:
                break
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [title]
        for r in rows:
            lines.append(" " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        return "\n".join(lines)


def identify_dense_edges(trace: Trace) -> None:
    """Add an edge from each sample site to every later sample site it may influence.

    Two sites in different iterations of the same sequential plate are
    independent, so they get no edge. Subsample sites are skipped.

    Example::

        >>> import ember, ember.distributions as dist
        >>> def model():
        ...     a = ember.sample("a", dist.Normal(0.0, 1.0))
        ...     ember.sample("b", dist.Normal(a, 1.0))
        >>> tr = ember.poutine.trace(model).get_trace()
        >>> identify_dense_edges(tr); tr.edges
        [('a', 'b')]
    """
    sites = [
        (name, site)
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site_is_subsample(site)
    ]
    for j, (name, site) in enumerate(sites):
        for past_name, past in sites[:j]:
            independent = False
            for a, b in zip(site["cond_indep_stack"], past["cond_indep_stack"]):
                if a.name == b.name and a.counter != b.counter:
                    independent = True
                    break
            if not independent:
                trace.add_edge(past_name, name)
