"""TraceEnum_ELBO: an ELBO that sums discrete latent variables out exactly.

Model sites marked for parallel enumeration are summed out of the model's
joint density by tensor variable elimination (:mod:`ember.ops.contract`);
guide sites marked for enumeration are averaged over exactly, weighting each
value by its guide probability; sites marked ``"sequential"`` are enumerated by
re-running the program once per value; every other guide latent is sampled
(Monte Carlo), as in :class:`~ember.infer.trace_elbo.Trace_ELBO`.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Dict, List, Tuple

import torch

from ember import poutine
from ember.distributions.delta import Delta
from ember.distributions.util import scale_and_mask
from ember.infer.elbo import ELBO
from ember.infer.util import check_model_guide_match
from ember.ops.contract import IntractableError, LogFactor, ancestral_marginal, contract_tree
from ember.poutine.enum_messenger import EnumMessenger
from ember.poutine.replay_messenger import ReplayMessenger
from ember.poutine.trace_struct import site_is_subsample
from ember.util import is_validation_enabled

__all__ = ["TraceEnum_ELBO"]

# A sequentially enumerated site inside plates is enumerated jointly over its
# batch elements; refuse more branches than this.
MAX_SEQUENTIAL_BRANCHES = 1 << 16


class _SequentialChoices:
    """Fix the values of ``"sequential"`` sites to chosen support points."""

    def __init__(self, fixed: Dict[str, int], discovered: List[Tuple[str, int]]):
        self.fixed = fixed
        self.discovered = discovered

    def choose(self, msg) -> None:
        if msg["is_observed"] or msg["value"] is not None:
            return
        if (msg["infer"] or {}).get("enumerate") != "sequential":
            return
        fn, name = msg["fn"], msg["name"]
        if not getattr(fn, "has_enumerate_support", False):
            raise ValueError(
                f"site {name!r} is marked for sequential enumeration but its distribution "
                f"{type(fn).__name__} has no enumerable support"
            )
        support = fn.enumerate_support(expand=True)
        k = support.shape[0]
        n = math.prod(fn.batch_shape)
        branches = k**n
        if branches > MAX_SEQUENTIAL_BRANCHES:
            raise ValueError(
                f"site {name!r}: sequential enumeration of {n} batch elements with {k} values "
                f"each needs {k}**{n} runs; use infer={{'enumerate': 'parallel'}} instead"
            )
        index = self.fixed.get(name)
        if index is None:
            index = 0
            self.discovered.append((name, branches))
        digits = []
        for _ in range(n):
            index, d = divmod(index, k)
            digits.append(d)
        flat = support.reshape((k, n) + fn.event_shape)
        choice = torch.tensor(digits, device=support.device)
        value = flat[choice, torch.arange(n, device=support.device)]
        msg["value"] = value.reshape(fn.batch_shape + fn.event_shape)
        msg["done"] = True


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
    """Trace ``fn(*args, **kwargs)`` under ``handler``, without the plates' subsample sites."""

    def run(*args, **kwargs):
        with handler:
            return fn(*args, **kwargs)

    trace = poutine.trace(run).get_trace(*args, **kwargs)
    subsample = [
        name
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and site_is_subsample(site)
    ]
    for name in subsample:  # the trace is ours: prune in place
        trace.remove_node(name)
    return trace


def _iter_branches(run):
    """Run ``run(fixed, discovered)`` once per joint value of the sequential sites."""
    queue = [{}]
    while queue:
        fixed = queue.pop()
        discovered: List[Tuple[str, int]] = []
        result = run(fixed, discovered)
        prefix = dict(fixed)
        for name, branches in discovered:
            for i in range(1, branches):
                queue.append(dict(prefix, **{name: i}))
            prefix[name] = 0
        yield result


def _plate_frames(site):
    return [
        f
        for f in (site.get("cond_indep_stack") or ())
        if getattr(f, "vectorized", True) and f.dim is not None
    ]


def _fmt_frames(frames):
    return ", ".join(f"{f.name!r} (dim={f.dim}, size={f.size})" for f in frames) or "none"


