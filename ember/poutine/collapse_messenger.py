"""CollapseMessenger: integrate conjugate latent variables out of a model exactly.

Inside ``poutine.collapse`` every latent sample site must be a conjugate prior
whose value is passed *directly* as a parameter of later observed sites (its
children). The latent is never sampled: its children are replaced by their
marginal likelihood, computed in closed form. The supported pairs
(:data:`SUPPORTED_PAIRS`) are

========================  =====================================  =====================
latent                    child (parameter)                      marginal of one child
========================  =====================================  =====================
``Beta``                  ``Bernoulli`` / ``Binomial`` (probs)   Bernoulli / BetaBinomial
``Gamma``                 ``Poisson`` (rate)                     GammaPoisson
``Gamma``                 ``Exponential`` (rate)                 (a factor)
``Normal``                ``Normal`` (loc)                       Normal, summed variance
``Dirichlet``             ``Categorical`` / ``Multinomial``      Categorical /
                          (probs)                                DirichletMultinomial
========================  =====================================  =====================

A latent may have several children, and children may sit in plates the latent is
not in (many observations sharing it); ``poutine.scale``/``mask`` inside the
context weight the children's observations. When the context closes, each latent
is replaced by one observed site:

* a latent with a single child of the same shape, all in plates that enclose
  the context, becomes the child's site with the marginal distribution of the
  table (e.g. ``obs ~ BetaBinomial``), so the child keeps its name;
* otherwise a ``factor`` named after the latent holds the exact log marginal
  likelihood of all its children (summed over the plates that end inside the
  context).

The marginal likelihood uses the identity ``log p(x) = log p(x | t) + log p(t)
- log p(t | x)``, which holds for every ``t``; it is evaluated at the posterior
mean ``t``, with the conjugate posterior from the children's sufficient
statistics.

The value a collapsed latent site returns is a placeholder tensor (the prior
mean): it may only be passed as a child's parameter. Anything else inside the
context raises a ValueError naming the site, and after the context closes the
placeholder holds NaN, so a stray use cannot go unnoticed.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional

import torch

import ember.distributions as dist
from ember.poutine.broadcast import broadcast_to_plates
from ember.poutine.messenger import Messenger
from ember.poutine.runtime import apply_stack, get_plates, new_message
from ember.poutine.subsample_messenger import site_is_subsample

__all__ = ["SUPPORTED_PAIRS", "CollapseMessenger"]

#: The conjugate pairs ``poutine.collapse`` integrates out: latent family -> children
#: (family, the parameter that takes the latent's value).
SUPPORTED_PAIRS = {
    "Beta": (("Bernoulli", "probs"), ("Binomial", "probs")),
    "Gamma": (("Poisson", "rate"), ("Exponential", "rate")),
    "Normal": (("Normal", "loc"),),
    "Dirichlet": (("Categorical", "probs"), ("Multinomial", "probs")),
}

_LATENT_TYPES = {
    "Beta": dist.Beta,
    "Gamma": dist.Gamma,
    "Normal": dist.Normal,
    "Dirichlet": dist.Dirichlet,
}
_CHILD_TYPES = {
    "Bernoulli": dist.Bernoulli,
    "Binomial": dist.Binomial,
    "Poisson": dist.Poisson,
    "Exponential": dist.Exponential,
    "Normal": dist.Normal,
    "Categorical": dist.Categorical,
    "Multinomial": dist.Multinomial,
}


def _pairs_text() -> str:
    return "; ".join(
        f"{latent} -> " + ", ".join(f"{c}({p}=latent)" for c, p in children)
        for latent, children in SUPPORTED_PAIRS.items()
    )


def _family(fn, types) -> Optional[str]:
    for name, cls in types.items():
        if isinstance(fn, cls):
            return name
    return None


def _unwrap(fn):
    """The distribution under ``Independent`` wrappers, and how many dims they reinterpret."""
    reinterpreted = 0
    while isinstance(fn, torch.distributions.Independent):
        reinterpreted += fn.reinterpreted_batch_ndims
        fn = fn.base_dist
    return fn, reinterpreted


def _storage(t) -> Optional[int]:
    if not isinstance(t, torch.Tensor) or t.numel() == 0:
        return None
    return t.untyped_storage().data_ptr()


def _sum_to(t: torch.Tensor, shape) -> torch.Tensor:
    """Sum ``t`` down to ``shape`` (over leading extra dims and dims of size 1 in ``shape``)."""
    shape = tuple(shape)
    extra = t.dim() - len(shape)
    if extra > 0:
        t = t.sum(tuple(range(extra)))
    dims = tuple(i for i, (n, m) in enumerate(zip(t.shape[-len(shape) :], shape)) if m == 1 != n)
    if dims:
        offset = t.dim() - len(shape)
        t = t.sum(tuple(offset + i for i in dims), keepdim=True)
    return torch.broadcast_to(t, shape)


class _Latent:
    __slots__ = ("name", "family", "fn", "reinterpreted", "value", "frames", "children")

    def __init__(self, name, family, fn, reinterpreted, value, frames):
        self.name = name
        self.family = family
        self.fn = fn
        self.reinterpreted = reinterpreted
        self.value = value
        self.frames = frames
        self.children: List[_Child] = []


class _Child:
    __slots__ = ("name", "family", "fn", "reinterpreted", "value", "weight", "frames", "infer")

    def __init__(self, name, family, fn, reinterpreted, value, weight, frames, infer):
        self.name = name
        self.family = family
        self.fn = fn
        self.reinterpreted = reinterpreted
        self.value = value
        self.weight = weight
        self.frames = frames
        self.infer = infer


class CollapseMessenger(Messenger):
    """Integrate the conjugate latent sites inside the context out of the model.

    Used as ``with poutine.collapse():`` around a conjugate prior and the
    observed sites that take its value as a parameter, or as
    ``poutine.collapse(model)``. The collapsed latent is not sampled and does
    not appear in traces; its observed children are replaced by their exact
    marginal likelihood. See :mod:`ember.poutine.collapse_messenger` for the
    supported pairs (:data:`SUPPORTED_PAIRS`) and what the trace contains.
    Anything else inside the context (a latent of another family, a chain of
    latents, an observed site that does not take a collapsed latent as its
    parameter) raises a ValueError naming the site.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember import poutine
        >>> def model():
        ...     with poutine.collapse():
        ...         p = ember.sample("p", dist.Beta(2.0, 3.0))
        ...         ember.sample("obs", dist.Binomial(10, p), obs=torch.tensor(4.0))
        >>> tr = poutine.trace(model).get_trace()
        >>> "p" in tr.nodes, type(tr.nodes["obs"]["fn"]).__name__
        (False, 'BetaBinomial')
        >>> expected = dist.BetaBinomial(2.0, 3.0, 10).log_prob(torch.tensor(4.0))
        >>> bool(torch.isclose(tr.log_prob_sum(), expected))
        True
    """

    def __init__(self):
        super().__init__()
        self._latents: Dict[str, _Latent] = {}
        self._by_storage: Dict[int, _Latent] = {}
        self._outer: tuple = ()

    def __enter__(self):
        self._outer = tuple(f for f in get_plates() if f.dim is not None)
        self._latents = {}
        self._by_storage = {}
        return super().__enter__()

    def __exit__(self, exc_type, exc_value, traceback):
        result = super().__exit__(exc_type, exc_value, traceback)
        latents, self._latents, self._by_storage = self._latents, {}, {}
        try:
            if exc_type is None:
                for latent in latents.values():
                    self._emit(latent)
        finally:
            with torch.no_grad():
                for latent in latents.values():
                    latent.value.fill_(math.nan)
        return result

    def _reset(self) -> None:
        self._latents = {}
        self._by_storage = {}

    # ------------------------------------------------------------- collecting sites
    def _pyro_sample(self, msg) -> None:
        if site_is_subsample(msg):  # a plate's subsample indices, not a model site
            return
        name = msg["name"]
        inner = tuple(msg["cond_indep_stack"])
        names = {f.name for f in inner}
        msg["cond_indep_stack"] = tuple(f for f in self._outer if f.name not in names) + inner
        broadcast_to_plates(msg)
        fn, reinterpreted = _unwrap(msg["fn"])
        parent = self._parent_of(name, fn)
        if msg["is_observed"]:
            if parent is None:
                raise ValueError(
                    f"poutine.collapse: observed site {name!r} does not take a collapsed latent "
                    "directly as its parameter; inside poutine.collapse every observed site must "
                    f"be a conjugate child of a collapsed latent. Supported pairs: {_pairs_text()}"
                )
            latent, family = parent
            weight = self._weight(msg)
            latent.children.append(
                _Child(
                    name,
                    family,
                    fn,
                    reinterpreted,
                    msg["value"],
                    weight,
                    msg["cond_indep_stack"],
                    msg["infer"],
                )
            )
        else:
            if parent is not None:
                raise ValueError(
                    f"poutine.collapse: latent site {name!r} takes the collapsed latent "
                    f"{parent[0].name!r} as a parameter; chains of collapsed latents are not "
                    f"supported (only latent -> observed pairs: {_pairs_text()})"
                )
            family = _family(fn, _LATENT_TYPES)
            if family is None:
                raise ValueError(
                    f"poutine.collapse: cannot collapse latent site {name!r} with distribution "
                    f"{type(fn).__name__}; supported pairs: {_pairs_text()}"
                )
            if self._weight(msg) is not None:
                raise ValueError(
                    f"poutine.collapse: latent site {name!r} is scaled or masked; collapsing a "
                    "scaled or masked prior is not supported (scale or mask its observations)"
                )
            for param in self._params(fn):
                key = _storage(param)
                if key is not None and key in self._by_storage:
                    raise ValueError(
                        f"poutine.collapse: latent site {name!r} takes the collapsed latent "
                        f"{self._by_storage[key].name!r} as a parameter; chains of collapsed "
                        f"latents are not supported (only latent -> observed pairs: "
                        f"{_pairs_text()})"
                    )
            value = self._placeholder(fn, family, len(self._latents))
            latent = _Latent(name, family, fn, reinterpreted, value, msg["cond_indep_stack"])
            self._latents[name] = latent
            self._by_storage[_storage(value)] = latent
            msg["value"] = value
        msg["done"] = True
        msg["stop"] = True

    @staticmethod
    def _placeholder(fn, family, index):
        """A fresh tensor in the latent's support (its own storage, so that parameters
        built from it can be recognized). For a Dirichlet, whose children normalize
        their ``probs`` into new tensors, a point unlike any a model would write by
        hand (a posterior mean after a fractional pseudo-count per category, different
        for the ``index``-th latent of the context), so that it is recognized by its
        value."""
        if family == "Dirichlet":
            c = fn.concentration.detach() + 0.5 / (1 + index)
            return c / c.sum(-1, keepdim=True)
        return fn.mean.detach().clone()

    @staticmethod
    def _params(fn):
        return [v for v in vars(fn).values() if isinstance(v, torch.Tensor)]

    def _parent_of(self, name, fn):
        """``(latent, child family)`` when ``fn`` takes a collapsed latent as its parameter."""
        if not self._by_storage:
            return None
        linked = {}
        for attr, v in vars(fn).items():
            if attr.startswith("_"):  # private aliases of public parameters
                continue
            key = _storage(v)
            if key is not None and key in self._by_storage:
                linked[attr] = self._by_storage[key]
        family = _family(fn, _CHILD_TYPES)
        if not linked and family in ("Categorical", "Multinomial"):
            latent = self._normalized_match(fn.probs)
            if latent is not None:
                linked["probs"] = latent
        if not linked:
            return None
        latents = {id(v): v for v in linked.values()}
        if len(latents) == 1:
            (latent,) = latents.values()
            for child_family, param in SUPPORTED_PAIRS[latent.family]:
                if family == child_family and set(linked) == {param}:
                    return latent, family
        raise ValueError(
            f"poutine.collapse: site {name!r} ({type(fn).__name__}) uses the collapsed latent(s) "
            f"{sorted(v.name for v in latents.values())} as {sorted(linked)}, which is not a "
            f"supported conjugate pair; supported pairs: {_pairs_text()}"
        )

    def _normalized_match(self, probs):
        """The Dirichlet latent whose placeholder ``probs`` is (after the normalization
        ``Categorical`` applies to its ``probs``, which makes a new tensor), if any."""
        found = []
        for latent in self._latents.values():
            if latent.family != "Dirichlet":
                continue
            value = latent.value
            normalized = value / value.sum(-1, keepdim=True)
            try:
                if torch.broadcast_shapes(normalized.shape, probs.shape) != probs.shape:
                    continue
            except RuntimeError:
                continue
            if torch.equal(probs, normalized.expand(probs.shape)):
                found.append(latent)
        if len(found) > 1:
            raise ValueError(
                "poutine.collapse: the probs of a Categorical/Multinomial site match the "
                f"collapsed Dirichlet latents {[v.name for v in found]} alike; pass the "
                "latent's value itself as probs"
            )
        return found[0] if found else None

    @staticmethod
    def _weight(msg):
        scale, mask = msg["scale"], msg["mask"]
        weight = None
        if not (isinstance(scale, (int, float)) and scale == 1):
            weight = torch.as_tensor(scale)
        if mask is not None:
            m = torch.as_tensor(mask, dtype=torch.get_default_dtype())
            weight = m if weight is None else weight * m
        return weight

    # ------------------------------------------------------------- the marginals
    def _emit(self, latent: _Latent) -> None:
        if not latent.children:
            raise ValueError(
                f"poutine.collapse: collapsed latent {latent.name!r} has no observed site that "
                "takes it as a parameter; nothing to collapse it into. Sample it outside "
                "poutine.collapse instead"
            )
        marginal = self._single_child_marginal(latent)
        if marginal is not None:
            child, fn = marginal
            msg = new_message(
                "sample", child.name, fn, value=child.value, is_observed=True, infer=child.infer
            )
            apply_stack(msg)
            return
        log_factor = self._log_marginal(latent)
        unit = dist.Unit(log_factor, validate_args=False)
        msg = new_message(
            "sample",
            latent.name,
            unit,
            value=unit.sample(),
            is_observed=True,
            infer={"is_auxiliary": True},
        )
        apply_stack(msg)

    def _single_child_marginal(self, latent: _Latent):
        """The child and its marginal distribution, when one closed-form site replaces both."""
        if len(latent.children) != 1:
            return None
        (child,) = latent.children
        outer = {f.name for f in self._outer}
        if any(f.name not in outer for f in latent.frames + child.frames):
            return None
        if child.weight is not None or child.reinterpreted or latent.reinterpreted:
            return None
        fn, base = latent.fn, child.fn
        if tuple(base.batch_shape) != tuple(fn.batch_shape):
            return None
        shape = base.batch_shape
        if child.family == "Bernoulli":
            a, b = fn.concentration1, fn.concentration0
            return child, dist.Bernoulli(probs=(a / (a + b)).expand(shape))
        if child.family == "Binomial":
            return child, dist.BetaBinomial(
                fn.concentration1.expand(shape), fn.concentration0.expand(shape), base.total_count
            )
        if child.family == "Poisson":
            return child, dist.GammaPoisson(fn.concentration.expand(shape), fn.rate.expand(shape))
        if child.family == "Normal":
            scale = (fn.scale.pow(2) + base.scale.pow(2)).sqrt()
            return child, dist.Normal(fn.loc.expand(shape), scale.expand(shape))
        if child.family == "Categorical":
            c = fn.concentration
            return child, dist.Categorical(
                probs=(c / c.sum(-1, keepdim=True)).expand(base.probs.shape)
            )
        if child.family == "Multinomial":
            c = fn.concentration.expand(base.probs.shape)
            return child, dist.DirichletMultinomial(c, base.total_count)
        return None  # Exponential: no named marginal here, use a factor

    def _log_marginal(self, latent: _Latent) -> torch.Tensor:
        """``log p(children)``, summed to the plates enclosing the context."""
        fn = latent.fn
        post = self._posterior(latent)
        point = post.mean
        logp = fn.log_prob(point) - post.log_prob(point)
        value_batch = logp.shape  # per latent element (Dirichlet: without its event dim)
        for child in latent.children:
            lp = self._child_at(child, point).log_prob(child.value)
            if child.weight is not None:
                lp = lp * child.weight
            logp = logp + _sum_to(lp, value_batch)
        # the latent's event dims, then every batch dim that is not an enclosing plate
        if latent.reinterpreted:
            logp = logp.sum(tuple(range(-latent.reinterpreted, 0)))
        keep = {f.dim for f in self._outer}
        drop = tuple(d for d in range(-logp.dim(), 0) if d not in keep)
        if drop:
            logp = logp.sum(drop, keepdim=True)
        nesting = max((-d for d in keep), default=0)
        while logp.dim() > nesting:
            logp = logp.squeeze(0)
        return logp

    @staticmethod
    def _child_at(child: _Child, point: torch.Tensor):
        """The child's distribution (without wrappers) with the latent's value ``point``."""
        base = child.fn
        family = child.family
        if family == "Bernoulli":
            return dist.Bernoulli(probs=point, validate_args=False)
        if family == "Binomial":
            return dist.Binomial(base.total_count, probs=point, validate_args=False)
        if family == "Poisson":
            return dist.Poisson(point, validate_args=False)
        if family == "Exponential":
            return dist.Exponential(point, validate_args=False)
        if family == "Normal":
            return dist.Normal(point, base.scale, validate_args=False)
        if family == "Categorical":
            return dist.Categorical(probs=point, validate_args=False)
        return dist.Multinomial(base.total_count, probs=point, validate_args=False)

    @staticmethod
    def _posterior(latent: _Latent):
        """The conjugate posterior of the latent given all its children."""
        fn = latent.fn
        shape = latent.value.shape
        if latent.family == "Dirichlet":
            conc = fn.concentration.expand(shape)
            for child in latent.children:
                base = child.fn
                if child.family == "Categorical":
                    k = base.probs.shape[-1]
                    counts = torch.nn.functional.one_hot(child.value.long(), k).to(conc.dtype)
                else:
                    counts = child.value
                counts = torch.broadcast_to(counts, base.probs.shape)
                if child.weight is not None:
                    counts = counts * child.weight.unsqueeze(-1)
                conc = conc + _sum_to(counts, shape)
            return dist.Dirichlet(conc, validate_args=False)
        stats = [0.0, 0.0]
        for child in latent.children:
            base, x = child.fn, child.value
            full = base.batch_shape
            if child.family == "Bernoulli":
                parts = (x, 1 - x)
            elif child.family == "Binomial":
                parts = (x, base.total_count - x)
            elif child.family == "Poisson":
                parts = (x, torch.ones((), dtype=x.dtype))
            elif child.family == "Exponential":
                parts = (torch.ones((), dtype=x.dtype), x)
            else:  # Normal: precision-weighted sum and total precision
                precision = base.scale.pow(-2)
                parts = (x * precision, precision)
            for i, part in enumerate(parts):
                part = torch.broadcast_to(torch.as_tensor(part), full)
                if child.weight is not None:
                    part = part * child.weight
                stats[i] = stats[i] + _sum_to(part, shape)
        if latent.family == "Beta":
            a = fn.concentration1 + stats[0]
            b = fn.concentration0 + stats[1]
            return dist.Beta(a, b, validate_args=False)
        if latent.family == "Gamma":
            return dist.Gamma(fn.concentration + stats[0], fn.rate + stats[1], validate_args=False)
        prior_precision = fn.scale.pow(-2)
        precision = prior_precision + stats[1]
        loc = (fn.loc * prior_precision + stats[0]) / precision
        return dist.Normal(loc, precision.rsqrt(), validate_args=False)
