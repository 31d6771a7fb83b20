"""Helpers shared by the inference algorithms.

Running a guide and replaying a model against it (:func:`get_importance_trace`),
checking that the two agree, the plate nesting of traces, sums per vectorized
particle, plate-aware sums of costs (:class:`MultiFrameTensor`), and the small
tensor helpers Pyro programs import from ``pyro.infer.util``.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Callable, Dict, Iterable, List, Tuple

import torch

from ember import poutine
from ember.distributions.unit import Unit
from ember.distributions.util import is_identically_zero
from ember.ops.contract import LAST_CACHE_SIZE
from ember.params.param_store import get_param_store
from ember.poutine.guide import drop_model_observations
from ember.poutine.replay_messenger import ReplayMessenger
from ember.poutine.trace_messenger import trace_run
from ember.poutine.util import prune_subsample_sites, site_is_subsample
from ember.primitives import plate
from ember.util import is_infer_validation_enabled

__all__ = [
    "LAST_CACHE_SIZE",
    "MultiFrameTensor",
    "VECTORIZED_PARTICLES_PLATE",
    "check_fully_reparametrized",
    "check_if_enumerated",
    "check_model_guide_match",
    "check_site_shape",
    "check_step_finite",
    "get_importance_trace",
    "get_plate_stacks",
    "guess_max_plate_nesting",
    "is_identically_zero",
    "is_validation_enabled",
    "log_mean_exp",
    "NonFiniteLossError",
    "particle_sum",
    "plate_depth",
    "prune_subsample_sites",
    "torch_backward",
    "torch_exp",
    "torch_item",
    "unconstrained_param",
    "vectorize",
    "zero_grads",
]

#: The name of the plate that holds vectorized particles (as in Pyro).
VECTORIZED_PARTICLES_PLATE = "num_particles_vectorized"

#: Whether inference checks models and guides (the ``validate_infer`` setting;
#: ``ember.enable_validation`` switches it together with the others).
is_validation_enabled = is_infer_validation_enabled


# ------------------------------------------------------------ small tensor helpers
def torch_item(x) -> float:
    """``x`` as a Python float (one host sync for a tensor, none for a number).

    Example::

        >>> import torch
        >>> torch_item(torch.tensor(1.5)), torch_item(2)
        (1.5, 2.0)
    """
    if type(x) is torch.Tensor:  # (skips the slower abstract-class check below)
        return float(x.item())
    if isinstance(x, numbers.Number):
        return float(x)
    return float(x.item())


def torch_backward(x, retain_graph: bool | None = None) -> None:
    """``x.backward()`` for a tensor that requires grad; nothing for a number or a constant.

    Example::

        >>> import torch
        >>> p = torch.tensor(2.0, requires_grad=True)
        >>> torch_backward(p * p); p.grad
        tensor(4.)
        >>> torch_backward(1.0)  # no-op
    """
    if isinstance(x, torch.Tensor) and x.requires_grad:
        x.backward(retain_graph=retain_graph)


def torch_exp(x):
    """``exp(x)`` for a tensor (``x.exp()``) or a number (``math.exp``).

    Example::

        >>> import torch
        >>> torch_exp(0.0), torch_exp(torch.tensor([0.0]))
        (1.0, tensor([1.]))
    """
    if isinstance(x, torch.Tensor):
        return x.exp()
    return math.exp(x)


def zero_grads(params: Iterable[torch.Tensor]) -> None:
    """Drop the gradients of ``params`` (set ``.grad`` to ``None``).

    Example::

        >>> import torch
        >>> p = torch.tensor(1.0, requires_grad=True)
        >>> (2 * p).backward(); zero_grads([p]); p.grad is None
        True
    """
    for p in params:
        p.grad = None


class NonFiniteLossError(ValueError):
    """A training step met a NaN or infinite loss or gradient; the optimizer did not run.

    Raised (with validation on) before the parameters change, so they keep their
    last finite values. The message names the sites whose log-densities or values
    are not finite and the parameters whose gradients are not.
    """


def check_step_finite(loss, params: List[torch.Tensor], traces=()) -> None:
    """Raise :class:`NonFiniteLossError` when ``loss`` or a gradient of ``params`` is
    NaN or infinite.

    One host sync, whatever the number of parameters: the loss and the sum of each
    gradient are read together, and a NaN or infinity in a gradient makes its sum
    non-finite. Only then (rarely) is each gradient checked entry by entry, which
    also rules out a sum that merely overflowed, and ``traces`` (the traces the
    loss was computed from) are searched for the sites to blame.

    Example::

        >>> import torch
        >>> p = torch.tensor(1.0, requires_grad=True)
        >>> (p * float("nan")).backward()
        >>> check_step_finite(torch.tensor(0.5), [p])
        Traceback (most recent call last):
        ...
        ember.infer.util.NonFiniteLossError: ...gradient...
    """
    terms = []
    for p in params:
        g = p.grad
        if g is not None:
            terms.append(g if g.dim() == 0 else g.sum())
    if isinstance(loss, torch.Tensor):
        terms.append(loss.detach() if loss.requires_grad else loss)
        loss_finite = None
    else:
        loss_finite = math.isfinite(loss)
    if loss_finite is not False and (not terms or _all_finite(terms)):
        return
    if _is_finite(loss) and all(p.grad is None or _is_finite(p.grad) for p in params):
        return  # a gradient's sum overflowed; every entry is finite
    raise NonFiniteLossError(describe_non_finite(loss, params, traces))


def _all_finite(terms: List[torch.Tensor]) -> bool:
    """Whether every scalar tensor of ``terms`` is finite (one host sync)."""
    if len(terms) == 1:
        return math.isfinite(terms[0].item())
    first = terms[0]
    if any(t.dtype != first.dtype or t.device != first.device for t in terms):
        terms = [t.to(device=first.device, dtype=torch.float64) for t in terms]
    return all(map(math.isfinite, torch.stack(terms).tolist()))


def _is_finite(x) -> bool:
    if isinstance(x, torch.Tensor):
        return bool(torch.isfinite(x).all())
    return math.isfinite(x)


def describe_non_finite(loss, params: List[torch.Tensor], traces=()) -> str:
    """What is not finite in a training step: the loss, the sites of ``traces`` whose
    value or log-density is NaN or infinite, and the parameters with such gradients."""
    with torch.no_grad():
        loss_value = torch_item(loss)
        parts = [f"the loss is {loss_value}" if not math.isfinite(loss_value) else ""]
        sites = []
        for trace in traces:
            for name, site in trace.nodes.items():
                if site["type"] != "sample" or name in sites:
                    continue
                problem = _site_problem(site)
                if problem:
                    sites.append(name)
                    parts.append(f"site {name!r} {problem}")
        names = {id(p): n for n, p in get_param_store().named_parameters()}
        for p in params:
            if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                bad = int((~torch.isfinite(p.grad)).sum())
                label = names.get(id(p), f"a parameter of shape {tuple(p.shape)}")
                parts.append(
                    f"the gradient of param {label!r} has {bad} non-finite "
                    f"entr{'y' if bad == 1 else 'ies'} of {p.grad.numel()}"
                )
    found = "; ".join(x for x in parts if x)
    return (
        f"non-finite training step: {found or 'the loss or a gradient is not finite'}. The "
        "optimizer did not run, so the parameters keep their last finite values; hint: look "
        "for a value outside a distribution's support, a log of zero or an overflow in the "
        "named sites (ember.poutine.trace shows each site's value and log_prob), or lower the "
        "learning rate (ember.optim.ClippedAdam clips gradients)"
    )


def _site_problem(site) -> str:
    """What is not finite at a sample ``site`` ("" when nothing is)."""
    fn, value = site["fn"], site["value"]
    problems = []
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        bad = int((~torch.isfinite(value)).sum())
        if bad:
            problems.append(f"a non-finite value at {bad} of {value.numel()} entries")
    log_prob = site.get("log_prob")
    if log_prob is None:
        try:
            log_prob = fn.log_prob(value)
        except (ValueError, RuntimeError) as e:
            problems.append(f"a value it cannot score ({e})")
            log_prob = 0.0
    kind = "log-factor" if type(fn) is Unit else "log_prob"
    if isinstance(log_prob, torch.Tensor):
        bad = int((~torch.isfinite(log_prob)).sum())
        if bad:
            problems.append(f"a non-finite {kind} at {bad} of {log_prob.numel()} entries")
    elif not math.isfinite(float(log_prob)):
        problems.append(f"a non-finite {kind} ({log_prob})")
    if not problems:
        return ""
    if type(fn) is Unit:
        who = "(a factor)"
    else:
        who = f"({'observed' if site.get('is_observed') else 'latent'}, {type(fn).__name__})"
    return f"{who} has " + " and ".join(problems)


def unconstrained_param(value: torch.Tensor) -> torch.Tensor:
    """The leaf tensor an optimizer updates for the value of a ``param`` site.

    A constrained parameter's value is computed from an unconstrained leaf; the
    param store records that leaf on the value (``value.unconstrained()``).

    Example::

        >>> import torch, ember
        >>> from ember.distributions import constraints
        >>> ember.clear_param_store()
        >>> positive = constraints.positive
        >>> v = ember.param("s_unconstrained_doc", torch.tensor(2.0), constraint=positive)
        >>> leaf = unconstrained_param(v)
        >>> leaf.is_leaf, round(leaf.item(), 4)  # log 2
        (True, 0.6931)
    """
    get = getattr(value, "unconstrained", None)
    if get is None:
        return value
    leaf = get() if callable(get) else get
    return value if leaf is None else leaf


# ------------------------------------------------------------ plates
def _vectorized_frames(site) -> tuple:
    return tuple(f for f in site.get("cond_indep_stack") or () if f.dim is not None)


def plate_depth(sites: Iterable[dict], exclude: str | None = None) -> int:
    """The deepest vectorized plate among ``sites``: ``-min(dim)``, or 0 without plates.

    ``sites`` are site dicts (e.g. ``trace.nodes.values()``); a plate named
    ``exclude`` is not counted.

    Example::

        >>> import ember, ember.distributions as dist
        >>> def model():
        ...     with ember.plate("a", 2, dim=-2), ember.plate("b", 3):
        ...         ember.sample("x", dist.Normal(0.0, 1.0))
        >>> tr = ember.poutine.trace(model).get_trace()
        >>> plate_depth(tr.nodes.values()), plate_depth(tr.nodes.values(), exclude="a")
        (2, 1)
    """
    depth = 0
    for site in sites:
        for f in site.get("cond_indep_stack") or ():
            if f.dim is not None and -f.dim > depth and f.name != exclude:
                depth = -f.dim
    return depth


def get_plate_stacks(trace) -> Dict[str, List]:
    """For every sample site of ``trace``, the list of vectorized plate frames around it.

    Example::

        >>> import ember, ember.distributions as dist
        >>> def model():
        ...     with ember.plate("data", 3):
        ...         ember.sample("x", dist.Normal(0.0, 1.0))
        >>> stacks = get_plate_stacks(ember.poutine.trace(model).get_trace())
        >>> [f.name for f in stacks["x"]]
        ['data']
    """
    return {
        name: list(_vectorized_frames(site))
        for name, site in trace.nodes.items()
        if site["type"] == "sample"
    }


class MultiFrameTensor(dict):
    """Tensors grouped by the vectorized plates they live in, summed to any plate set.

    Each entry maps a frozenset of plate frames to the sum of the tensors
    added with those frames. :meth:`sum_to` adds every entry up for a target
    set of plates: an entry is first summed over its plates that are not
    targets (keeping one value per element of the target plates), then all
    are added with broadcasting. This is the cost a score-function term of a
    site inside the target plates sees: for each of its plate elements, every
    cost of the same element plus the whole of the costs outside those plates.

    Example::

        >>> import torch
        >>> from ember.poutine.runtime import CondIndepStackFrame
        >>> p = CondIndepStackFrame("p", -1, 3, 0, 3)
        >>> costs = MultiFrameTensor(((p,), torch.tensor([1.0, 2.0, 3.0])))
        >>> costs.add(((), torch.tensor(10.0)))
        >>> costs.sum_to(())
        tensor(16.)
        >>> costs.sum_to((p,))
        tensor([11., 12., 13.])
    """

    def __init__(self, *items):
        super().__init__()
        self.add(*items)

    def add(self, *items) -> None:
        """Add ``(frames, value)`` pairs (only the vectorized frames are kept as the key)."""
        for frames, value in items:
            key = frozenset(f for f in frames if f.dim is not None)
            old = self.get(key)
            self[key] = value if old is None else old + value

    def sum_to(self, target_frames):
        """The sum of all entries, each reduced over its plates not in ``target_frames``.

        Leading size-1 dims of each reduced entry are dropped; returns ``0.0``
        when empty.
        """
        target = frozenset(target_frames)
        total = None
        for frames, value in self.items():
            if isinstance(value, torch.Tensor):
                n = value.dim()
                dims = [
                    f.dim
                    for f in frames
                    if f not in target and -f.dim <= n and value.shape[f.dim] != 1
                ]
                if dims:
                    value = value.sum(dims, keepdim=True)
                while value.dim() and value.shape[0] == 1:
                    value = value.squeeze(0)
            total = value if total is None else total + value
        return 0.0 if total is None else total


# ------------------------------------------------------------ checks
def _fmt_frames(site) -> str:
    frames = site.get("cond_indep_stack") or ()
    return ", ".join(f"{f.name!r} (dim={f.dim}, size={f.size})" for f in frames) or "none"


def check_site_shape(site, max_plate_nesting: float) -> None:
    """Check a sample site's ``log_prob`` shape against the plates around it.

    Within the rightmost ``max_plate_nesting`` dims, a dim that a plate owns
    must have that plate's size (or 1), and a dim left of every plate must be
    1; dims further left (vectorized particles, enumeration) are not checked
    here. A dim right of the deepest plate that no plate owns may have any
    size. Raises ``ValueError`` ("invalid log_prob shape") naming the site,
    the shapes and the plates in scope, with a hint.

    Example::

        >>> import torch, ember.distributions as dist
        >>> site = {"name": "x", "log_prob": torch.zeros(3), "cond_indep_stack": ()}
        >>> check_site_shape(site, 1)
        Traceback (most recent call last):
        ...
        ValueError: at site 'x', invalid log_prob shape (3,): dim -1 has size 3 ...
    """
    log_prob = site.get("log_prob")
    if not isinstance(log_prob, torch.Tensor):
        return
    shape = log_prob.shape
    frames = _vectorized_frames(site)
    sizes: Dict[int, int] = {}
    for f in frames:
        if f.dim in sizes:
            raise ValueError(
                f"at site {site['name']!r}, plates collide at dim={f.dim} (plates in scope: "
                f"{_fmt_frames(site)}); give each plate its own dim"
            )
        sizes[f.dim] = f.size
    depth = max((-d for d in sizes), default=0)
    if depth > max_plate_nesting:
        raise ValueError(
            f"at site {site['name']!r}, plate stack overflow: the plates in scope "
            f"({_fmt_frames(site)}) need {depth} dims but max_plate_nesting="
            f"{max_plate_nesting}. Increase max_plate_nesting to at least {depth}."
        )
    checked = min(len(shape), max_plate_nesting)
    for i in range(1, int(checked) + 1):
        size = shape[-i]
        if size == 1:
            continue
        expected = sizes.get(-i)
        if expected is None:
            if i <= depth:
                continue  # right of the deepest plate, owned by none: left to the user
            hint = (
                f"enclose the batched tensor in an ember.plate(..., dim={-i}) context, declare "
                "the dimension as an event dimension with .to_event(...), or permute the data "
                "dimensions"
            )
        elif expected == size or expected == -1:  # (-1: a plate of unknown size)
            continue
        else:
            hint = (
                f"make the sizes agree with the plate of size {expected} at dim {-i}, e.g. by "
                "indexing the data with the plate's subsample indices"
            )
        owner = (
            "no plate in scope owns it"
            if expected is None
            else f"the plate there has size {expected}"
        )
        raise ValueError(
            f"at site {site['name']!r}, invalid log_prob shape {tuple(shape)}: dim {-i} has "
            f"size {size} but {owner} (plates in scope: {_fmt_frames(site)}). Try one of: "
            f"{hint}."
        )


def _is_auxiliary(site) -> bool:
    return bool((site.get("infer") or {}).get("is_auxiliary"))


def _check_plate_sizes_agree(name, model_fn, guide_fn) -> None:
    """A plate in both model and guide must have one full size: the guide's indices
    are replayed into the model, so a smaller guide plate would silently act as a
    subsample of the model's (once per plate, not per site)."""
    model_size, guide_size = model_fn.size, guide_fn.size
    if isinstance(model_size, torch.Tensor) or isinstance(guide_size, torch.Tensor):
        if torch.jit.is_tracing():
            return
        model_size, guide_size = int(model_size), int(guide_size)
    if model_size != guide_size:
        raise ValueError(
            f"plate {name!r} has size {model_size} in the model but size {guide_size} in the "
            "guide; a plate must have the same full size in both. Hint: to subsample, give "
            f"the guide's plate the model's size and a subsample_size, e.g. "
            f"plate({name!r}, {model_size}, subsample_size={guide_size})"
        )