def _pack(site, tensor, max_plate_nesting):
    """Squeeze ``tensor`` (a site's log-density) and name its dims.

    Returns ``(packed, dims, ordinal)``. How to pack depends only on the shape,
    the plates and the visible enumeration dims, so it is worked out once per
    such signature and cached.
    """
    stack = site.get("cond_indep_stack") or ()
    enum_dims = (site.get("infer") or {}).get("_enum_dims")
    key = (tensor.shape, stack, tuple(enum_dims.items()) if enum_dims else (), max_plate_nesting)
    try:
        plan = _PACK_PLANS.get(key)
    except TypeError:  # a custom, unhashable plate frame: plan without the cache
        key = plan = None
    if plan is None:
        plan = _pack_plan(site, tensor.shape, enum_dims or {}, max_plate_nesting)
        if key is not None:
            if len(_PACK_PLANS) >= 1024:
                _PACK_PLANS.clear()
            _PACK_PLANS[key] = plan
    sizes, expand, dims, ordinal = plan
    if sizes is not None:
        tensor = tensor.reshape(sizes)
    if expand is not None:
        tensor = tensor.expand(expand)
    return tensor, dims, ordinal


_PACK_PLANS: Dict[tuple, tuple] = {}


def _pack_plan(site, shape, enum_dims, max_plate_nesting):
    """``(reshape sizes or None, expand sizes or None, dims, ordinal)`` for :func:`_pack`."""
    frames = _plate_frames(site)
    ordinal = frozenset(f.name for f in frames)
    plate_at = {f.dim: f for f in frames}
    dims, sizes = [], []
    present = set()
    for i, size in enumerate(shape):
        pos = i - len(shape)
        if size == 1:
            continue
        if pos in plate_at:
            frame = plate_at[pos]
            if size != frame.size:
                raise ValueError(
                    f"at site {site['name']!r}: dim {pos} has size {size} but plate "
                    f"{frame.name!r} there has size {frame.size} (log_prob shape "
                    f"{tuple(shape)})"
                )
            dims.append(frame.name)
            present.add(pos)
        elif pos in enum_dims:
            dims.append(enum_dims[pos])
        elif pos >= -max_plate_nesting:
            raise ValueError(
                f"at site {site['name']!r}: batch dim {pos} of log_prob shape "
                f"{tuple(shape)} has size {size} but no plate in scope owns it (plates: "
                f"{_fmt_frames(frames)}); wrap the site in an ember.plate(..., dim={pos}) or "
                "move the dim into the event shape with .to_event()"
            )
        else:
            raise ValueError(
                f"at site {site['name']!r}: log_prob shape {tuple(shape)} uses dim {pos}, "
                f"left of max_plate_nesting={max_plate_nesting}, which is not the enumeration dim "
                "of any site it can see. Increase max_plate_nesting if the site has more plates, "
                "or raise the history of ember.markov if it depends on an older enumerated site"
            )
        sizes.append(size)
    # a plate the value does not vary along still counts each element
    missing = [f for f in frames if f.dim not in present and f.size > 1]
    expand = None
    if missing:
        expand = tuple(sizes) + tuple(f.size for f in missing)
        dims.extend(f.name for f in missing)
        sizes.extend(1 for _ in missing)
    reshape = None if tuple(sizes) == tuple(shape) else tuple(sizes)
    return reshape, expand, tuple(dims), ordinal


def _support_log_prob(fn, dim):
    """``fn.log_prob`` of its own enumerated support placed along ``dim``, without a gather.

    Returns None for distributions without this shortcut. Batch dims along which
    the parameters are only broadcast (expanded, e.g. by a plate) are computed
    once, not once per element: the result broadcasts along them instead.
    """
    if isinstance(fn, torch.distributions.Categorical):
        table = _compact_logits(fn, is_binary=False)  # batch_shape + (K,), normalized
    elif isinstance(fn, torch.distributions.Bernoulli):
        logits = _compact_logits(fn, is_binary=True)
        table = torch.stack(
            [-torch.nn.functional.softplus(logits), -torch.nn.functional.softplus(-logits)], -1
        )
    else:
        return None
    k = table.shape[-1]
    if table.numel() == k:  # no batch variation: one reshape puts K at ``dim``
        return table.reshape((k,) + (1,) * (-1 - dim))
    batch = table.dim() - 1
    width = max(batch, -dim)
    table = table.reshape((1,) * (width - batch) + table.shape)
    return table.transpose(-1, dim - 1).squeeze(-1)


