"""Seeing a model: its dependency structure and a drawing of its graph.

The model runs once under :class:`TrackProvenance`, which marks the value of every
sample site (and param) with the site's name as a
:class:`~ember.ops.provenance.ProvenanceTensor`. The provenance of a site's
log-density then names the sites it depends on directly. This sees through
integer arithmetic, indexing with discrete values, ``detach()`` and ``no_grad``;
it does not see dependencies carried by Python values (``x.item()``, ``int(x)``,
``if x > 0:``), which leave the tensor world.

* :func:`get_dependencies`: prior and posterior dependencies among sample sites
  (used by the structured automatic guides);
* :func:`get_model_relations`: sites, distributions, params, plates and edges;
* :func:`render_model`: a graphviz drawing of the model (requires the optional
  ``graphviz`` package and its ``dot`` program).
"""

from __future__ import annotations

import itertools
import os
from collections import defaultdict
from pathlib import Path
from typing import Callable, Collection, Dict, List, Optional, Union

import torch

from ember import poutine
from ember.ops.provenance import ProvenanceTensor, detach_provenance, get_provenance
from ember.poutine.messenger import Messenger
from ember.poutine.subsample_messenger import site_is_subsample
from ember.util import validation_enabled

__all__ = [
    "TrackProvenance",
    "deep_merge",
    "generate_graph_specification",
    "get_dependencies",
    "get_model_relations",
    "is_sample_site",
    "render_graph",
    "render_model",
    "site_is_deterministic",
]


def _innermost(fn):
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return fn


def is_sample_site(msg, *, include_deterministic: bool = False) -> bool:
    """Whether a message (or trace site) is a random variable of the model: a sample
    site that is not a plate's subsample site and, unless ``include_deterministic``,
    not an entirely masked observation and not a point mass (``ember.deterministic``
    sites and ``Delta`` s).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> def model():
        ...     x = ember.sample("x", dist.Normal(0.0, 1.0))
        ...     ember.deterministic("y", 2 * x)
        >>> trace = ember.poutine.trace(model).get_trace()
        >>> [name for name, site in trace.nodes.items() if is_sample_site(site)]
        ['x']
    """
    if msg["type"] != "sample" or site_is_subsample(msg):
        return False
    if include_deterministic:
        return True
    if msg["is_observed"] and msg["mask"] is False:
        return False
    return type(_innermost(msg["fn"])).__name__ != "Delta"


def site_is_deterministic(msg) -> bool:
    """Whether a message (or trace site) was made by ``ember.deterministic``."""
    return msg["type"] == "sample" and bool(msg["infer"].get("_deterministic", False))


class TrackProvenance(Messenger):
    """Marks the value of every sample site (by :func:`is_sample_site`) and every
    param with provenance ``{name}``, replacing whatever provenance the value had, so
    that provenance records direct dependencies only.

    :param bool include_deterministic: also mark deterministic and ``Delta`` sites.
    """

    def __init__(self, *, include_deterministic: bool = False) -> None:
        super().__init__()
        self.include_deterministic = include_deterministic

    def _mark(self, msg) -> None:
        msg["value"] = ProvenanceTensor(detach_provenance(msg["value"]), frozenset({msg["name"]}))

    def _pyro_post_sample(self, msg) -> None:
        if is_sample_site(msg, include_deterministic=self.include_deterministic):
            self._mark(msg)

    def _pyro_post_param(self, msg) -> None:
        if msg["type"] == "param":
            self._mark(msg)


def _traced(model, model_args, model_kwargs, include_deterministic):
    if model_args is None:
        model_args = ()
    if model_kwargs is None:
        model_kwargs = {}
    if not isinstance(model_args, tuple):
        raise TypeError(f"model_args must be a tuple, got {type(model_args).__name__}")
    if not isinstance(model_kwargs, dict):
        raise TypeError(f"model_kwargs must be a dict, got {type(model_kwargs).__name__}")
    with torch.random.fork_rng(), torch.no_grad(), validation_enabled(False):
        with TrackProvenance(include_deterministic=include_deterministic):
            return poutine.trace(model).get_trace(*model_args, **model_kwargs)


def _log_prob_provenance(site) -> frozenset:
    fn = site["fn"]
    if site_is_deterministic(site):
        fn = fn.base_dist  # the unmasked point mass
    with torch.no_grad():
        return get_provenance(fn.log_prob(site["value"]))


