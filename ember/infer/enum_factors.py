"""The enumeration factor layer: sample sites of a trace as packed log-factors.

An inference algorithm that sums enumerated discrete sites out of a model
(:class:`~ember.infer.traceenum_elbo.TraceEnum_ELBO`; MCMC with enumerated
sites; posterior sampling of enumerated sites) needs every sample site's
log-density as a :class:`~ember.ops.contract.LogFactor`: a tensor with one
named dim per plate it varies along and per enumerated site it depends on,
without the broadcasting dims of size 1. This module does that packing and
the rules that go with it:

* :func:`pack_log_prob` names the dims of a site's log-density tensor: plate
  dims by the plate's name, enumeration dims by the name of the site that owns
  them (recorded by :class:`~ember.poutine.enum_messenger.EnumMessenger` in
  ``infer["_enum_dims"]``), and reports a dim that neither explains;
* :func:`site_log_prob` computes a site's log-density, reading an enumerated
  Categorical's or Bernoulli's logits directly (:func:`support_log_prob`)
  when the site's value is still the support tensor the enumeration handler
  created, and a Delta's own point without a comparison;
* :func:`site_log_factor` applies the site's mask and scale and packs it;
* :func:`model_log_factors` turns a model trace into the factors, variable
  plates and variables to sum out that :func:`~ember.ops.contract.contract_tree`
  takes. The factor of an enumerated site itself is not masked (summed over
  its values it is 1 for every plate element), sites that depend on an
  enumerated site are masked inside the sum and scaled outside it.
"""

from __future__ import annotations

import functools
import math
from typing import Dict, FrozenSet, List, NamedTuple, Optional, Sequence

import torch

from ember.distributions.delta import Delta
from ember.distributions.util import scale_and_mask
from ember.ops.contract import LogFactor
from ember.poutine.enum_messenger import SUPPORT_VALUE_KEY
from ember.poutine.subsample_messenger import site_is_subsample

__all__ = [
    "ModelFactors",
    "dependent_site_factor",
    "enumerated_site_factor",
    "enumerated_dim",
    "is_enumerated",
    "is_scalar_scale",
    "model_log_factors",
    "monte_carlo_weight",
    "pack_log_prob",
    "plate_frames",
    "site_log_factor",
    "site_log_prob",
    "site_ordinal",
    "support_log_prob",
]


def plate_frames(site) -> list:
    """The vectorized plates around ``site`` (frames with a tensor dim), innermost last."""
    return [
        f
        for f in (site.get("cond_indep_stack") or ())
        if getattr(f, "vectorized", True) and f.dim is not None
    ]


def site_ordinal(site) -> FrozenSet[str]:
    """The names of the vectorized plates around ``site``.

    Example::

        >>> import ember, ember.distributions as dist
        >>> def model():
        ...     with ember.plate("a", 2, dim=-2), ember.plate("b", 3):
        ...         ember.sample("x", dist.Normal(0.0, 1.0))
        >>> sorted(site_ordinal(ember.poutine.trace(model).get_trace().nodes["x"]))
        ['a', 'b']
    """
    return frozenset(f.name for f in plate_frames(site))


def is_enumerated(site) -> bool:
    """Whether an enumeration handler gave ``site`` a tensor dim of its own."""
    infer = site.get("infer")
    return bool(infer) and "_enumerate_dim" in infer


def enumerated_dim(site) -> Optional[int]:
    """The tensor dim the enumeration handler placed ``site``'s values along, or None."""
    infer = site.get("infer")
    return infer.get("_enumerate_dim") if infer else None


def is_scalar_scale(scale) -> bool:
    """Whether ``scale`` (a number or a tensor) is one number for every element."""
    return not isinstance(scale, torch.Tensor) or scale.numel() == 1


def _fmt_frames(frames) -> str:
    return ", ".join(f"{f.name!r} (dim={f.dim}, size={f.size})" for f in frames) or "none"