def _compact_logits(fn, is_binary: bool) -> torch.Tensor:
    """``fn.logits`` with size 1 along batch dims the parameter was only expanded along."""
    logits = fn.__dict__.get("logits")
    source = logits if logits is not None else fn.probs
    batch = source.dim() - (0 if is_binary else 1)
    strides, shape = source.stride(), source.shape
    if any(strides[i] == 0 and shape[i] > 1 for i in range(batch)):
        index = tuple(
            slice(0, 1) if strides[i] == 0 and shape[i] > 1 else slice(None) for i in range(batch)
        )
        source = source[index]
    if logits is not None:
        return source
    return torch.distributions.utils.probs_to_logits(source, is_binary=is_binary)


def _own_point_log_density(fn, value):
    """For a Delta whose ``value`` is its own point (same memory), its ``log_density``.

    That is what ``fn.log_prob(value)`` returns there, without the comparison
    (except for a NaN point, which argument validation rejects: the loss is NaN
    either way). The common case is a MAP guide, whose Delta sites sample their
    own point.
    """
    v = fn.v
    if value is v or (
        isinstance(value, torch.Tensor)
        and value.shape == v.shape
        and value.dtype == v.dtype
        and value.stride() == v.stride()
        and value.data_ptr() == v.data_ptr()
        and value.device == v.device
    ):
        return fn.log_density
    return None


def _site_factor(site, max_plate_nesting, log_prob=None) -> LogFactor:
    if log_prob is None:
        fn = site["fn"]
        if type(fn) is Delta:
            log_prob = _own_point_log_density(fn, site["value"])
        else:
            infer = site["infer"]
            if infer and infer.get("_enum_support_value"):
                log_prob = _support_log_prob(fn, infer["_enumerate_dim"])
        if log_prob is None:
            log_prob = fn.log_prob(site["value"])
    mask = site.get("mask")
    if mask is not None:
        log_prob = scale_and_mask(log_prob, mask=mask)
    if not isinstance(log_prob, torch.Tensor):
        log_prob = torch.as_tensor(log_prob, dtype=torch.get_default_dtype())
    scale = site.get("scale", 1.0)
    if isinstance(scale, torch.Tensor) and scale.numel() > 1:
        log_prob = log_prob * scale  # a per-element scale is folded into the values
        scale = 1.0
    num_samples = (site.get("infer") or {}).get("_enum_num_samples")
    if num_samples is not None:  # Monte Carlo "enumeration": an average over the samples
        log_prob = log_prob - log_prob.detach() - math.log(num_samples)
    tensor, dims, ordinal = _pack(site, log_prob, max_plate_nesting)
    return LogFactor(tensor, dims, ordinal, site["name"], scale)


def _align(tensor, dims, target):
    order = [dims.index(d) for d in target if d in dims]
    return tensor.permute(order).reshape(
        [tensor.shape[dims.index(d)] if d in dims else 1 for d in target]
    )


def _is_enumerated(site) -> bool:
    return "_enumerate_dim" in (site.get("infer") or {})