def get_dependencies(
    model: Callable,
    model_args: Optional[tuple] = None,
    model_kwargs: Optional[dict] = None,
    include_deterministic: bool = False,
) -> Dict[str, Dict[str, Dict[str, set]]]:
    """The prior and posterior dependencies among a model's sample sites.

    :return: ``{"prior_dependencies": {d: {u: plates}}, "posterior_dependencies":
        {d: {u: plates}}}``. ``prior_dependencies`` maps every latent and observed
        site ``d`` to the latent sites its log-density depends on directly (itself
        included). ``posterior_dependencies`` maps every latent site to the sites it
        is coupled with in the posterior: its children in the prior and, by
        moralization, the other latent parents of its children (later sites come
        first). The plate sets name the plates along which a dependency couples all
        elements (e.g. a latent ``a`` in plate ``p`` whose sum is observed depends
        on itself across ``p`` in the posterior).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> def model():
        ...     a = ember.sample("a", dist.Normal(0.0, 1.0))
        ...     b = ember.sample("b", dist.LogNormal(0.0, 1.0))
        ...     c = ember.sample("c", dist.Normal(a, b))
        ...     ember.sample("d", dist.Normal(c, 1.0), obs=torch.tensor(0.0))
        >>> deps = get_dependencies(model)
        >>> deps["prior_dependencies"]["c"]
        {'c': set(), 'a': set(), 'b': set()}
        >>> deps["posterior_dependencies"]["a"]
        {'a': set(), 'c': set(), 'b': set()}
    """
    trace = _traced(model, model_args, model_kwargs, include_deterministic)
    sites = [s for s in trace.nodes.values() if is_sample_site(s)]
    observed = {s["name"] for s in sites if s["is_observed"]}
    plates = {s["name"]: {f.name for f in s["cond_indep_stack"] if f.vectorized} for s in sites}

    prior = {s["name"]: {s["name"]: set()} for s in sites}
    for i, down in enumerate(sites):
        ups = [u["name"] for u in sites[:i] if not u["is_observed"] and u["value"].numel()]
        if not ups:
            continue
        provenance = _log_prob_provenance(down)
        for u in ups:
            if u in provenance:
                prior[down["name"]][u] = set()

    posterior = {name: {} for name in plates if name not in observed}
    for d, ups in prior.items():
        for u, p in ups.items():
            if u not in observed:
                posterior[u][d] = set(p)
    # moralize: the latent parents of a site are coupled in the posterior
    order = {s["name"]: i for i, s in enumerate(reversed(sites))}
    for d, ups in prior.items():
        latent_ups = {u: p for u, p in ups.items() if u not in observed}
        for u1, p1 in latent_ups.items():
            for u2, p2 in latent_ups.items():
                if order[u1] <= order[u2]:
                    coupled = posterior[u2].setdefault(u1, set())
                    coupled |= (plates[u1] & plates[u2]) - plates[d]
                    coupled |= plates[u2] & p1
                    coupled |= plates[u1] & p2
    return {"prior_dependencies": prior, "posterior_dependencies": posterior}


def _distribution_name(fn) -> str:
    while type(fn).__name__ in ("Independent", "ExpandedDistribution", "MaskedDistribution"):
        fn = fn.base_dist
    return type(fn).__name__


def _split_overlapping_plates(plate_sample: Dict[str, List[str]]) -> Dict[str, List[str]]:
    """Make plates drawable as nested boxes: when two plates share some sites and
    each also has its own, the second keeps the shared sites and a new plate
    ``"<name>__CLONE"`` takes the rest."""
    plate_sample = {k: set(v) for k, v in plate_sample.items()}
    split = True
    while split:
        split = False
        for p, q in itertools.product(list(plate_sample), repeat=2):
            ps, qs = plate_sample[p], plate_sample[q]
            if ps & qs and ps - qs and qs - ps:
                plate_sample[q] = ps & qs
                plate_sample[q + "__CLONE"] = qs - ps
                split = True
                break
    return plate_sample