def check_model_guide_match(model_trace, guide_trace, max_plate_nesting: float = math.inf) -> None:
    """Check that a model and a guide trace agree.

    * every latent model site is sampled by the guide (or marked for
      enumeration), else ``ValueError`` naming it;
    * a model site the guide samples is not observed in the model, else ``ValueError``;
    * sites in both have the same ``event_dim`` ("Model and guide event_dims
      disagree") and the same shape up to broadcasting left of
      ``max_plate_nesting`` ("Model and guide shapes disagree"), else ``ValueError``;
    * guide sites the model never samples, unless marked
      ``infer={"is_auxiliary": True}``, give a ``UserWarning``; so do
      auxiliary sites the model samples, and plates (subsample sites) that the
      guide has and the model has not ("Found plate statements in guide but not model").

    Call it before the subsample sites are pruned for the plate check to see them.
    """
    model_latents = {}
    model_plates = set()
    for name, site in model_trace.nodes.items():
        if site["type"] == "sample" and not site["is_observed"]:
            if site_is_subsample(site):
                model_plates.add(name)
            else:
                model_latents[name] = site
    guide_latents = {}
    guide_plates = set()
    for name, site in guide_trace.nodes.items():
        if site["type"] == "sample" and not site["is_observed"]:
            if site_is_subsample(site):
                guide_plates.add(name)
            else:
                guide_latents[name] = site
    for name, site in model_latents.items():
        if name in guide_latents:
            continue
        if (site.get("infer") or {}).get("enumerate"):
            continue
        raise ValueError(
            f"model sample site {name!r} is latent (not observed) but the guide does not "
            f"sample it. Add ember.sample({name!r}, ...) to the guide, observe it in the "
            f"model with obs=..., or mark it for enumeration with TraceEnum_ELBO. Guide sites: "
            f"{sorted(guide_latents) or 'none'}"
        )
    for name, site in guide_latents.items():
        model_site = model_trace.nodes.get(name)
        if _is_auxiliary(site):
            if name in model_latents:
                warnings.warn(
                    f"Found auxiliary vars in the model: guide site {name!r} is marked "
                    "infer={'is_auxiliary': True} but the model samples it too",
                    UserWarning,
                    stacklevel=4,
                )
            continue
        if model_site is None:
            warnings.warn(
                f"guide sample site {name!r} does not appear in the model; it is ignored by "
                "the model. Mark it with infer={'is_auxiliary': True} if that is intended.",
                UserWarning,
                stacklevel=4,
            )
        elif model_site["type"] == "sample" and model_site["is_observed"]:
            raise ValueError(
                f"site {name!r} is observed in the model but sampled by the guide; remove it "
                "from the guide"
            )
        elif name in model_latents:
            _check_site_shapes_agree(name, model_site["fn"], site["fn"], max_plate_nesting)
    for name, site in guide_trace.nodes.items():
        fn = site.get("fn")
        if type(fn) is Unit and "has_rsample" not in vars(fn):
            raise ValueError(
                f"At guide site ember.factor({name!r}, ...) (pyro.factor), missing "
                "specification of has_rsample: in a guide the ELBO must know how to "
                "differentiate the factor. Set has_rsample=True if the factor arises from "
                "reparameterized sampling, has_rsample=False otherwise."
            )
    for name in model_plates & guide_plates:
        _check_plate_sizes_agree(name, model_trace.nodes[name]["fn"], guide_trace.nodes[name]["fn"])
    extra_plates = guide_plates - model_plates
    if extra_plates:
        warnings.warn(
            f"Found plate statements in guide but not model: {sorted(extra_plates)}. Every "
            "plate of the guide must also be in the model (with the same name).",
            UserWarning,
            stacklevel=4,
        )