class TraceEnum_ELBO(ELBO):
    """An ELBO that sums out enumerated discrete latent variables exactly.

    Mark discrete sites with ``infer={"enumerate": "parallel"}`` (or use
    :func:`~ember.infer.enum.config_enumerate`). Model sites that the guide does
    not sample are summed out of the model's likelihood; guide sites are averaged
    over exactly under the guide. Enumerated sites get tensor dims to the left of
    ``max_plate_nesting``, which must therefore count every plate of model and
    guide. ``"sequential"`` sites are enumerated by re-running the program.

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

    # the traces' param sites are reported to SVI (no extra param-recording handler)
    _reports_params = True

    # ------------------------------------------------------------ traces
    def _guide_branches(self, guide, args, kwargs, max_plate_nesting):
        first = -1 - max_plate_nesting

        def run(fixed, discovered):
            handler = _EnumRun(first, None, _SequentialChoices(fixed, discovered))
            trace = _run_traced(guide, handler, args, kwargs)
            self._collect_params((trace,))
            return trace

        return _iter_branches(run)

    def _model_branches(self, model, guide_trace, args, kwargs, max_plate_nesting):
        reserved = {
            name: site["infer"]["_enumerate_dim"]
            for name, site in guide_trace.nodes.items()
            if site["type"] == "sample" and _is_enumerated(site)
        }
        first = min(list(reserved.values()) + [-max_plate_nesting]) - 1

        def run(fixed, discovered):
            choices = _SequentialChoices(fixed, discovered)
            handler = _EnumRun(first, reserved, choices, replay_trace=guide_trace)
            trace = _run_traced(model, handler, args, kwargs)
            self._collect_params((trace,))
            return trace

        return _iter_branches(run)

    # ------------------------------------------------------------ one particle
    def _particle(self, model, guide, args, kwargs, max_plate_nesting, particles=None):
        """``(loss, surrogate_loss, enumerated_anything)`` for one particle (loss = -ELBO).

        With vectorized particles, ``particles`` names their plate: values are then
        kept per particle so each score-function term only sees its own particle.
        """
        loss = surrogate = None
        found_enum = False
        for guide_trace in self._guide_branches(guide, args, kwargs, max_plate_nesting):
            guide_factors: List[LogFactor] = []
            measure: Dict[str, LogFactor] = {}  # enumerated guide sites
            sampled = []  # guide sites sampled without reparameterization
            seq_names = set()
            log_weight = None  # log guide probability of this branch's sequential values
            for s in guide_trace.nodes.values():
                if s["type"] != "sample" or s["is_observed"]:
                    continue
                f = _site_factor(s, max_plate_nesting)
                guide_factors.append(f)
                infer = s["infer"] or {}
                if "_enumerate_dim" in infer:
                    measure[s["name"]] = f
                elif infer.get("enumerate") == "sequential":
                    seq_names.add(s["name"])
                    lp = f.tensor.sum()
                    log_weight = lp if log_weight is None else log_weight + lp
                elif not s["fn"].has_rsample:
                    sampled.append((s, f))
            guide_ordinals = {name: f.ordinal for name, f in measure.items()}
            found_enum = found_enum or bool(measure) or bool(seq_names)

            costs, model_enumerated = self._model_costs(
                model, guide_trace, guide_ordinals, args, kwargs, max_plate_nesting
            )
            found_enum = found_enum or model_enumerated
            cache = {}
            # loss = sum of guide terms - sum of model terms
            plus = [
                _expectation(f, measure, guide_ordinals, cache, particles) for f in guide_factors
            ]
            minus = [
                _expectation(cost, measure, guide_ordinals, cache, particles) for cost in costs
            ]
            if not (plus or minus):
                raise ValueError("TraceEnum_ELBO: the model and guide have no sample sites")
            value = _signed_sum(plus, minus)

            score = None
            for s, f in sampled:
                if any(d in guide_ordinals for d in f.dims):
                    raise ValueError(
                        f"guide site {s['name']!r} is sampled without reparameterization and "
                        "depends on enumerated guide sites "
                        f"{sorted(d for d in f.dims if d in guide_ordinals)}; enumerate it too "
                        "(config_enumerate) or make its distribution reparameterizable"
                    )
                unscaled = scale_and_mask(s["fn"].log_prob(s["value"]), mask=s.get("mask"))
                packed, dims, _ = _pack(s, unscaled, max_plate_nesting)
                score = _plus(score, _reduce(packed, dims, particles))
            if score is not None:
                branch_surrogate = value + score * value.detach()
                if branch_surrogate.dim():
                    branch_surrogate = branch_surrogate.sum()
            if value.dim():
                value = value.sum()
            if score is None:
                branch_surrogate = value
            if log_weight is not None:
                weight = log_weight.exp()
                if branch_surrogate is value:
                    value = branch_surrogate = weight * value
                else:
                    value, branch_surrogate = weight * value, weight * branch_surrogate
            loss = _plus(loss, value)
            surrogate = _plus(surrogate, branch_surrogate)
        return loss, surrogate, found_enum

    def _model_costs(self, model, guide_trace, guide_ordinals, args, kwargs, max_plate_nesting):
        branch_costs = []
        enumerated = False
        sequential = []  # model sites enumerated by re-running the model
        for model_trace in self._model_branches(
            model, guide_trace, args, kwargs, max_plate_nesting
        ):
            if is_validation_enabled():
                check_model_guide_match(model_trace, guide_trace, max_plate_nesting)
            factors, var_ordinals, sum_vars = [], dict(guide_ordinals), set()
            for site in model_trace.nodes.values():
                if site["type"] != "sample":
                    continue
                f = _site_factor(site, max_plate_nesting)
                factors.append(f)
                infer = site["infer"] or {}
                if infer.get("enumerate") == "sequential" and site["name"] not in guide_trace.nodes:
                    enumerated = True
                    if site["name"] not in sequential:
                        sequential.append(site["name"])
                if "_enumerate_dim" in infer and site["name"] not in guide_ordinals:
                    var_ordinals[site["name"]] = f.ordinal
                    sum_vars.add(site["name"])
                    enumerated = True
            branch_costs.append(contract_tree(factors, var_ordinals, sum_vars))
        if len(branch_costs) == 1:
            return branch_costs[0], enumerated
        return [_logsumexp_branches(branch_costs, guide_ordinals, sequential)], enumerated

    # ------------------------------------------------------------ marginals
    def compute_marginals(self, model: Callable, guide: Callable, *args, **kwargs) -> Dict:
        """Posterior marginals of the model's enumerated sites, given the data.

        Runs the guide once, replays the model against it and returns a dict
        from each model site enumerated in parallel (Categorical or Bernoulli)
        to its exact posterior marginal, batched over the site's plates. The
        marginals are the gradients of the log-normalizer with respect to a
        zero factor added at each site. The guide must not enumerate sites.

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
        if self.max_plate_nesting == math.inf:
            self._guess_max_plate_nesting(model, guide, args, kwargs)
        max_plate_nesting = int(self.max_plate_nesting)
        guide_trace = next(iter(self._guide_branches(guide, args, kwargs, max_plate_nesting)))
        for site in guide_trace.nodes.values():
            if site["type"] == "sample" and _is_enumerated(site):
                raise ValueError(
                    f"compute_marginals: guide site {site['name']!r} is enumerated; marginals "
                    "are only computed for sites the model enumerates"
                )
        branches = self._model_branches(model, guide_trace, args, kwargs, max_plate_nesting)
        model_trace = next(iter(branches))
        factors, var_ordinals, probes = [], {}, {}
        with torch.enable_grad():
            for site in model_trace.nodes.values():
                if site["type"] != "sample":
                    continue
                f = _site_factor(site, max_plate_nesting)
                f = f._replace(tensor=f.tensor.detach())
                factors.append(f)
                if not _is_enumerated(site):
                    continue
                name = site["name"]
                var_ordinals[name] = f.ordinal
                frames = sorted(_plate_frames(site), key=lambda fr: fr.dim)
                size = dict(zip(f.dims, f.tensor.shape))[name]
                probe = f.tensor.new_zeros([fr.size for fr in frames] + [size], requires_grad=True)
                probes[name] = (site, frames, probe)
                dims = tuple(fr.name for fr in frames) + (name,)
                factors.append(LogFactor(probe, dims, f.ordinal, name, f.scale))
            if not probes:
                return {}
            log_z = _total(contract_tree(factors, var_ordinals))
            grads = torch.autograd.grad(log_z, [p for _, _, p in probes.values()])
        marginals = {}
        for (name, (site, frames, _)), grad in zip(probes.items(), grads):
            scale = factors[[f.name for f in factors].index(name)].scale
            probs = grad / scale if not (isinstance(scale, float) and scale == 1.0) else grad
            width = -frames[0].dim if frames else 0
            shape = [1] * width
            for fr in frames:
                shape[width + fr.dim] = fr.size
            probs = probs.reshape(shape + [probs.shape[-1]])
            marginals[name] = _marginal_distribution(site, probs)
        return marginals

    # ------------------------------------------------------------ interface
    def _loss_tensors(self, model, guide, args, kwargs, backward, differentiable=False):
        if self.max_plate_nesting == math.inf:
            self._guess_max_plate_nesting(model, guide, args, kwargs)
        max_plate_nesting = int(self.max_plate_nesting)
        if self.vectorize_particles and self.num_particles > 1:
            model, guide = self._vectorized(model), self._vectorized(guide)
            max_plate_nesting += 1
            runs, particles = 1, "num_particles_vectorized"
        else:
            runs, particles = self.num_particles, None
        loss = surrogate_loss = None
        found_enum = False
        for _ in range(runs):
            value, surrogate, found = self._particle(
                model, guide, args, kwargs, max_plate_nesting, particles
            )
            if surrogate is value and surrogate_loss is loss:
                loss = surrogate_loss = _plus(loss, value)
            else:
                loss, surrogate_loss = _plus(loss, value), _plus(surrogate_loss, surrogate)
            found_enum = found_enum or found
        if self.strict_enumeration_warning and not found_enum:
            warnings.warn(
                "TraceEnum_ELBO found no sample sites configured for enumeration; mark discrete "
                "sites with infer={'enumerate': 'parallel'} or use config_enumerate, or use "
                "Trace_ELBO",
                UserWarning,
                stacklevel=3,
            )
        n = self.num_particles
        if n != 1:
            if surrogate_loss is loss:
                loss = surrogate_loss = loss / n
            else:
                loss, surrogate_loss = loss / n, surrogate_loss / n
        return self._finish(loss, surrogate_loss, backward, differentiable)


