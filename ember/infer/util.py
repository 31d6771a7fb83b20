"""Helpers shared by the inference algorithms: running a guide and a model
against each other, checking that they agree, guessing plate nesting, and
reducing per-site tensors to one value per vectorized particle.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Callable, Dict, Iterable, Tuple

import torch

from ember import poutine
from ember.distributions.util import is_identically_zero
from ember.poutine.replay_messenger import ReplayMessenger
from ember.poutine.trace_messenger import trace_run
from ember.poutine.trace_struct import site_is_subsample
from ember.util import is_validation_enabled

__all__ = [
    "check_model_guide_match",
    "check_site_shape",
    "get_importance_trace",
    "guess_max_plate_nesting",
    "is_identically_zero",
    "particle_sum",
    "prune_subsample_sites",
    "torch_item",
    "vectorize",
    "zero_grads",
]


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


def zero_grads(params: Iterable[torch.Tensor]) -> None:
    """Drop the gradients of ``params`` (set ``.grad`` to ``None``)."""
    for p in params:
        p.grad = None


def _frames(site) -> tuple:
    return tuple(site.get("cond_indep_stack", ()) or ())


def prune_subsample_sites(trace):
    """Return a copy of ``trace`` without the plates' subsample sites.

    Subsample sites record which indices a subsampled ``plate`` drew; they are
    not random variables of the model and take no part in any ELBO.
    """
    if not any(site_is_subsample(site) for site in trace.nodes.values()):
        return trace
    return _prune_in_place(trace.copy())


def _prune_in_place(trace):
    """Remove the subsample sites from a trace this module made itself."""
    # (site_is_subsample, inlined: this runs on every site of every step)
    names = [
        name
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and type(site["fn"]).__name__ == "_Subsample"
    ]
    for name in names:
        trace.remove_node(name)
    return trace


def _site_plate_dims(site) -> Dict[int, object]:
    return {f.dim: f for f in site.get("cond_indep_stack", ()) or () if f.dim is not None}


def check_site_shape(site, max_plate_nesting: float) -> None:
    """Check a sample site's ``log_prob`` shape against the plates around it.

    Every batch dimension of the site must be either 1 or the size of the
    plate that owns that dimension, and no batch dimension may lie left of
    ``max_plate_nesting``. Raises ``ValueError`` naming the site otherwise.
    """
    log_prob = site.get("log_prob")
    if not isinstance(log_prob, torch.Tensor):
        return
    shape = log_prob.shape
    if not shape:
        return  # a scalar log-density fits any plates
    plates = _site_plate_dims(site)
    for i in range(1, len(shape) + 1):
        dim = -i
        size = shape[dim]
        frame = plates.get(dim)
        if frame is None:
            if size != 1:
                in_scope = ", ".join(
                    f"{f.name!r} (dim={f.dim}, size={f.size})" for f in _frames(site)
                )
                raise ValueError(
                    f"at site {site['name']!r}: batch dimension {dim} has size {size} but no "
                    f"plate in scope owns dim {dim} (log_prob shape {tuple(shape)}; plates in "
                    f"scope: {in_scope or 'none'}). Try one of: enclose the batched tensor in "
                    f"an ember.plate(..., dim={dim}) context, declare the dimension as an event "
                    "dimension with .to_event(...), or permute the data dimensions."
                )
        elif size not in (1, frame.size):
            raise ValueError(
                f"at site {site['name']!r}: batch dimension {dim} has size {size} but plate "
                f"{frame.name!r} at dim {dim} has size {frame.size} (log_prob shape "
                f"{tuple(shape)}). Make the sizes agree, e.g. by subsampling the data with "
                "the plate's indices."
            )
    if max_plate_nesting != math.inf and len(shape) > max_plate_nesting:
        left = len(shape) - int(max_plate_nesting)
        # dims left of max_plate_nesting are allowed only for a plate in scope
        # (the particle plate of vectorized particles)
        extra = [s for i, s in enumerate(shape[:left]) if s != 1 and i - len(shape) not in plates]
        if extra:
            raise ValueError(
                f"at site {site['name']!r}: log_prob shape {tuple(shape)} has more batch "
                f"dimensions than max_plate_nesting={max_plate_nesting}. Increase "
                "max_plate_nesting or move dimensions into the event shape with .to_event()."
            )


def check_model_guide_match(model_trace, guide_trace, max_plate_nesting: float = math.inf) -> None:
    """Check that every latent site of the model is sampled by the guide.

    A latent model site that the guide does not sample (and that is not marked
    for enumeration) raises ``ValueError`` naming the site; guide sites the
    model never uses give a warning, unless marked ``infer={"is_auxiliary": True}``.
    Observed sites in the model must not be sampled by the guide.
    """
    model_latents = {}
    for name, site in model_trace.nodes.items():
        if site["type"] == "sample" and not site["is_observed"]:
            model_latents[name] = site
    guide_latents = {}
    for name, site in guide_trace.nodes.items():
        if site["type"] == "sample" and not site["is_observed"]:
            guide_latents[name] = site
    for name, site in model_latents.items():
        if name in guide_latents:
            continue
        if site.get("infer", {}).get("enumerate"):
            continue
        raise ValueError(
            f"model sample site {name!r} is latent (not observed) but the guide does not "
            f"sample it. Add ember.sample({name!r}, ...) to the guide, observe it in the "
            f"model with obs=..., or mark it for enumeration with TraceEnum_ELBO. Guide sites: "
            f"{sorted(guide_latents) or 'none'}"
        )
    for name, site in guide_latents.items():
        if site.get("infer", {}).get("is_auxiliary"):
            continue
        model_site = model_trace.nodes.get(name)
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


def guess_max_plate_nesting(*fns_and_args) -> int:
    """Run functions once under a trace and return the deepest plate nesting used.

    Call as ``guess_max_plate_nesting((fn, args, kwargs), ...)``; ``fn`` may
    itself be a model replayed against a guide trace.
    """
    depth = 0
    for fn, args, kwargs in fns_and_args:
        with poutine.block():
            trace = poutine.trace(fn).get_trace(*args, **kwargs)
        depth = max(depth, _trace_plate_depth(trace))
    return depth


def _trace_plate_depth(trace) -> int:
    depth = 0
    for site in trace.nodes.values():
        if site["type"] != "sample":
            continue
        for f in _frames(site):
            if getattr(f, "vectorized", True) and f.dim is not None:
                depth = max(depth, -f.dim)
    return depth


def _guide_and_model_depth(model, guide, args, kwargs) -> int:
    with poutine.block():
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
            *args, **kwargs
        )
    return max(_trace_plate_depth(guide_trace), _trace_plate_depth(model_trace))


def vectorize(fn: Callable, size: int, dim: int, name: str = "num_particles_vectorized"):
    """Wrap ``fn`` in a plate of ``size`` at ``dim`` (used to draw particles in one pass)."""
    from ember.primitives import plate

    def wrapped(*args, **kwargs):
        with plate(name, size, dim=dim):
            return fn(*args, **kwargs)

    return wrapped


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


def get_importance_trace(
    graph_type: str,
    max_plate_nesting: float,
    model: Callable,
    guide: Callable,
    args: Tuple,
    kwargs: Dict,
    detach: bool = False,
    check_match: bool = True,
):
    """Run ``guide``, replay ``model`` against it and score both traces.

    Returns ``(model_trace, guide_trace)`` with ``log_prob`` (model) and
    ``score_parts`` (guide) computed at every sample site. With validation on,
    checks site shapes against plates and that model and guide agree.
    """
    guide_trace = trace_run(guide, args, kwargs, graph_type)
    if detach:
        guide_trace.detach_()
    model_trace = trace_run(model, args, kwargs, graph_type, ReplayMessenger(trace=guide_trace))
    _prune_in_place(guide_trace)
    _prune_in_place(model_trace)
    model_trace.compute_log_prob()
    guide_trace.compute_score_parts()
    if is_validation_enabled():
        if check_match:
            check_model_guide_match(model_trace, guide_trace, max_plate_nesting)
        for trace in (model_trace, guide_trace):
            for site in trace.nodes.values():
                if site["type"] == "sample":
                    lp = site.get("log_prob")
                    if type(lp) is torch.Tensor and not lp.dim():
                        continue  # a scalar log-density fits any plates
                    check_site_shape(site, max_plate_nesting)
    return model_trace, guide_trace