def _check_site_shapes_agree(name, model_fn, guide_fn, max_plate_nesting) -> None:
    try:
        model_batch, model_event = model_fn.batch_shape, model_fn.event_shape
        guide_batch, guide_event = guide_fn.batch_shape, guide_fn.event_shape
    except AttributeError:  # not a distribution with shapes: nothing to compare
        return
    if model_batch == guide_batch and model_event == guide_event:
        return
    model_event_dim, guide_event_dim = len(model_event), len(guide_event)
    if model_event_dim != guide_event_dim:
        raise ValueError(
            f"Model and guide event_dims disagree at site {name!r}: {model_event_dim} vs "
            f"{guide_event_dim}. Make the guide's distribution have the model's event shape "
            "(e.g. with .to_event(n))."
        )
    model_shape = tuple(model_batch + model_event)
    guide_shape = tuple(guide_batch + guide_event)
    # sizes left of max_plate_nesting (particles, enumeration) may broadcast
    keep = max_plate_nesting + model_event_dim
    if len(model_shape) > keep:
        model_shape = model_shape[len(model_shape) - keep :]
    if len(guide_shape) > keep:
        guide_shape = guide_shape[len(guide_shape) - keep :]
    n = max(len(model_shape), len(guide_shape))
    padded_model = (1,) * (n - len(model_shape)) + model_shape
    padded_guide = (1,) * (n - len(guide_shape)) + guide_shape
    if padded_model != padded_guide:
        raise ValueError(
            f"Model and guide shapes disagree at site {name!r}: {model_shape} vs "
            f"{guide_shape}. The guide must sample a value of the model's shape at each site."
        )