def get_model_relations(
    model: Callable,
    model_args: Optional[tuple] = None,
    model_kwargs: Optional[dict] = None,
    include_deterministic: bool = False,
) -> dict:
    """The relations among a model's sites, from one run of the model.

    :return: a dict with

        * ``"sample_sample"``: for each sample site, the sample sites its
          log-density depends on directly (in trace order);
        * ``"sample_param"``: for each sample site, the params it depends on;
        * ``"sample_dist"``: each sample site's distribution name (``"Deterministic"``
          for ``ember.deterministic`` sites);
        * ``"param_constraint"``: each param's constraint, as a string;
        * ``"plate_sample"``: for each plate, the sample sites inside it;
        * ``"observed"``: the observed sample sites.

    :param bool include_deterministic: whether deterministic and ``Delta`` sites are
        nodes in their own right (otherwise dependencies are traced through them).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> def model(data):
        ...     m = ember.sample("m", dist.Normal(0.0, 1.0))
        ...     with ember.plate("N", len(data)):
        ...         ember.sample("x", dist.Normal(m, 1.0), obs=data)
        >>> rel = get_model_relations(model, (torch.zeros(3),))
        >>> rel["sample_sample"], rel["plate_sample"], rel["observed"]
        ({'m': [], 'x': ['m']}, {'N': ['x']}, ['x'])
    """
    trace = _traced(model, model_args, model_kwargs, include_deterministic)
    order = list(trace.nodes)

    def in_trace_order(names: Collection[str]) -> List[str]:
        names = set(names)
        return [n for n in order if n in names]

    sample_sample, sample_param, sample_dist = {}, {}, {}
    param_constraint = {}
    plate_sample = defaultdict(list)
    observed = []
    for name, site in trace.nodes.items():
        if site["type"] == "param":
            param_constraint[name] = str(site["kwargs"]["constraint"])
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        ups = _log_prob_provenance(site) - {name}
        sample_sample[name] = in_trace_order(
            u for u in ups if u in trace.nodes and trace.nodes[u]["type"] == "sample"
        )
        sample_param[name] = in_trace_order(
            u for u in ups if u in trace.nodes and trace.nodes[u]["type"] == "param"
        )
        sample_dist[name] = (
            "Deterministic" if site_is_deterministic(site) else _distribution_name(site["fn"])
        )
        for frame in site["cond_indep_stack"]:
            plate_sample[frame.name].append(name)
        if site["is_observed"]:
            observed.append(name)
    plate_sample = _split_overlapping_plates(plate_sample)
    return {
        "sample_sample": sample_sample,
        "sample_param": sample_param,
        "sample_dist": sample_dist,
        "param_constraint": param_constraint,
        "plate_sample": {k: in_trace_order(v) for k, v in plate_sample.items()},
        "observed": in_trace_order(observed),
    }


def generate_graph_specification(model_relations: dict, render_params: bool = False) -> dict:
    """Turn :func:`get_model_relations` output into what :func:`render_graph` draws.

    :return: a dict with ``"plate_groups"`` (plate name, or ``None`` for the outside,
        to its nodes), ``"plate_data"`` (plate to ``{"parent": enclosing plate}``),
        ``"node_data"`` (node to ``is_observed``, ``distribution`` and, for params,
        ``constraint``) and ``"edge_list"`` (``(source, target)`` pairs).
    :raises NotImplementedError: for plates that overlap without nesting.
    """
    plate_groups = {k: list(v) for k, v in model_relations["plate_sample"].items()}
    in_some_plate = {n for nodes in plate_groups.values() for n in nodes}
    plate_groups[None] = [n for n in model_relations["sample_sample"] if n not in in_some_plate]
    params = []
    if render_params:
        for ps in model_relations["sample_param"].values():
            params.extend(p for p in ps if p not in params)
        plate_groups[None].extend(params)

    node_data = {
        n: {
            "is_observed": n in model_relations["observed"],
            "distribution": model_relations["sample_dist"][n],
        }
        for n in model_relations["sample_sample"]
    }
    if render_params:
        for p, constraint in model_relations["param_constraint"].items():
            node_data[p] = {"is_observed": False, "constraint": constraint, "distribution": None}

    plate_data = {}
    named = [p for p in plate_groups if p is not None]
    for p1, p2 in itertools.combinations(named, 2):
        n1, n2 = set(plate_groups[p1]), set(plate_groups[p2])
        if n1 < n2:
            plate_data[p1] = {"parent": p2}
        elif n1 >= n2:
            plate_data[p2] = {"parent": p1}
        elif n1 & n2:
            raise NotImplementedError(
                f"plates {p1!r} and {p2!r} overlap without nesting; render_model cannot "
                "draw them as boxes"
            )
    for p in named:
        plate_data.setdefault(p, {"parent": None})

    edge_list = [(u, d) for d, ups in model_relations["sample_sample"].items() for u in ups]
    if render_params:
        edge_list += [(u, d) for d, ups in model_relations["sample_param"].items() for u in ups]
    return {
        "plate_groups": plate_groups,
        "plate_data": plate_data,
        "node_data": node_data,
        "edge_list": edge_list,
    }


def deep_merge(things: list):
    """Merge a list of like-shaped nested dicts: dicts merge key-wise (recursively),
    booleans that disagree become ``None`` ("sometimes"), and other values are taken
    from the first item.

    Example::

        >>> deep_merge([{"a": True, "b": 1}, {"a": False, "b": 2, "c": 3}])
        {'a': None, 'b': 1, 'c': 3}
    """
    if len(things) == 1:
        return things[0]
    first = things[0]
    if isinstance(first, dict):
        out = {}
        for thing in things:
            for key in thing:
                if key not in out:
                    out[key] = deep_merge([t[key] for t in things if key in t])
        return out
    if isinstance(first, bool):
        if all(t is True for t in things):
            return True
        if all(t is False for t in things):
            return False
        return None
    return first


def _deep_merge(things: list):
    """:func:`deep_merge` under the private name Pyro's own test-suite imports."""
    return deep_merge(things)