def _marginal_distribution(site, probs):
    import ember.distributions as dist

    fn = site["fn"]
    while isinstance(fn, (dist.MaskedDistribution, dist.ExpandedDistribution)):
        fn = fn.base_dist
    if isinstance(fn, torch.distributions.Bernoulli):
        return dist.Bernoulli(probs=probs[..., 1])
    if isinstance(fn, torch.distributions.Categorical):
        return dist.Categorical(probs=probs)
    raise ValueError(
        f"compute_marginals: site {site['name']!r} has a {type(fn).__name__} distribution; "
        "marginals are available for Categorical and Bernoulli sites"
    )


def _plus(total, value):
    return value if total is None else total + value


def _logsumexp_branches(branch_costs, guide_ordinals, sequential) -> LogFactor:
    """``log sum_b exp(total_b)`` of the model's sequential branches, as one factor.

    Each branch's total is a function of the guide's enumerated sites it still
    depends on; that works when those sites are in no plate (else the branches
    would couple every plate element's copy).
    """
    keep: List[str] = []
    for costs in branch_costs:
        for f in costs:
            for d in f.dims:
                if d in f.ordinal or d in keep:
                    continue
                if d not in guide_ordinals:
                    raise IntractableError(f"factor {f.name!r} still depends on {d!r}")
                if guide_ordinals[d]:
                    plates = ", ".join(repr(p) for p in sorted(map(str, guide_ordinals[d])))
                    raise ValueError(
                        f"guide site {d!r} is enumerated in parallel inside plate(s) {plates} "
                        f"while model site(s) {sequential} are enumerated sequentially: the "
                        "model's sum over the sequential values would couple every element "
                        f"of the plate. Enumerate {sequential} in parallel "
                        "(infer={'enumerate': 'parallel'}), or enumerate the guide site "
                        "sequentially"
                    )
                keep.append(d)
    totals = []
    for costs in branch_costs:
        total = None
        for f in costs:
            plates = [i for i, d in enumerate(f.dims) if d in f.ordinal]
            value = f.tensor.sum(plates) if plates else f.tensor
            if not (isinstance(f.scale, (int, float)) and f.scale == 1):
                value = value * f.scale
            rest = tuple(d for d in f.dims if d not in f.ordinal)
            value = _align(value, rest, keep) if keep else value
            total = value if total is None else total + value
        totals.append(total)
    shape = torch.broadcast_shapes(*(t.shape for t in totals))
    stacked = torch.stack([t.expand(shape) for t in totals])
    return LogFactor(torch.logsumexp(stacked, 0), tuple(keep), frozenset(), "model")