def check_traces_match(trace1, trace2) -> None:
    """Check that two traces (e.g. of one model run twice) have the same sample sites
    with the same shapes: a ``UserWarning`` when the sets of sites differ, a
    ``ValueError`` naming the site when the shapes at a site differ.

    Example::

        >>> import ember, ember.distributions as dist
        >>> def model(n):
        ...     ember.sample("x", dist.Normal(0.0, 1.0).expand([n]).to_event(1))
        >>> tr = lambda n: ember.poutine.trace(model).get_trace(n)
        >>> check_traces_match(tr(2), tr(2))
        >>> check_traces_match(tr(2), tr(3))
        Traceback (most recent call last):
        ...
        ValueError: Site dims disagree at site 'x': (2,) vs (3,)....
    """
    sites1 = {n for n, site in trace1.nodes.items() if site["type"] == "sample"}
    sites2 = {n for n, site in trace2.nodes.items() if site["type"] == "sample"}
    if sites1 != sites2:
        warnings.warn(
            f"Model vars changed: {sorted(sites1)} vs {sorted(sites2)} (sample sites only in "
            f"the first trace: {sorted(sites1 - sites2)}, only in the second: "
            f"{sorted(sites2 - sites1)})",
            UserWarning,
            stacklevel=2,
        )
    for name in sorted(sites1 & sites2):
        fn1, fn2 = trace1.nodes[name]["fn"], trace2.nodes[name]["fn"]
        if not (hasattr(fn1, "shape") and hasattr(fn2, "shape")):
            continue
        shape1, shape2 = tuple(fn1.shape()), tuple(fn2.shape())
        if shape1 != shape2:
            raise ValueError(
                f"Site dims disagree at site {name!r}: {shape1} vs {shape2}. The two runs "
                "must draw values of the same shape at each site."
            )