def pack_log_prob(site, tensor: torch.Tensor, max_plate_nesting: int):
    """``(packed, dims, ordinal)``: ``tensor`` (of ``site``'s shape) with named dims.

    Dims of size 1 are squeezed; each remaining dim is named by the plate that
    owns it or by the enumerated site whose values lie along it; plates the
    tensor does not vary along are expanded, so that a factor counts each of
    their elements. A dim that no plate and no visible enumerated site
    explains is an error naming the site. The packing depends only on the
    shape, the plates and the visible enumeration dims, so it is worked out
    once per such signature and cached.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> def model():
        ...     with ember.plate("data", 3):
        ...         ember.sample("x", dist.Normal(0.0, 1.0), obs=torch.zeros(3))
        >>> site = ember.poutine.trace(model).get_trace().nodes["x"]
        >>> packed, dims, ordinal = pack_log_prob(site, torch.zeros(1, 3), 2)
        >>> packed.shape, dims, sorted(ordinal)
        (torch.Size([3]), ('data',), ['data'])
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
    """``(reshape sizes or None, expand sizes, dims, ordinal)`` for :func:`pack_log_prob`."""
    frames = plate_frames(site)
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
            if size != frame.size and frame.size is not None and frame.size >= 0:
                raise ValueError(
                    f"at site {site['name']!r}: invalid log_prob shape {tuple(shape)}: dim "
                    f"{pos} has size {size} but plate {frame.name!r} there has size "
                    f"{frame.size}"
                )
            dims.append(frame.name)
            present.add(pos)
        elif pos in enum_dims:
            dims.append(enum_dims[pos])
        elif pos >= -max_plate_nesting:
            raise ValueError(
                f"at site {site['name']!r}: invalid log_prob shape {tuple(shape)}: batch dim "
                f"{pos} has size {size} but no plate in scope owns it (plates: "
                f"{_fmt_frames(frames)}); wrap the site in an ember.plate(..., dim={pos}) or "
                "move the dim into the event shape with .to_event()"
            )
        else:
            raise ValueError(
                f"at site {site['name']!r}: invalid log_prob shape {tuple(shape)}: dim {pos}, "
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


def support_log_prob(fn, dim: int) -> Optional[torch.Tensor]:
    """``fn.log_prob`` of ``fn``'s own support placed along ``dim``, without a gather.

    For a (torch or ember) ``Categorical`` or ``Bernoulli`` this is its
    normalized logits moved to ``dim``; for other distributions None. Batch
    dims along which the parameters are only broadcast (expanded, e.g. by a
    plate) are computed once, not once per element: the result broadcasts
    along them instead.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.Categorical(torch.tensor([0.25, 0.75]))
        >>> support_log_prob(d, -2).exp()
        tensor([[0.2500],
                [0.7500]])
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
    logits = vars(fn).get("logits")  # computed already (torch computes it lazily from probs)
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


def site_log_prob(site) -> torch.Tensor:
    """The log-density of ``site``'s value under its distribution, unscaled and unmasked.

    Two shortcuts give exactly what ``site["fn"].log_prob(site["value"])`` gives:
    an enumerated Categorical or Bernoulli whose value is still the support
    tensor the enumeration handler made reads its logits
    (:func:`support_log_prob`); a Delta whose value is its own point (a MAP
    guide) returns its ``log_density`` without comparing.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember import poutine
        >>> def model():
        ...     ember.sample("z", dist.Bernoulli(0.25), infer={"enumerate": "parallel"})
        >>> tr = poutine.trace(poutine.enum(model, first_available_dim=-1)).get_trace()
        >>> site_log_prob(tr.nodes["z"]).exp()
        tensor([0.7500, 0.2500])
    """
    fn, value = site["fn"], site["value"]
    if type(fn) is Delta:
        own = _own_point_log_density(fn, value)
        if own is not None:
            return own
    infer = site.get("infer")
    if infer:
        support = infer.get(SUPPORT_VALUE_KEY)
        if support is not None and support is value:
            dim = infer["_enumerate_dim"]
            table = support_log_prob(fn, dim)
            # The tensor may have been written in place since (through .data or an alias,
            # unseen by its version counter), so the table's rows are picked by its values.
            if table is not None:
                if value.is_cpu:  # reading K values costs less than any kernel
                    if value.tolist() == _index_listing(value.shape):
                        return table
                elif not fn._validate_args:  # no host sync: pick rows by the values
                    return pick_support_rows(table, value, dim)
                elif torch.equal(  # validating: the values must lie in the support
                    value.reshape(-1),
                    torch.arange(value.numel(), dtype=value.dtype, device=value.device),
                ):
                    return table
    return fn.log_prob(value)


@functools.lru_cache(maxsize=64)
def _index_listing(shape: torch.Size) -> list:
    """``0, 1, ..., n-1`` laid out in ``shape`` as nested lists (what ``tolist`` gives)."""
    return torch.arange(shape.numel()).reshape(shape).tolist()