_GRAPHVIZ_HINT = (
    "render_model draws with the graphviz package and its 'dot' program: install "
    "them with `pip install ember[graphviz]` (or `pip install graphviz`) and your "
    "system's graphviz package (e.g. `apt-get install graphviz`)"
)


def _import_graphviz():
    try:
        import graphviz  # optional dependency, only needed for drawing
    except ImportError as e:
        raise ImportError(_GRAPHVIZ_HINT) from e
    return graphviz


def render_graph(graph_specification: dict, render_distributions: bool = False):
    """Draw a graph specification (from :func:`generate_graph_specification`) as a
    ``graphviz.Digraph``: latent sites as white ellipses, observed ones grey,
    sometimes-observed ones half grey, deterministic sites dashed, params as plain
    labels, plates as labelled boxes; with ``render_distributions`` a legend lists
    each site's distribution (and each param's constraint)."""
    graphviz = _import_graphviz()
    plate_groups = graph_specification["plate_groups"]
    plate_data = dict(graph_specification["plate_data"])
    node_data = graph_specification["node_data"]

    graph = graphviz.Digraph()
    boxes = {None: graph}
    for plate in plate_groups:
        if plate is not None:
            box = graphviz.Digraph(name=f"cluster_{plate}")
            box.attr(label=plate.split("__CLONE")[0], labeljust="r", labelloc="b")
            boxes[plate] = box
    fill = {False: "white", True: "gray", None: "gray:white"}
    for plate, nodes in plate_groups.items():
        for n in nodes:
            data = node_data[n]
            is_param = not data["distribution"]
            boxes[plate].node(
                n,
                label=n.replace("$params", "") if is_param else n,
                shape="plain" if is_param else "ellipse",
                style="filled,dashed" if data["distribution"] == "Deterministic" else "filled",
                fillcolor=fill[data["is_observed"]],
            )
    # nest boxes innermost first: a box is added to its parent once it has no children
    while plate_data:
        for plate, data in plate_data.items():
            if not any(d["parent"] == plate for d in plate_data.values()):
                boxes[data["parent"]].subgraph(boxes[plate])
                del plate_data[plate]
                break
    for source, target in graph_specification["edge_list"]:
        graph.edge(source, target)
    if render_distributions:
        lines = []
        for n, data in node_data.items():
            if data["distribution"]:
                lines.append(f"{n} ~ {data['distribution']}\\l")
            if data.get("constraint"):
                lines.append(f"{n} : {data['constraint']}\\l")
        graph.node("distribution_description_node", label="".join(lines), shape="plaintext")
    return graph


def render_model(
    model: Callable,
    model_args: Optional[Union[tuple, List[tuple]]] = None,
    model_kwargs: Optional[Union[dict, List[dict]]] = None,
    filename: Optional[str] = None,
    render_distributions: bool = False,
    render_params: bool = False,
    render_deterministic: bool = False,
):
    """Draw a model's graph with graphviz: its sample sites (and, with
    ``render_params``, params) as nodes, plates as boxes and direct dependencies
    (found from provenance) as edges.

    :param model_args: the model's positional arguments, or a list of them to merge
        the graphs of several runs (e.g. a semi-supervised model seen with and
        without observations: sites observed in some runs are drawn half grey).
    :param model_kwargs: keyword arguments, or a list of them (as ``model_args``).
    :param str filename: if given, also write the drawing to this file; the format
        comes from the suffix (``.png``, ``.pdf``, ``.svg``, ...).
    :param bool render_distributions: add a legend of each site's distribution.
    :param bool render_params: draw params and their edges.
    :param bool render_deterministic: draw deterministic sites as nodes.
    :return: a ``graphviz.Digraph`` (displays itself in Jupyter).
    :raises ImportError: with an install hint when graphviz is not installed.
    """
    _import_graphviz()  # fail early, before running the model
    if isinstance(model_args, list) or isinstance(model_kwargs, list):
        if not isinstance(model_args, list):
            model_args = [model_args] * len(model_kwargs)
        if not isinstance(model_kwargs, list):
            model_kwargs = [model_kwargs] * len(model_args)
        if len(model_args) != len(model_kwargs):
            raise ValueError(
                f"render_model: {len(model_args)} model_args but {len(model_kwargs)} "
                "model_kwargs; give lists of the same length"
            )
        runs = list(zip(model_args, model_kwargs))
    else:
        runs = [(model_args, model_kwargs)]
    specs = [
        generate_graph_specification(
            get_model_relations(model, a, k, include_deterministic=render_deterministic),
            render_params=render_params,
        )
        for a, k in runs
    ]
    graph = render_graph(deep_merge(specs), render_distributions=render_distributions)
    if filename is not None:
        fmt = Path(filename).suffix[1:] or "pdf"
        graph.render(os.path.splitext(filename)[0], view=False, cleanup=True, format=fmt)
    return graph