def check_fully_reparametrized(guide_site) -> None:
    """Raise ``NotImplementedError`` unless ``guide_site``'s distribution is reparameterized.

    Example::

        >>> import ember.distributions as dist
        >>> check_fully_reparametrized({"name": "z", "fn": dist.Normal(0.0, 1.0)})
        >>> check_fully_reparametrized({"name": "k", "fn": dist.Bernoulli(0.5)})
        Traceback (most recent call last):
        ...
        NotImplementedError: All distributions in the guide must be fully reparameterized; ...
    """
    fn = guide_site["fn"]
    if not getattr(fn, "has_rsample", False):
        raise NotImplementedError(
            "All distributions in the guide must be fully reparameterized; site "
            f"{guide_site['name']!r} has a {type(fn).__name__}, which is not. Use "
            "Trace_ELBO or TraceGraph_ELBO for guides with discrete or other "
            "non-reparameterized sites."
        )


def check_if_enumerated(guide_trace) -> None:
    """Warn (``UserWarning``) when guide sites are configured for enumeration:
    only :class:`~ember.infer.traceenum_elbo.TraceEnum_ELBO` enumerates them."""
    names = [
        name
        for name, site in guide_trace.nodes.items()
        if site["type"] == "sample" and (site.get("infer") or {}).get("enumerate")
    ]
    if names:
        warnings.warn(
            f"Found sample sites configured for enumeration: {', '.join(names)}. This "
            "estimator samples them instead; to enumerate sites, use TraceEnum_ELBO.",
            UserWarning,
            stacklevel=4,
        )