def _total(factors):
    value = 0.0
    for f in factors:
        if f.dims and not all(d in f.ordinal for d in f.dims):
            raise IntractableError(f"factor {f.name!r} still depends on {f.dims}")
        value = value + f.tensor.sum() * f.scale
    return value


def _reduce(tensor, dims, keep):
    """Sum every dim of ``tensor`` except the one named ``keep`` (if it has it)."""
    if keep is None or keep not in dims:
        return tensor.sum() if tensor.dim() else tensor
    i = dims.index(keep)
    others = [j for j in range(len(dims)) if j != i]
    return tensor.sum(others) if others else tensor


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


def _expectation(cost: LogFactor, measure, guide_ordinals, cache, keep=None) -> torch.Tensor:
    """The expected plate-summed value of ``cost`` under the enumerated guide sites."""
    scale = cost.scale
    targets = tuple(d for d in cost.dims if d in guide_ordinals)
    if not targets:
        value = _reduce(cost.tensor, cost.dims, keep)
    else:
        key = (frozenset(targets), cost.ordinal)
        if key not in cache:
            cache[key] = ancestral_marginal(measure, targets, cost.ordinal)
        m = cache[key]
        dims = list(m.dims) + [d for d in cost.dims if d not in m.dims]
        probs = _align(m.tensor.exp(), m.dims, dims)
        value = _reduce(probs * _align(cost.tensor, cost.dims, dims), tuple(dims), keep)
    if not (isinstance(scale, (int, float)) and scale == 1):
        value = value * scale  # a number or a one-element tensor: scale the sum
    return value