def pick_support_rows(table: torch.Tensor, value: torch.Tensor, dim: int) -> torch.Tensor:
    """The rows of ``table`` (``fn.log_prob`` of each value of ``fn``'s support, along
    ``dim``, see :func:`support_log_prob`) that the enumerated ``value`` holds.

    While ``value`` holds ``0, ..., K-1`` along ``dim`` this is ``table`` itself; after
    an in-place edit that permutes the values it is still ``fn.log_prob(value)``, with
    no comparison read back to the host. Values outside the support give what
    unvalidated input gives anywhere: no check (an index out of range raises).

    Example::

        >>> table = torch.tensor([[-0.1], [-2.0], [-3.0]])
        >>> pick_support_rows(table, torch.tensor([[2], [0], [1]]), -2).flatten()
        tensor([-3.0000, -0.1000, -2.0000])
    """
    flat = value.reshape(-1)
    if flat.is_floating_point():  # Bernoulli: rows 0 and 1
        rows = torch.where(
            flat.reshape(value.shape) != 0, table.narrow(dim, 1, 1), table.narrow(dim, 0, 1)
        )
        return rows
    return table.index_select(dim, flat)


def _own_point_log_density(fn, value):
    """For a Delta whose ``value`` is its own point (same memory), its ``log_density``.

    That is what ``fn.log_prob(value)`` returns there, without the comparison
    (except for a NaN point, which argument validation rejects: the loss is NaN
    either way).
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


def site_log_factor(
    site,
    max_plate_nesting: int,
    log_prob: Optional[torch.Tensor] = None,
    mask: bool = True,
    scale: bool = True,
) -> LogFactor:
    """``site``'s log-density as a packed :class:`~ember.ops.contract.LogFactor`.

    :param log_prob: the log-density to pack (default: :func:`site_log_prob`).
    :param mask: whether to zero the entries the site's mask (``poutine.mask``)
        hides.
    :param scale: whether the factor carries the site's scale (``poutine.scale``,
        subsampling); a per-element scale is multiplied into the tensor.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> def model():
        ...     with ember.plate("data", 4, subsample_size=2):
        ...         ember.sample("x", dist.Normal(0.0, 1.0), obs=torch.zeros(2))
        >>> site = ember.poutine.trace(model).get_trace().nodes["x"]
        >>> f = site_log_factor(site, max_plate_nesting=1)
        >>> f.dims, f.scale, f.name
        (('data',), 2.0, 'x')
    """
    if log_prob is None:
        log_prob = site_log_prob(site)
    if mask:
        site_mask = site.get("mask")
        if site_mask is not None:
            log_prob = scale_and_mask(log_prob, mask=site_mask)
    if not isinstance(log_prob, torch.Tensor):
        log_prob = torch.as_tensor(log_prob, dtype=torch.get_default_dtype())
    factor_scale = 1.0
    if scale:
        factor_scale = site.get("scale", 1.0)
        if isinstance(factor_scale, torch.Tensor) and factor_scale.numel() != 1:
            log_prob, factor_scale = log_prob * factor_scale, 1.0  # per element: fold it in
    tensor, dims, ordinal = pack_log_prob(site, log_prob, max_plate_nesting)
    return LogFactor(tensor, dims, ordinal, site["name"], factor_scale)


def monte_carlo_weight(log_prob: torch.Tensor, num_samples: int, reparameterized: bool):
    """The log-weight of each of ``num_samples`` draws of a Monte Carlo "enumerated" site.

    Every draw weighs ``1 / num_samples`` (so summing over the draws averages
    them); unless the draws are reparameterized the weight also carries the
    score function ``log_prob - log_prob.detach()`` (zero in value), whose
    gradient makes the average's gradient unbiased.
    """
    if reparameterized:
        return torch.full_like(log_prob, -math.log(num_samples))
    return log_prob - log_prob.detach() - math.log(num_samples)


class ModelFactors(NamedTuple):
    """A model trace's sites as log-factors ready for contraction.

    * ``factors``: one :class:`~ember.ops.contract.LogFactor` per sample site;
    * ``var_ordinals``: each variable (model-enumerated site, and each site
      passed as ``kept``) to the plates it lives in;
    * ``sum_vars``: the model-enumerated sites, to be summed out.
    """

    factors: List[LogFactor]
    var_ordinals: Dict[str, FrozenSet[str]]
    sum_vars: FrozenSet[str]


def model_log_factors(
    trace,
    max_plate_nesting: int,
    kept: Optional[Dict[str, FrozenSet[str]]] = None,
    sites: Optional[Sequence] = None,
    summed: Sequence[str] = (),
) -> ModelFactors:
    """The log-factors of a model trace whose enumerated sites are to be summed out.

    Every sample site gives one factor. A site enumerated in the model (given
    a dim by :class:`~ember.poutine.enum_messenger.EnumMessenger`, and not in
    ``kept``) is a variable to sum out: its own factor ignores its mask (over
    its values it sums to one for every plate element, so masked elements add
    nothing) and Monte Carlo draws (``num_samples``) are weighted by their
    average. A site that depends on such a variable is masked inside the sum and
    scaled outside it: its scale must be one number (shared by every factor
    summed together, which :func:`~ember.ops.contract.contract_tree` checks).
    Any other site is masked and scaled as usual.

    :param kept: variables that are not summed out (e.g. a guide's enumerated
        sites replayed into the model), to the plates they live in.
    :param sites: the sample sites to use (default: every sample site of the
        trace in order, except the subsample sites of plates).
    :param summed: further sites to treat as variables summed out, although no
        handler gave them a dim (e.g. sites enumerated by re-running the model).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember import poutine
        >>> from ember.ops.contract import contract_to_scalar
        >>> def model():
        ...     z = ember.sample("z", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})
        ...     ember.sample("x", dist.Normal(2.0 * z, 1.0), obs=torch.tensor(1.0))
        >>> tr = poutine.trace(poutine.enum(model, first_available_dim=-1)).get_trace()
        >>> mf = model_log_factors(tr, max_plate_nesting=0)
        >>> log_z = contract_to_scalar(mf.factors, mf.var_ordinals)  # log N(1; 0, 1), by symmetry
        >>> sorted(mf.sum_vars), round(float(log_z), 4)
        (['z'], -1.4189)
    """
    kept = kept or {}
    if sites is None:
        sites = [
            s for s in trace.nodes.values() if s["type"] == "sample" and not site_is_subsample(s)
        ]
    var_ordinals: Dict[str, FrozenSet[str]] = dict(kept)
    summed = set(summed)
    for site in sites:
        infer = site["infer"]
        if infer and "_enumerate_dim" in infer and site["name"] not in kept:
            summed.add(site["name"])
    factors: List[LogFactor] = []
    for site in sites:
        name = site["name"]
        if name in summed:
            f = enumerated_site_factor(site, max_plate_nesting)
            var_ordinals[name] = f.ordinal
        else:
            scale = site["scale"] if "scale" in site else 1.0
            if isinstance(scale, torch.Tensor) and scale.numel() != 1:
                f = dependent_site_factor(site, max_plate_nesting, summed)
            else:  # the common case, inline: masked, scale kept apart
                log_prob = site_log_prob(site)
                site_mask = site.get("mask")
                if site_mask is not None:
                    log_prob = scale_and_mask(log_prob, mask=site_mask)
                if not isinstance(log_prob, torch.Tensor):
                    log_prob = torch.as_tensor(log_prob, dtype=torch.get_default_dtype())
                tensor, dims, ordinal = pack_log_prob(site, log_prob, max_plate_nesting)
                f = LogFactor(tensor, dims, ordinal, name, scale)
        factors.append(f)
    return ModelFactors(factors, var_ordinals, frozenset(summed))


def enumerated_site_factor(site, max_plate_nesting: int) -> LogFactor:
    """The factor of a site summed out by enumeration: unmasked, carrying its (scalar) scale."""
    log_prob = site_log_prob(site)
    num_samples = (site.get("infer") or {}).get("_enum_num_samples")
    if num_samples is not None:
        reparameterized = bool(site["fn"].has_rsample)  # the draws were rsampled then
        log_prob = monte_carlo_weight(log_prob, num_samples, reparameterized)
    scale = site.get("scale", 1.0)
    if not is_scalar_scale(scale):
        raise ValueError(
            f"site {site['name']!r} is enumerated and has a scale with "
            f"{scale.numel()} elements; enumeration only supports one scale per site "
            "(poutine.scale with a number, or subsampling)"
        )
    tensor, dims, ordinal = pack_log_prob(site, log_prob, max_plate_nesting)
    return LogFactor(tensor, dims, ordinal, site["name"], scale)


def dependent_site_factor(site, max_plate_nesting: int, summed) -> LogFactor:
    """The masked factor of a site that is not summed out itself.

    If it depends on one of the variables ``summed``, its scale stays outside
    (and must be one number); otherwise a per-element scale is folded in.
    """
    scale = site.get("scale", 1.0)
    if not isinstance(scale, torch.Tensor) or scale.numel() == 1:
        return site_log_factor(site, max_plate_nesting)
    f = site_log_factor(site, max_plate_nesting, scale=False)
    if any(d in summed for d in f.dims):
        raise ValueError(
            f"site {site['name']!r} depends on enumerated site(s) "
            f"{sorted(d for d in f.dims if d in summed)} and has a scale with "
            f"{scale.numel()} elements; enumeration only supports one scale per site "
            "(poutine.scale with a number, or subsampling)"
        )
    return site_log_factor(site, max_plate_nesting)