def guess_max_plate_nesting(
    model: Callable, guide: Callable | None, args: Tuple, kwargs: Dict
) -> int:
    """Run ``guide`` once and ``model`` replayed against it (hidden from outer handlers)
    and return the deepest plate nesting either uses; ``guide=None`` runs the model alone.

    Example::

        >>> import ember, ember.distributions as dist
        >>> def model():
        ...     with ember.plate("a", 2, dim=-3):
        ...         ember.sample("x", dist.Normal(0.0, 1.0))
        >>> guess_max_plate_nesting(model, None, (), {})
        3
    """
    with poutine.block():
        guide_trace = None if guide is None else trace_run(guide, args, kwargs)
        inner = None if guide_trace is None else ReplayMessenger(trace=guide_trace)
        model_trace = trace_run(model, args, kwargs, None, inner)
    depth = plate_depth(model_trace.nodes.values())
    if guide_trace is not None:
        depth = max(depth, plate_depth(guide_trace.nodes.values()))
    return depth


def vectorize(fn: Callable, size: int, dim: int, name: str = VECTORIZED_PARTICLES_PLATE):
    """Wrap ``fn`` in a plate of ``size`` at ``dim`` (used to draw particles in one pass).

    Example::

        >>> import ember, ember.distributions as dist
        >>> draw = vectorize(lambda: ember.sample("z", dist.Normal(0.0, 1.0)), 4, -1)
        >>> draw().shape
        torch.Size([4])
    """

    def wrapped(*args, **kwargs):
        with plate(name, size, dim=dim):
            return fn(*args, **kwargs)

    wrapped.__wrapped__ = fn
    return wrapped


