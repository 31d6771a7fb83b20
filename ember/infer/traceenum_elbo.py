"""TraceEnum_ELBO: an ELBO that sums discrete latent variables out exactly.

Model sites marked for parallel enumeration are summed out of the model's
joint density by tensor variable elimination (:mod:`ember.ops.contract`, with
the factors of :mod:`ember.infer.enum_factors`); guide sites marked for
enumeration are averaged over exactly, weighting each value by its guide
probability (sites with ``num_samples`` are averaged over that many draws);
sites marked ``"sequential"`` are enumerated by re-running the program once
per value of their support, all elements of a batched site taking the same
value in a run; every other guide latent is sampled (Monte Carlo), as in
:class:`~ember.infer.trace_elbo.Trace_ELBO`.

Gradients of sampled, non-reparameterized guide sites come from score-function
terms: each plate element's score is weighted by the costs of its own element
(of every site in those plates or inside them), never by other elements' costs
nor by costs outside its plates, which, as TraceEnum_ELBO assumes of every
program, cannot depend on it. The estimator is unbiased and its variance does
not grow with the plate size.
Masked plate elements contribute nothing: the factor of an enumerated site
itself is not masked (summed over its values it is one), the sites that
depend on it are.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Callable, Dict, List, NamedTuple, Tuple

import torch

import ember.distributions as dist
from ember import poutine
from ember.distributions.util import is_identically_zero
from ember.infer.elbo import ELBO, ParticleEstimate
from ember.infer.enum_choice import choose_enumerated, chosen_value
from ember.infer.enum_factors import (
    is_enumerated,
    model_log_factors,
    monte_carlo_weight,
    pack_log_prob,
    plate_frames,
    site_log_factor,
    site_log_prob,
    site_ordinal,
)
from ember.infer.util import VECTORIZED_PARTICLES_PLATE, check_model_guide_match
from ember.ops.contract import (
    IntractableError,
    LogFactor,
    ancestral_marginal,
    contract_tree,
    total,
)
from ember.ops.einsum import align_dims
from ember.poutine.enum_messenger import EnumMessenger
from ember.poutine.guide import drop_model_observations
from ember.poutine.replay_messenger import ReplayMessenger
from ember.poutine.subsample_messenger import site_is_subsample
from ember.poutine.trace_messenger import TraceMessenger, trace_run
from ember.util import is_validation_enabled

__all__ = ["JitTraceEnum_ELBO", "TraceEnum_ELBO", "check_traceenum_requirements"]


class _NewSequentialSite(Exception):
    """A run reached a ``"sequential"`` site it has no value for: it stops there, and
    one run per value of the site's support takes its place. ``partial`` is the
    trace of the run up to the site."""

    def __init__(self, name: str, size: int):
        super().__init__(name, size)
        self.name = name
        self.size = size
        self.partial = None


class _SequentialChoices:
    """Fix each ``"sequential"`` site to one value of its support, the same for all its
    batch elements: ``fixed`` gives the index of each site the run has a value for; at
    any other, the run stops (:class:`_NewSequentialSite`). The sites drawn at random
    before a sequential site keep, in ``replayed``, the values the run that stopped
    there drew: the runs for its values share them."""

    def __init__(self, fixed: Dict[str, int], replayed: Dict[str, torch.Tensor]):
        self.fixed = fixed
        self.replayed = replayed

    def choose(self, msg) -> None:
        if msg["is_observed"] or msg["value"] is not None:
            return
        if self.replayed:
            value = self.replayed.get(msg["name"])
            if value is not None:
                msg["value"] = value
                msg["done"] = True
                return
        infer = msg["infer"] or {}
        if infer.get("enumerate") != "sequential":
            return
        fn, name = msg["fn"], msg["name"]
        if not getattr(fn, "has_enumerate_support", False):
            raise ValueError(
                f"site {name!r} is marked for sequential enumeration but its distribution "
                f"{type(fn).__name__} has no enumerable support; remove "
                "infer={'enumerate': 'sequential'} or use a discrete distribution"
            )
        support = fn.enumerate_support(expand=infer.get("expand", False))
        index = self.fixed.get(name)
        if index is None:
            raise _NewSequentialSite(name, support.shape[0])
        msg["value"] = support[index]
        msg["done"] = True
        infer = dict(infer)
        infer["_enum_total"] = support.shape[0]
        msg["infer"] = infer


class _EnumRun(EnumMessenger):
    """One handler for a run of TraceEnum_ELBO: replay the guide's values (model
    runs only), fix sequential sites to their branch's values, enumerate parallel
    sites, in that order (as ``enum(sequential(replay(fn)))`` would)."""

    def __init__(self, first_available_dim, reserved, choices, replay_trace=None):
        super().__init__(first_available_dim=first_available_dim, reserved=reserved)
        self.choices = choices
        self.replay = None if replay_trace is None else ReplayMessenger(trace=replay_trace)

    def _pyro_sample(self, msg) -> None:
        if self.replay is not None:
            self.replay._pyro_sample(msg)
        self.choices.choose(msg)
        EnumMessenger._pyro_sample(self, msg)


def _run_traced(fn, handler, args, kwargs):
    """Trace ``fn(*args, **kwargs)`` under ``handler``.

    The plates' subsample sites stay in the trace (a model replayed against a
    guide trace must draw the guide's subsample); the factors skip them.
    """

    msngr = TraceMessenger()
    try:
        return trace_run(fn, args, kwargs, inner=handler, msngr=msngr)
    except _NewSequentialSite as site:
        site.partial = msngr.trace
        raise


def _iter_branches(run):
    """Run ``run(fixed, replayed)`` once per joint value of the sequential sites it reaches.

    Yields ``(result, fixed)``; ``fixed`` gives the support index of every
    sequential site of that run. A run that reaches a sequential site not in
    ``fixed`` stops there and is replaced by one run per value of the site, the
    last value first, each replaying the random draws made before the site (the
    order and draws of Pyro's queue).
    """
    queue: List[tuple] = [({}, {})]
    while queue:
        fixed, replayed = queue.pop()
        try:
            result = run(fixed, replayed)
        except _NewSequentialSite as site:
            draws = dict(replayed)
            draws.update(_random_draws(site.partial))
            queue.extend((dict(fixed, **{site.name: i}), draws) for i in range(site.size))
            continue
        yield result, fixed


def _random_draws(trace) -> Dict[str, torch.Tensor]:
    """The values of the sample sites of ``trace`` drawn at random (not observed, not
    enumerated)."""
    draws = {}
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        infer = site["infer"] or {}
        if "_enumerate_dim" not in infer and "_enum_total" not in infer:
            draws[name] = site["value"]
    return draws


def _plus(acc, value):
    return value if acc is None else acc + value


def _union_dims(*dim_lists) -> tuple:
    dims: List = []
    for ds in dim_lists:
        dims.extend(d for d in ds if d not in dims)
    return tuple(dims)


# ------------------------------------------------------------------ the guide's terms
class _GuideTerms(NamedTuple):
    """The terms of one guide run that the ELBO's costs are averaged with.

    * ``measure``: each enumerated site's log-probabilities over its values (a
      normalized conditional; for Monte Carlo sites, the draws' weights);
    * ``costs``: each latent site's ``log q`` (masked and scaled);
    * ``scores``: the score functions of sampled, non-reparameterized sites;
    * ``weights``: each sequentially enumerated site's ``log q`` of the run's
      value for each plate element, with the size of its support.
    """

    measure: Dict[str, LogFactor]
    costs: List[LogFactor]
    scores: List[LogFactor]
    weights: List[Tuple[LogFactor, int]]


def _guide_terms(guide_trace, max_plate_nesting: int) -> _GuideTerms:
    measure: Dict[str, LogFactor] = {}
    costs: List[LogFactor] = []
    scores: List[LogFactor] = []
    weights: List[Tuple[LogFactor, int]] = []
    for s in guide_trace.nodes.values():
        # (observed guide sites, e.g. a factor, enter log q like latent ones)
        if s["type"] != "sample" or site_is_subsample(s):
            continue
        infer = s["infer"] or {}
        fn = s["fn"]
        if is_enumerated(s):
            log_prob = site_log_prob(s)
            num_samples = infer.get("_enum_num_samples")
            if num_samples is not None:
                log_weight = monte_carlo_weight(log_prob, num_samples, bool(fn.has_rsample))
            else:
                log_weight = log_prob
            tensor, dims, ordinal = pack_log_prob(s, log_weight, max_plate_nesting)
            measure[s["name"]] = LogFactor(tensor, dims, ordinal, s["name"])
            costs.append(site_log_factor(s, max_plate_nesting, log_prob))
        elif "_enum_total" in infer:  # sequential: this run's value for all elements
            log_prob = site_log_prob(s)
            tensor, dims, ordinal = pack_log_prob(s, log_prob, max_plate_nesting)
            weights.append((LogFactor(tensor, dims, ordinal, s["name"]), infer["_enum_total"]))
            costs.append(site_log_factor(s, max_plate_nesting, log_prob))
        elif type(fn) is dist.Delta:
            costs.append(site_log_factor(s, max_plate_nesting))
        else:
            # the cost is log q itself (its direct dependence on the parameters is part
            # of the gradient); a non-reparameterized draw adds its score function
            log_prob, score, _ = fn.score_parts(s["value"])
            costs.append(site_log_factor(s, max_plate_nesting, log_prob))
            if not is_identically_zero(score):
                scores.append(site_log_factor(s, max_plate_nesting, score, scale=False))
    enumerated = set(measure)
    for f, _ in weights:
        if enumerated.intersection(f.dims):
            raise ValueError(
                f"guide site {f.name!r} is enumerated sequentially and depends on guide sites "
                f"{sorted(enumerated.intersection(f.dims))} enumerated in parallel; enumerate "
                "them the same way"
            )
    return _GuideTerms(measure, costs, scores, weights)


class _Averager:
    """Expected values of costs under one guide run: the enumerated sites' exact
    marginals, the sequential sites' weights and the sampled sites' score terms."""

    def __init__(self, terms: _GuideTerms):
        self.measure = terms.measure
        self.guide_ordinals = {name: f.ordinal for name, f in terms.measure.items()}
        self.scores = terms.scores
        self.weights = terms.weights
        self.marginals: Dict[tuple, LogFactor] = {}
        self.by_ordinal: Dict[frozenset, tuple] = {}

    def _marginal(self, targets, ordinal) -> LogFactor:
        key = (frozenset(targets), ordinal)
        m = self.marginals.get(key)
        if m is None:
            m = self.marginals[key] = ancestral_marginal(self.measure, targets, ordinal)
        return m

    def _upstream(self, ordinal):
        """``(score, log_weight, log_denominator)`` for costs in plates ``ordinal``.

        ``score``: the summed score functions of sampled sites in plates within
        ``ordinal`` (each element's own, for each value of the enumerated sites it
        was drawn given), as ``(tensor, dims)`` or None;
        ``log_weight``: the summed log-probabilities of the sequential sites' run
        values in plates within ``ordinal``, likewise; ``log_denominator``: the
        log support sizes of the other sequential sites (their runs each count once).
        """
        found = self.by_ordinal.get(ordinal)
        if found is None:
            score = _sum_factors([f for f in self.scores if f.ordinal <= ordinal])
            log_weight = _sum_factors([f for f, _ in self.weights if f.ordinal <= ordinal])
            denom = sum(math.log(k) for f, k in self.weights if not f.ordinal <= ordinal)
            found = self.by_ordinal[ordinal] = (score, log_weight, denom)
        return found

    def expect(self, cost: LogFactor):
        """``(value, surrogate_value)``: the expected plate-summed cost, and the same for
        a surrogate whose gradient is the value's (the same tensor when they coincide)."""
        targets = [d for d in cost.dims if d in self.guide_ordinals]
        if not self.scores and not self.weights:
            value = self._expect_simple(cost, targets)
            return value, value
        score, log_weight, denom = self._upstream(cost.ordinal)
        if score is not None:  # sampled sites drawn once per value of an enumerated site
            targets += [d for d in score[1] if d in self.guide_ordinals and d not in targets]
        parts = []  # (tensor, dims) of the factors multiplying the cost
        if targets:
            m = self._marginal(targets, cost.ordinal)
            parts.append((m.tensor.exp(), m.dims))
        if log_weight is not None:
            parts.append((log_weight[0].exp(), log_weight[1]))
        dims = _union_dims(cost.dims, *(d for _, d in parts), *([score[1]] if score else []))
        weight = None
        for t, d in parts:
            aligned = align_dims(t, d, dims)
            weight = aligned if weight is None else weight * aligned
        value_t = align_dims(cost.tensor, cost.dims, dims)
        surrogate_t = value_t
        if score is not None:
            s = align_dims(score[0], score[1], dims)
            surrogate_t = surrogate_t + (s - s.detach()) * value_t.detach()
        if weight is not None:
            # values of probability zero add nothing, even where their cost is infinite
            possible = weight > 0
            value_t = torch.where(possible, value_t, 0.0)
            surrogate_t = torch.where(possible, surrogate_t, 0.0)
            value_t, surrogate_t = weight * value_t, weight * surrogate_t
        value, surrogate_value = value_t.sum(), surrogate_t.sum()
        scale = cost.scale
        if denom:
            scale = scale * math.exp(-denom)
        if not (isinstance(scale, (int, float)) and scale == 1):
            value, surrogate_value = value * scale, surrogate_value * scale
        return value, surrogate_value

    def _expect_simple(self, cost: LogFactor, targets) -> torch.Tensor:
        """The expected plate-summed value of ``cost`` under the enumerated guide sites."""
        scale = cost.scale
        if not targets:
            value = cost.tensor.sum() if cost.tensor.dim() else cost.tensor
        else:
            m = self._marginal(targets, cost.ordinal)
            dims = list(m.dims) + [d for d in cost.dims if d not in m.dims]
            probs = align_dims(m.tensor.exp(), m.dims, dims)
            # values of probability zero add nothing, even where their cost is infinite
            values = torch.where(probs > 0, align_dims(cost.tensor, cost.dims, dims), 0.0)
            value = (probs * values).sum()
        if not (isinstance(scale, (int, float)) and scale == 1):
            value = value * scale  # a number or a one-element tensor: scale the sum
        return value


def _sum_factors(factors: List[LogFactor]):
    """``(tensor, dims)``: the sum of ``factors`` over the union of their dims, or None."""
    if not factors:
        return None
    if len(factors) == 1:
        return factors[0].tensor, factors[0].dims
    dims = _union_dims(*(f.dims for f in factors))
    summed = None
    for f in factors:
        summed = _plus(summed, align_dims(f.tensor, f.dims, dims))
    return summed, dims


# ------------------------------------------------------------------ the model's costs
def _sequential_model_factors(branches, kept, max_plate_nesting: int):
    """The model's factors when some of its sites are enumerated by re-running it.

    ``branches`` are ``(model_trace, indices)`` for every joint value of the
    sequential sites (``indices`` their support indices). Each factor that may
    depend on a sequential site (it comes after the site, in the site's plates
    or more) gets one dim per such site, along which the runs' values of the
    factor are stacked; the sequential sites then become variables summed out
    like the ones enumerated in parallel.
    """
    first_trace, first_indices = branches[0]
    seq_names = [n for n, s in first_trace.nodes.items() if n in first_indices]
    by_indices = {}
    for trace, indices in branches:
        if set(indices) != set(seq_names):
            raise ValueError(
                "TraceEnum_ELBO: the model's sequentially enumerated sites change from one run "
                f"to the next ({sorted(seq_names)} vs {sorted(indices)}); sequential "
                "enumeration needs the same sites in every run"
            )
        by_indices[tuple(indices[n] for n in seq_names)] = trace
    sizes = {n: s["infer"]["_enum_total"] for n, s in first_trace.nodes.items() if n in seq_names}
    per_run = {}
    for key, trace in by_indices.items():
        sites = [
            s for s in trace.nodes.values() if s["type"] == "sample" and not site_is_subsample(s)
        ]
        per_run[key] = (sites, model_log_factors(trace, max_plate_nesting, kept, sites, seq_names))
    first_sites, first = per_run[tuple(0 for _ in seq_names)]
    var_ordinals = dict(first.var_ordinals)
    seq_ordinal = {}
    position = {}
    for i, site in enumerate(first_sites):
        position[site["name"]] = i
        if site["name"] in sizes:
            seq_ordinal[site["name"]] = var_ordinals[site["name"]] = site_ordinal(site)
    factors = []
    for i, f in enumerate(first.factors):
        deps = [n for n in seq_names if seq_ordinal[n] <= f.ordinal and position[n] <= i]
        if not deps:
            factors.append(f)
            continue
        for g, g_ordinal in kept.items():
            coupled = [n for n in deps if g in f.dims and not g_ordinal <= seq_ordinal[n]]
            if coupled:
                plates = ", ".join(repr(p) for p in sorted(map(str, g_ordinal)))
                raise ValueError(
                    f"guide site {g!r} is enumerated in parallel inside plate(s) {plates} "
                    f"while model site(s) {coupled} are enumerated sequentially: the model's "
                    "sum over the sequential values would couple every element of the plate. "
                    f"Enumerate {coupled} in parallel (infer={{'enumerate': 'parallel'}}), or "
                    "enumerate the guide site sequentially"
                )
        runs = []
        for combo in itertools.product(*(range(sizes[n]) for n in deps)):
            choice = dict(zip(deps, combo))
            key = tuple(choice.get(n, 0) for n in seq_names)
            runs.append(per_run[key][1].factors[i])
        dims = _union_dims(*(r.dims for r in runs))
        shape = torch.broadcast_shapes(*(align_dims(r.tensor, r.dims, dims).shape for r in runs))
        stacked = torch.stack([align_dims(r.tensor, r.dims, dims).expand(shape) for r in runs])
        stacked = stacked.reshape(tuple(sizes[n] for n in deps) + tuple(shape))
        factors.append(LogFactor(stacked, tuple(deps) + dims, f.ordinal, f.name, f.scale))
    return factors, var_ordinals, frozenset(first.sum_vars)


def _signed_sum(plus: List[torch.Tensor], minus: List[torch.Tensor]) -> torch.Tensor:
    """``sum(plus) - sum(minus)`` with few autograd nodes: one stack and one dot product."""
    terms = plus + minus
    first = terms[0]
    if len(terms) > 2 and all(t.shape == first.shape and t.dtype == first.dtype for t in terms):
        key = (len(plus), len(minus), first.dtype, first.device)
        signs = _SIGNS.get(key)
        if signs is None:
            signs = torch.tensor([1.0] * len(plus) + [-1.0] * len(minus), dtype=first.dtype)
            if len(_SIGNS) >= 256:
                _SIGNS.clear()
            signs = _SIGNS.setdefault(key, signs.to(first.device))
        stacked = torch.stack(terms)
        if first.dim() == 0:
            return torch.dot(signs, stacked)
        return torch.tensordot(signs, stacked, 1)
    value = None
    for t in plus:
        value = t if value is None else value + t
    for t in minus:
        value = -t if value is None else value - t
    return value


_SIGNS: Dict[tuple, torch.Tensor] = {}


class TraceEnum_ELBO(ELBO):
    """An ELBO that sums out enumerated discrete latent variables exactly.

    Mark discrete sites with ``infer={"enumerate": "parallel"}`` (or use
    :func:`~ember.infer.enum.config_enumerate`). Model sites that the guide does
    not sample are summed out of the model's likelihood; guide sites are averaged
    over exactly under the guide (with ``num_samples``, over that many draws).
    Enumerated sites get tensor dims to the left of ``max_plate_nesting``, which
    must therefore count every plate of model and guide. ``"sequential"`` sites
    are enumerated by re-running the program once per value (all elements of a
    batched site take the same value in a run; exact when they are
    conditionally independent, as in a plate).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer import TraceEnum_ELBO, config_enumerate
        >>> data = torch.tensor([0.0, 5.0, 5.2])
        >>> locs = torch.tensor([0.0, 5.0])
        >>> @config_enumerate
        ... def model():
        ...     with ember.plate("data", 3):
        ...         z = ember.sample("z", dist.Categorical(torch.tensor([0.5, 0.5])))
        ...         ember.sample("x", dist.Normal(locs[z], 1.0), obs=data)
        >>> def guide():
        ...     pass
        >>> loss = TraceEnum_ELBO(max_plate_nesting=1).loss(model, guide)
        >>> components = dist.Normal(locs, 1.0).log_prob(data[:, None]) + torch.tensor(0.5).log()
        >>> exact = torch.logsumexp(components, -1).sum()
        >>> abs(loss + exact.item()) < 1e-4
        True
    """

    # ------------------------------------------------------------ traces
    def _guide_branches(self, guide, args, kwargs, max_plate_nesting, traces=None):
        """``(guide_trace, indices)`` for each joint value of the guide's sequential sites."""
        first = -1 - max_plate_nesting

        def run(fixed, replayed):
            handler = _EnumRun(first, None, _SequentialChoices(fixed, replayed))
            trace = _run_traced(guide, handler, args, kwargs)
            drop_model_observations(guide, trace)
            if traces is not None:
                traces.append(trace)
            return trace

        return _iter_branches(run)

    def _model_branches(self, model, guide_trace, args, kwargs, max_plate_nesting, traces=None):
        """``(model_trace, indices)`` for each joint value of the model's sequential sites."""
        reserved = {
            name: site["infer"]["_enumerate_dim"]
            for name, site in guide_trace.nodes.items()
            if site["type"] == "sample" and is_enumerated(site)
        }
        first = min(list(reserved.values()) + [-max_plate_nesting]) - 1

        def run(fixed, replayed):
            choices = _SequentialChoices(fixed, replayed)
            handler = _EnumRun(first, reserved, choices, replay_trace=guide_trace)
            trace = _run_traced(model, handler, args, kwargs)
            if traces is not None:
                traces.append(trace)
            return trace

        return _iter_branches(run)

    # ------------------------------------------------------------ one particle
    def _particle(self, model, guide, args, kwargs, max_plate_nesting, particles=None, traces=None):
        """``(elbo, surrogate_elbo, enumerated_anything)`` for one particle.

        With vectorized particles (``particles`` names their plate) the values are
        summed over the particles; each score-function term only sees the costs
        of its own particle, as of its own element of any other plate.
        """
        elbo = surrogate = None
        found_enum = False
        for guide_trace, _ in self._guide_branches(guide, args, kwargs, max_plate_nesting, traces):
            terms = _guide_terms(guide_trace, max_plate_nesting)
            found_enum = found_enum or bool(terms.measure) or bool(terms.weights)
            averager = _Averager(terms)
            costs, model_enumerated = self._model_costs(
                model, guide_trace, averager.guide_ordinals, args, kwargs, max_plate_nesting, traces
            )
            found_enum = found_enum or model_enumerated
            # elbo = sum of model terms - sum of guide terms
            plus, plus_surrogate = [], []
            for cost in costs:
                value, value_surrogate = averager.expect(cost)
                plus.append(value)
                plus_surrogate.append(value_surrogate)
            minus, minus_surrogate = [], []
            for cost in terms.costs:
                value, value_surrogate = averager.expect(cost)
                minus.append(value)
                minus_surrogate.append(value_surrogate)
            if not (plus or minus):  # no latent or observed sites: nothing to estimate
                plus = plus_surrogate = [torch.zeros(())]
            value = _signed_sum(plus, minus)
            if all(a is b for a, b in zip(plus + minus, plus_surrogate + minus_surrogate)):
                branch_surrogate = value
            else:
                branch_surrogate = _signed_sum(plus_surrogate, minus_surrogate)
            elbo = _plus(elbo, value)
            surrogate = branch_surrogate if surrogate is None else surrogate + branch_surrogate
        return elbo, surrogate, found_enum

    def _model_costs(
        self, model, guide_trace, guide_ordinals, args, kwargs, max_plate_nesting, traces=None
    ):
        """``(costs, enumerated)``: the model's log-density as factors over the guide's
        enumerated sites (the model's own enumerated sites summed out), and whether
        the model enumerated anything."""
        branches = []
        guide_enumerates = bool(guide_ordinals) or any(
            "_enum_total" in (site["infer"] or {})
            for site in guide_trace.nodes.values()
            if site["type"] == "sample"
        )
        for model_trace, indices in self._model_branches(
            model, guide_trace, args, kwargs, max_plate_nesting, traces
        ):
            if is_validation_enabled():
                check_model_guide_match(model_trace, guide_trace, max_plate_nesting)
                if guide_enumerates:
                    check_traceenum_requirements(model_trace, guide_trace)
            branches.append((model_trace, indices))
        if len(branches) == 1 and not branches[0][1]:
            factors, var_ordinals, sum_vars = model_log_factors(
                branches[0][0], max_plate_nesting, guide_ordinals
            )
        else:
            factors, var_ordinals, sum_vars = _sequential_model_factors(
                branches, guide_ordinals, max_plate_nesting
            )
        try:
            costs = contract_tree(factors, var_ordinals, sum_vars)
        except IntractableError as e:
            if e.blocker not in guide_ordinals:
                raise
            plates = sorted(map(str, guide_ordinals[e.blocker] - var_ordinals[e.variable]))
            raise IntractableError(
                "Expected model enumeration to be no more global than guide enumeration, but "
                f"found model enumeration site {e.variable!r} upstream of guide site "
                f"{e.blocker!r} in plate(s) {plates}: the model's sum over {e.variable!r} "
                f"would couple every element of the plate. Enumerate {e.variable!r} in the "
                f"guide too, or {e.blocker!r} in the model",
                variable=e.variable,
                blocker=e.blocker,
            ) from e
        return costs, bool(sum_vars)

    # ------------------------------------------------------------ marginals
    def _enumerated_model_trace(self, method: str, model, guide, args, kwargs):
        """``(model_trace, guide_trace, max_plate_nesting)`` of one run for ``method``
        (compute_marginals or sample_posterior), which need one particle, no guide
        enumeration and no sequential enumeration in the model."""
        if self.num_particles != 1:
            raise MarginalsNotImplementedError(
                f"TraceEnum_ELBO.{method}() is not compatible with multiple particles "
                f"(num_particles={self.num_particles}); use num_particles=1"
            )
        if self.max_plate_nesting == math.inf:
            self._guess_max_plate_nesting(model, guide, args, kwargs)
        max_plate_nesting = int(self.max_plate_nesting)
        guide_trace, _ = next(iter(self._guide_branches(guide, args, kwargs, max_plate_nesting)))
        for site in guide_trace.nodes.values():
            if site["type"] == "sample" and (
                is_enumerated(site) or "_enum_total" in (site["infer"] or {})
            ):
                raise MarginalsNotImplementedError(
                    f"TraceEnum_ELBO.{method}() is not compatible with guide enumeration: "
                    f"guide site {site['name']!r} is enumerated; only sites the model "
                    "enumerates are handled"
                )
        branches = self._model_branches(model, guide_trace, args, kwargs, max_plate_nesting)
        model_trace, indices = next(iter(branches))
        if indices:
            raise MarginalsNotImplementedError(
                f"TraceEnum_ELBO.{method}() is not compatible with sequential enumeration: "
                f"model site(s) {sorted(indices)} are enumerated sequentially; enumerate them "
                "in parallel"
            )
        return model_trace, guide_trace, max_plate_nesting

    @staticmethod
    def _posterior_probs(model_trace, factors, var_ordinals, sum_vars, names):
        """``{name: (site, frames, probs)}``: the exact posterior probabilities of each
        enumerated site in ``names``, over its plates' elements (``frames``, by dim)
        and its values (last dim). They are the gradients of the log-normalizer with
        respect to a zero factor added at the site."""
        probes = {}
        with torch.enable_grad():
            factors = [f._replace(tensor=f.tensor.detach()) for f in factors]
            for f in list(factors):
                if f.name not in names:
                    continue
                site = model_trace.nodes[f.name]
                frames = sorted(plate_frames(site), key=lambda fr: fr.dim)
                size = dict(zip(f.dims, f.tensor.shape))[f.name]
                probe = f.tensor.new_zeros([fr.size for fr in frames] + [size], requires_grad=True)
                probes[f.name] = (site, frames, probe, f.scale)
                dims = tuple(fr.name for fr in frames) + (f.name,)
                factors.append(LogFactor(probe, dims, f.ordinal, f.name, f.scale))
            if not probes:
                return {}
            log_z = total(contract_tree(factors, var_ordinals, sum_vars))
            grads = torch.autograd.grad(log_z, [p for _, _, p, _ in probes.values()])
        out = {}
        for (name, (site, frames, _, scale)), grad in zip(probes.items(), grads):
            probs = grad / scale if not (isinstance(scale, float) and scale == 1.0) else grad
            out[name] = (site, frames, probs)
        return out

    def compute_marginals(self, model: Callable, guide: Callable, *args, **kwargs) -> Dict:
        """Posterior marginals of the model's enumerated sites, given the data.

        Runs the guide once, replays the model against it and returns a dict
        from each model site enumerated in parallel to its exact posterior
        marginal (a distribution of the site's type, e.g. Categorical or
        Bernoulli, with logits), batched over the site's plates. The guide must
        not enumerate sites, and there must be one particle.

        Example::

            >>> import torch, ember, ember.distributions as dist
            >>> from ember.infer import TraceEnum_ELBO, config_enumerate
            >>> @config_enumerate
            ... def model():
            ...     z = ember.sample("z", dist.Bernoulli(0.5))
            ...     ember.sample("x", dist.Normal(3.0 * z, 1.0), obs=torch.tensor(3.0))
            >>> m = TraceEnum_ELBO(max_plate_nesting=0).compute_marginals(model, lambda: None)
            >>> round(m["z"].probs.item(), 3)
            0.989
        """
        model_trace, _, max_plate_nesting = self._enumerated_model_trace(
            "compute_marginals", model, guide, args, kwargs
        )
        factors, var_ordinals, sum_vars = model_log_factors(model_trace, max_plate_nesting)
        found = self._posterior_probs(model_trace, factors, var_ordinals, sum_vars, sum_vars)
        marginals = {}
        for name, (site, frames, probs) in found.items():
            probs = probs.reshape(_plate_shape(frames) + [probs.shape[-1]])
            marginals[name] = _marginal_distribution(site, probs)
        return marginals

    def sample_posterior(self, model: Callable, guide: Callable, *args, **kwargs):
        """Run the model once with its enumerated sites drawn from their joint posterior.

        The guide runs once; the model's sites enumerated in parallel are then
        drawn jointly from their exact posterior given the data (variable
        elimination with back-tracking, :func:`~ember.infer.enum_choice.choose_enumerated`),
        and the model is replayed with those values (and the guide's).
        Returns what the model returns. The guide must not enumerate sites, and
        there must be one particle.

        Example::

            >>> import torch, ember, ember.distributions as dist
            >>> from ember.infer import TraceEnum_ELBO, config_enumerate
            >>> @config_enumerate
            ... def model():
            ...     z = ember.sample("z", dist.Bernoulli(0.5))
            ...     ember.sample("x", dist.Normal(20.0 * z, 1.0), obs=torch.tensor(20.0))
            ...     return z
            >>> TraceEnum_ELBO(max_plate_nesting=0).sample_posterior(model, lambda: None)
            tensor(1.)
        """
        with poutine.block():
            model_trace, guide_trace, max_plate_nesting = self._enumerated_model_trace(
                "sample_posterior", model, guide, args, kwargs
            )
        factors, var_ordinals, sum_vars = model_log_factors(model_trace, max_plate_nesting)
        replayed = poutine.Trace()
        for name, site in guide_trace.nodes.items():
            if site["type"] == "sample" and not site["is_observed"]:
                replayed.add_node(name, **site)
        with torch.no_grad():
            # a scale weighs terms of the loss, not the posterior given the data
            factors = [f._replace(scale=1.0) for f in factors]
            chosen = choose_enumerated(factors, {v: var_ordinals[v] for v in sum_vars})
        for name, (index, index_dims) in chosen.items():
            value = chosen_value(model_trace.nodes[name], index, index_dims)
            replayed.add_node(
                name, type="sample", name=name, value=value, is_observed=False, infer={}
            )
        return poutine.replay(model, trace=replayed)(*args, **kwargs)

    # ------------------------------------------------------------ interface
    def particle_elbo(self, model, guide, args, kwargs, particle_dim) -> ParticleEstimate:
        if self.max_plate_nesting == math.inf:
            self._guess_max_plate_nesting(model, guide, args, kwargs)
        max_plate_nesting = int(self.max_plate_nesting)
        particles = None
        if particle_dim is not None:  # model and guide already run in the particles' plate
            max_plate_nesting += 1
            particles = VECTORIZED_PARTICLES_PLATE
        traces = []
        elbo, surrogate_elbo, found_enum = self._particle(
            model, guide, args, kwargs, max_plate_nesting, particles, traces
        )
        if (
            self.strict_enumeration_warning
            and not found_enum
            and is_validation_enabled()
            and not _configured_for_enumeration(traces)
        ):
            warnings.warn(
                "TraceEnum_ELBO found no sample sites configured for enumeration; mark discrete "
                "sites with infer={'enumerate': 'parallel'} or use config_enumerate, or use "
                "Trace_ELBO",
                UserWarning,
                stacklevel=4,
            )
        if particles is not None:  # summed over the particles: their average
            n = self.num_particles
            if surrogate_elbo is elbo:
                elbo = surrogate_elbo = elbo / n
            else:
                elbo, surrogate_elbo = elbo / n, surrogate_elbo / n
        return ParticleEstimate(elbo, surrogate_elbo, traces)


def check_traceenum_requirements(model_trace, guide_trace) -> None:
    """Warn (``RuntimeWarning``) where a site may depend on a guide-enumerated site in a plate
    it is not in.

    TraceEnum_ELBO enumerates a site in a plate once for all the plate's
    elements together (a synchronized product, not a full cartesian product),
    which is exact only if no site outside the plate depends on it. The order of
    the sites shows when a program can easily be rewritten to be obviously
    right: a site outside an enumerated site's plates that comes *after* it is
    reported (unless a sequential plate separates them). Called by
    :class:`TraceEnum_ELBO` with validation on.

    Example::

        >>> import warnings, torch, ember, ember.distributions as dist
        >>> from ember import poutine
        >>> def guide():
        ...     with ember.plate("p", 3):
        ...         x = ember.sample("x", dist.Bernoulli(0.5), infer={"enumerate": "sequential"})
        ...     ember.sample("y", dist.Bernoulli(0.1 + 0.8 * x.mean()))
        >>> tr = poutine.trace(guide).get_trace()
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     check_traceenum_requirements(tr, tr)
        >>> "possibly invalid dependency" in str(caught[0].message)
        True
    """
    enumerated = {
        name
        for name, site in guide_trace.nodes.items()
        if site["type"] == "sample" and (site["infer"] or {}).get("enumerate")
    }
    if not enumerated:
        return
    for role, trace in (("model", model_trace), ("guide", guide_trace)):
        counters: Dict[str, Dict[str, int]] = {}  # site -> its sequential plates' counters
        contexts: Dict[frozenset, List[str]] = {}  # plate context -> enumerated sites there
        for name, site in trace.nodes.items():
            if site["type"] != "sample" or site_is_subsample(site):
                continue
            stack = site.get("cond_indep_stack") or ()
            counter = {f.name: f.counter for f in stack if not f.vectorized}
            context = frozenset(f for f in stack if f.vectorized)
            for enum_context, names in contexts.items():
                if not context < enum_context:
                    continue
                upstream = sorted(n for n in names if not _independent(counter, counters[n]))
                if upstream:
                    plates = sorted(f.name for f in enum_context - context)
                    warnings.warn(
                        f"at {role} site {name!r}, possibly invalid dependency: it is outside "
                        f"plate(s) {plates} of the enumerated site(s) {upstream} before it. "
                        f"Expected site {name!r} to precede them, to keep the plates "
                        "independent (an enumerated site takes one value for all elements of "
                        "its plates at a time)",
                        RuntimeWarning,
                        stacklevel=6,
                    )
            counters[name] = counter
            if name in enumerated:
                contexts.setdefault(context, []).append(name)


def _independent(counters1: Dict[str, int], counters2: Dict[str, int]) -> bool:
    """Whether two sites are in different iterations of a sequential plate they share."""
    return any(name in counters2 and counters2[name] != c for name, c in counters1.items())


def _plate_shape(frames) -> List[int]:
    """The batch shape of ``frames`` (sorted by dim): each plate's size at its dim."""
    width = -frames[0].dim if frames else 0
    shape = [1] * width
    for fr in frames:
        shape[width + fr.dim] = fr.size
    return shape


def _configured_for_enumeration(traces) -> bool:
    """Whether a sample site of ``traces`` asks for enumeration (``infer["enumerate"]``)."""
    return any(
        site["type"] == "sample" and (site["infer"] or {}).get("enumerate")
        for trace in traces
        for site in trace.nodes.values()
    )


class MarginalsNotImplementedError(NotImplementedError, ValueError):
    """:meth:`TraceEnum_ELBO.compute_marginals` was asked for what it does not compute
    (guide enumeration, sequential enumeration, several particles)."""


def _marginal_distribution(site, probs):
    """The marginal of ``site``, a distribution of its own type, from ``probs`` of its values."""
    fn = site["fn"]
    while isinstance(fn, (dist.MaskedDistribution, dist.ExpandedDistribution)):
        fn = fn.base_dist
    logits = probs.clamp(min=torch.finfo(probs.dtype).tiny).log()
    if isinstance(fn, torch.distributions.Bernoulli):
        return dist.Bernoulli(logits=logits[..., 1] - logits[..., 0])
    if isinstance(fn, (torch.distributions.Categorical, torch.distributions.OneHotCategorical)):
        cls = type(fn)
        if not issubclass(cls, dist.TorchDistributionMixin):
            cls = (
                dist.Categorical
                if isinstance(fn, torch.distributions.Categorical)
                else dist.OneHotCategorical
            )
        return cls(logits=logits)
    raise ValueError(
        f"compute_marginals: site {site['name']!r} has a {type(fn).__name__} distribution; "
        "marginals are available for Categorical, OneHotCategorical and Bernoulli sites"
    )


class JitTraceEnum_ELBO(TraceEnum_ELBO):
    """:class:`TraceEnum_ELBO` under Pyro's JIT name. ember runs every loss eagerly (its
    eager step costs less than a JIT-compiled step in Pyro), so this is
    :class:`TraceEnum_ELBO` with the same results; Pyro's ``ignore_jit_warnings`` and
    ``jit_options`` are accepted and have no effect.

    Example::

        >>> from ember.infer import JitTraceEnum_ELBO, TraceEnum_ELBO
        >>> isinstance(JitTraceEnum_ELBO(max_plate_nesting=1), TraceEnum_ELBO)
        True
    """