def log_mean_exp(log_weights: torch.Tensor) -> torch.Tensor:
    """``log(mean(exp(log_weights)))`` over a 1-d tensor, computed stably.

    Example::

        >>> import math, torch
        >>> round(log_mean_exp(torch.tensor([0.0, math.log(3.0)])).item(), 4)  # log 2
        0.6931
    """
    return torch.logsumexp(log_weights, 0) - math.log(log_weights.numel())


def particle_sum(value, particle_dim: int | None):
    """Sum ``value`` over every dimension except the particle dimension.

    ``particle_dim`` counts from the right (e.g. ``-3``); ``None`` sums
    everything. A tensor too short to have the particle dimension is summed
    to a scalar (it is the same for every particle).

    Example::

        >>> import torch
        >>> particle_sum(torch.ones(4, 2, 3), -3)
        tensor([6., 6., 6., 6.])
        >>> particle_sum(torch.ones(2, 3), -3)
        tensor(6.)
    """
    if not isinstance(value, torch.Tensor):
        return value
    if particle_dim is None or value.dim() < -particle_dim:
        return value.sum()
    pos = value.dim() + particle_dim
    dims = [d for d in range(value.dim()) if d != pos]
    if not dims:
        return value
    return value.sum(dims)


def _remove_subsample_sites(trace) -> None:
    """Prune the plates' subsample sites from a trace made here (in place: no copy)."""
    names = [
        name
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and site_is_subsample(site)
    ]
    for name in names:
        trace.remove_node(name)


def get_importance_trace(
    graph_type: str | None,
    max_plate_nesting: float,
    model: Callable,
    guide: Callable,
    args: Tuple,
    kwargs: Dict,
    detach: bool = False,
    validate: bool = True,
):
    """Run ``guide``, replay ``model`` against it, prune subsample sites and score both.

    Returns ``(model_trace, guide_trace)`` without the plates' subsample sites,
    with ``log_prob`` (scaled and masked) at every model sample site and
    ``score_parts`` and ``log_prob`` at every guide sample site. ``detach``
    detaches the guide's values from the graph. When inference validation is on
    (and ``validate``), checks that model and guide agree
    (:func:`check_model_guide_match`) and every site's shape
    (:func:`check_site_shape`).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> def model():
        ...     ember.sample("z", dist.Normal(0.0, 1.0))
        >>> def guide():
        ...     ember.sample("z", dist.Normal(1.0, 1.0))
        >>> model_trace, guide_trace = get_importance_trace("flat", 0, model, guide, (), {})
        >>> z = guide_trace.nodes["z"]["value"]
        >>> bool(model_trace.nodes["z"]["value"] is z)
        True
    """
    guide_trace = trace_run(guide, args, kwargs, graph_type)
    drop_model_observations(guide, guide_trace)
    if detach:
        guide_trace.detach_()
    model_trace = trace_run(model, args, kwargs, graph_type, ReplayMessenger(trace=guide_trace))
    check = validate and is_validation_enabled()
    if check:
        check_model_guide_match(model_trace, guide_trace, max_plate_nesting)
    _remove_subsample_sites(guide_trace)
    _remove_subsample_sites(model_trace)
    model_trace.compute_log_prob()
    guide_trace.compute_score_parts()
    if check:
        for trace in (model_trace, guide_trace):
            for site in trace.nodes.values():
                if site["type"] == "sample":
                    lp = site["log_prob"]
                    if type(lp) is torch.Tensor and not lp.dim():
                        continue  # a scalar log-density fits any plates
                    check_site_shape(site, max_plate_nesting)
    return model_trace, guide_trace
