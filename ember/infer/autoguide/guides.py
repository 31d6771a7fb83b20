"""Automatic guides: variational families built from a model's structure.

An automatic guide is a :class:`~ember.nn.PyroModule` made from a model. The
first time it is called it runs the model once (the *prototype* run, with the
latent sites set by an initialization strategy and every other effect hidden)
to learn the latent sites, their shapes, supports and plates, and creates its
parameters from that. Calling it then samples every latent site of the model
and returns ``{site name: value}``; it takes the model's arguments.

* :class:`AutoDelta` (MAP), :class:`AutoNormal` (mean-field normal, one
  ``loc``/``scale`` per site): per-site guides whose local latents inside
  plates get batched parameters, subsampled with the plate.
* :class:`AutoContinuous` and its subclasses :class:`AutoDiagonalNormal`,
  :class:`AutoMultivariateNormal`, :class:`AutoLowRankMultivariateNormal`,
  :class:`AutoNormalizingFlow`, :class:`AutoIAFNormal` and
  :class:`AutoLaplaceApproximation`: one joint distribution over all latents,
  flattened into one unconstrained vector.
* :class:`AutoDiscreteParallel`: discrete latents, enumerated in parallel.
* :class:`AutoGuideList` combines guides of parts of the model (each built
  from the model under ``poutine.block``); :class:`AutoCallable` wraps a
  hand-written guide for it.

Constrained latents are guided in the unconstrained space and mapped onto
their support with ``biject_to``; the guide's site is a ``Delta`` carrying the
log-Jacobian of that map, so densities are exact.

Example::

    >>> import torch, ember, ember.distributions as dist
    >>> from ember.infer import SVI, Trace_ELBO
    >>> from ember.infer.autoguide import AutoNormal
    >>> from ember.optim import Adam
    >>> ember.clear_param_store(); ember.set_rng_seed(0)
    >>> def model(data):
    ...     scale = ember.sample("scale", dist.LogNormal(0.0, 1.0))
    ...     with ember.plate("data", len(data)):
    ...         ember.sample("obs", dist.Normal(0.0, scale), obs=data)
    >>> guide = AutoNormal(model)
    >>> svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
    >>> _ = svi.run(300, 2.0 * torch.randn(200), progress=False)
    >>> sorted(guide.median())
    ['scale']
    >>> bool(1.5 < guide.median()["scale"] < 2.5)
    True
"""

from __future__ import annotations

import functools
import warnings
import weakref
from contextlib import ExitStack
from typing import Callable, Dict, Optional, Sequence

import torch
from torch import nn
from torch.distributions import biject_to
from torch.distributions.transforms import Transform

from ember import poutine
from ember.distributions import constraints
from ember.distributions.delta import Delta
from ember.distributions.torch import (
    Bernoulli,
    Categorical,
    LowRankMultivariateNormal,
    MultivariateNormal,
    Normal,
    OneHotCategorical,
    TransformedDistribution,
)
from ember.distributions.transforms import AffineTransform, affine_autoregressive, iterated
from ember.distributions.util import eye_like, sum_rightmost
from ember.infer.autoguide.initialization import InitMessenger, init_to_feasible, init_to_median
from ember.infer.autoguide.utils import (
    check_init_scale,
    deep_getattr,
    deep_setattr,
    helpful_support_errors,
    product,
    site_frames,
)
from ember.infer.enum import config_enumerate
from ember.nn.module import PyroModule, PyroParam
from ember.ops.tensor_utils import periodic_repeat
from ember.poutine.runtime import get_mask
from ember.poutine.subsample_messenger import site_is_subsample
from ember.primitives import plate, sample

__all__ = [
    "AutoCallable",
    "AutoContinuous",
    "AutoDelta",
    "AutoDiagonalNormal",
    "AutoDiscreteParallel",
    "AutoGuide",
    "AutoGuideList",
    "AutoIAFNormal",
    "AutoLaplaceApproximation",
    "AutoLowRankMultivariateNormal",
    "AutoMultivariateNormal",
    "AutoNormal",
    "AutoNormalizingFlow",
    "prototype_hide_fn",
]


def prototype_hide_fn(msg) -> bool:
    """Whether a message is hidden from the prototype trace: everything except
    latent (unobserved, non-subsample) sample sites."""
    return msg["type"] != "sample" or msg["is_observed"] or site_is_subsample(msg)


def _no_median(*args, **kwargs) -> dict:
    return {}


class AutoGuide(PyroModule):
    """Base class of the automatic guides.

    :param model: the model (a callable with ember primitives, e.g. a
        :class:`~ember.nn.PyroModule`); the guide takes the same arguments.
    :param create_plates: optional function of the model's arguments returning
        a ``plate`` (or several) for the guide to use instead of making its own:
        for data subsampling, it gives the plate the subsample indices the model
        uses. Plates it does not return are made as the model's prototype run
        declared them.

    A subclass implements :meth:`forward` (sample every latent it guides and
    return ``{name: value}``) and usually ``_setup_prototype`` (create its
    parameters from :attr:`prototype_trace`), :meth:`median` and
    :meth:`quantiles`.

    Pickling (and ``torch.save``) keeps the parameters and the prototype but
    not the model (models are often closures): an unpickled guide samples,
    gives medians and quantiles, but cannot be rebuilt from its model.
    """

    def __init__(self, model: Callable, *, create_plates: Optional[Callable] = None):
        super().__init__(name=type(self).__name__)
        if not callable(model):
            raise TypeError(f"{type(self).__name__}: model must be callable, got {model!r}")
        self.master = None  # the root AutoGuideList, as a weak reference
        self._model = (model,)  # a tuple, so a PyroModule model is not a sub-module
        self.create_plates = create_plates
        self.prototype_trace = None
        self._prototype_frames = {}

    @property
    def model(self) -> Callable:
        """The model this guide was made for (as wrapped by the guide, e.g. with
        its initialization strategy)."""
        return self._model[0]

    def __getstate__(self):
        state = super().__getstate__().copy()
        state["_model"] = (None,)
        state["master"] = None
        state.pop("plates", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        root = weakref.ref(self)
        for _, mod in self.named_modules():
            if mod is not self and isinstance(mod, AutoGuide):
                mod._update_master(root)

    def _update_master(self, master_ref) -> None:
        self.master = master_ref
        for _, mod in self.named_modules():
            if mod is not self and isinstance(mod, AutoGuide):
                mod.master = master_ref

    def __setattr__(self, name, value):
        if isinstance(value, AutoGuide):
            master = self.__dict__.get("master")
            value._update_master(weakref.ref(self) if master is None else master)
        super().__setattr__(name, value)

    def call(self, *args, **kwargs) -> tuple:
        """The guide's sample as a tuple of values, ordered by site name (what
        ``torch.jit.trace_module`` can trace, unlike a dict)."""
        result = self(*args, **kwargs)
        # a point mass may return its parameter itself: give a plain tensor (a view) instead
        return tuple(
            v.view_as(v) if isinstance(v, nn.Parameter) else v for _, v in sorted(result.items())
        )

    def sample_latent(self, *args, **kwargs):
        """Sample the guide's joint latent (for guides that have one)."""
        raise NotImplementedError(f"{type(self).__name__} has no joint latent to sample")

    # ------------------------------------------------------------- prototype
    _prototype_hide_fn = staticmethod(prototype_hide_fn)

    def _setup_prototype(self, *args, **kwargs) -> None:
        """Run the model once to record its latent sites in :attr:`prototype_trace`."""
        model = poutine.block(self.model, hide_fn=self._prototype_hide_fn)
        self.prototype_trace = poutine.block(poutine.trace(model).get_trace)(*args, **kwargs)
        if self.master is not None:
            self.master().check_part_prototype(self.prototype_trace)
        self._prototype_frames = {}
        for _, site in self.prototype_trace.iter_stochastic_nodes():
            for frame in site_frames(site, type(self).__name__):
                self._prototype_frames[frame.name] = frame
        if not any(True for _ in self.prototype_trace.iter_stochastic_nodes()):
            self._no_latents()

    def _no_latents(self) -> None:
        """Called by ``_setup_prototype`` when the model has no latent site."""

    def _prototype_sites(self):
        return self.prototype_trace.iter_stochastic_nodes()

    def _create_plates(self, *args, **kwargs) -> Dict[str, plate]:
        """The plates of this call, by name: those of ``create_plates`` and one for
        every other plate of the prototype (the root guide's, for a part of a list)."""
        if self.master is None:
            if self.create_plates is None:
                plates = {}
            else:
                made = self.create_plates(*args, **kwargs)
                if isinstance(made, plate):
                    made = [made]
                made = list(made)
                for p in made:
                    if not isinstance(p, plate):
                        raise TypeError(
                            f"{type(self).__name__}: create_plates() must return ember.plate "
                            f"objects, got {type(p).__name__}"
                        )
                plates = {p.name: p for p in made}
            for name, frame in sorted(self._prototype_frames.items()):
                if name not in plates:
                    full_size = frame.full_size or frame.size
                    plates[name] = plate(name, full_size, dim=frame.dim, subsample_size=frame.size)
        else:
            if self.create_plates is not None:
                raise ValueError(
                    f"{type(self).__name__}: create_plates belongs to the root AutoGuideList, "
                    "not to one of its parts"
                )
            plates = self.master().plates
        self.plates = plates
        return plates

    def median(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        """The posterior median of each latent site, ``{name: tensor}``."""
        raise NotImplementedError(f"{type(self).__name__} does not compute medians")

    def quantiles(self, quantiles, *args, **kwargs) -> Dict[str, torch.Tensor]:
        """The posterior quantiles of each latent site, ``{name: tensor}`` with the
        quantiles along the first dim."""
        raise NotImplementedError(f"{type(self).__name__} does not compute quantiles")


def _enter_plates(stack: ExitStack, plates, frames) -> None:
    for frame in frames:
        stack.enter_context(plates[frame.name])


def _delta_site(name, transform, unconstrained, event_dim):
    """Sample site ``name`` as ``transform(unconstrained)`` with the log-Jacobian of the
    inverse map as its density, so ``log q`` of the constrained value is exact."""
    value = transform(unconstrained)
    if transform is _IDENTITY or get_mask() is False:
        log_density = 0.0
    else:
        log_density = transform.inv.log_abs_det_jacobian(value, unconstrained)
        log_density = sum_rightmost(log_density, log_density.dim() - value.dim() + event_dim)
    return sample(name, Delta(value, log_density=log_density, event_dim=event_dim))


_IDENTITY = biject_to(constraints.real)


def _site_transform(site):
    transform = biject_to(site["fn"].support)
    if transform == _IDENTITY:
        return _IDENTITY
    return transform


class AutoGuideList(AutoGuide, nn.ModuleList):
    """A guide made of guides for parts of a model, each built from the model
    under ``poutine.block`` so that no two parts guide the same site.

    Parts are added with :meth:`append` (a callable that is not an
    :class:`AutoGuide` is wrapped in :class:`AutoCallable`) or set as
    attributes. The list creates the plates all parts share.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember import poutine
        >>> from ember.infer.autoguide import AutoDelta, AutoGuideList, AutoNormal
        >>> def model():
        ...     ember.sample("a", dist.Normal(0.0, 1.0))
        ...     ember.sample("b", dist.LogNormal(0.0, 1.0))
        >>> guide = AutoGuideList(model)
        >>> guide.append(AutoDelta(poutine.block(model, expose=["a"])))
        >>> guide.append(AutoNormal(poutine.block(model, hide=["a"])))
        >>> sorted(guide())
        ['a', 'b']
    """

    def check_part_prototype(self, part_trace) -> None:
        """Check that a part's prototype sites agree with this guide's prototype."""
        for name, part_site in part_trace.iter_stochastic_nodes():
            site = self.prototype_trace.nodes.get(name)
            if site is None:
                raise ValueError(
                    f"a part of {type(self).__name__} guides site {name!r}, which the "
                    "model given to the list does not sample"
                )
            ours, theirs = site["fn"], part_site["fn"]
            if (
                ours.batch_shape != theirs.batch_shape
                or ours.event_shape != theirs.event_shape
                or site["value"].shape != part_site["value"].shape
            ):
                raise ValueError(
                    f"site {name!r} has different shapes in a part of {type(self).__name__} "
                    f"(batch {tuple(theirs.batch_shape)}, event {tuple(theirs.event_shape)}) "
                    f"and in the list's model (batch {tuple(ours.batch_shape)}, event "
                    f"{tuple(ours.event_shape)}); build the parts from the same model"
                )

    def append(self, part) -> None:
        """Add a guide for part of the model (an :class:`AutoGuide` or a callable)."""
        if not isinstance(part, AutoGuide):
            if not callable(part):
                raise TypeError(f"AutoGuideList.append: expected a guide, got {part!r}")
            part = AutoCallable(self.model, part)
        if part.master is not None:
            raise RuntimeError(
                f"The module `{part._pyro_name}` is already added to an AutoGuideList"
            )
        setattr(self, str(len(self)), part)

    def add(self, part) -> None:
        """Deprecated name of :meth:`append`."""
        warnings.warn(
            "AutoGuideList.add is deprecated; use .append", DeprecationWarning, stacklevel=2
        )
        self.append(part)

    def forward(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        self._create_plates(*args, **kwargs)
        result = {}
        for part in self:
            result.update(part(*args, **kwargs))
        return result

    def median(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        """The medians of all parts."""
        result = {}
        for part in self:
            result.update(part.median(*args, **kwargs))
        return result

    def quantiles(self, quantiles, *args, **kwargs) -> Dict[str, torch.Tensor]:
        """The quantiles of all parts."""
        result = {}
        for part in self:
            result.update(part.quantiles(quantiles, *args, **kwargs))
        return result


class AutoCallable(AutoGuide):
    """An :class:`AutoGuide` wrapping a hand-written guide (for :class:`AutoGuideList`).

    :param model: the model.
    :param guide: the guide function for part of the model; its return value
        (a dict of sampled values, or None) is what calling this returns.
    :param median: optional function of the model's arguments returning
        ``{name: median}`` for the sites ``guide`` samples.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> def model():
        ...     ember.sample("x", dist.Normal(0.0, 1.0))
        >>> def guide():
        ...     return {"x": ember.sample("x", dist.Delta(torch.tensor(0.3)))}
        >>> AutoCallable(model, guide, median=lambda: {"x": torch.tensor(0.3)}).median()
        {'x': tensor(0.3000)}
    """

    def __init__(self, model: Callable, guide: Callable, median: Callable = _no_median):
        super().__init__(model)
        self._guide = guide
        self.median = median

    def forward(self, *args, **kwargs):
        result = self._guide(*args, **kwargs)
        return {} if result is None else result


class AutoDelta(AutoGuide):
    """A MAP guide: each latent site is a point mass at a learned value (in the
    constrained space; its parameter ``<site name>`` has the site's support as
    its constraint).

    :param model: the model.
    :param init_loc_fn: the initialization strategy (see
        :mod:`~ember.infer.autoguide.initialization`).
    :param create_plates: see :class:`AutoGuide`.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer.autoguide import AutoDelta
        >>> def model():
        ...     ember.sample("rate", dist.Gamma(2.0, 1.0))
        >>> guide = AutoDelta(model)
        >>> guide()["rate"].shape, guide.rate.detach() > 0
        (torch.Size([]), tensor(True))
    """

    def __init__(self, model, init_loc_fn=init_to_median, *, create_plates=None):
        self.init_loc_fn = init_loc_fn
        super().__init__(InitMessenger(init_loc_fn)(model), create_plates=create_plates)

    def _setup_prototype(self, *args, **kwargs):
        super()._setup_prototype(*args, **kwargs)
        self._sites = []
        for name, site in self._prototype_sites():
            fn = site["fn"]
            event_dim = fn.event_dim
            value = site["value"].detach()
            frames = site_frames(site, type(self).__name__)
            for frame in frames:
                full_size = frame.full_size or frame.size
                if full_size != frame.size:  # subsampled: one value per full-size element
                    value = periodic_repeat(value, full_size, frame.dim - event_dim).contiguous()
            with helpful_support_errors(site):
                deep_setattr(self, name, PyroParam(value, fn.support, event_dim))
            self._sites.append((name, event_dim, frames))

    def forward(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        plates = self._create_plates(*args, **kwargs)
        result = {}
        for name, event_dim, frames in self._sites:
            with ExitStack() as stack:
                _enter_plates(stack, plates, frames)
                value = deep_getattr(self, name)
                result[name] = sample(name, Delta(value, event_dim=event_dim))
        return result

    @torch.no_grad()
    def median(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        """The point estimates (the guide's sample, detached)."""
        return {k: v.detach() for k, v in self(*args, **kwargs).items()}


class AutoNormal(AutoGuide):
    """A mean-field guide: each latent site is an independent normal in the
    unconstrained space (parameters ``locs.<site>`` and ``scales.<site>``),
    mapped onto the site's support.

    Sites inside plates get one ``loc``/``scale`` per plate element (the full
    plate size, subsampled with the plate), so local latents are amortized by
    nothing but their own parameters. The guide samples an auxiliary site
    ``<site>_unconstrained`` and the site itself as a ``Delta`` with the
    log-Jacobian, which :class:`~ember.infer.TraceMeanField_ELBO` treats exactly.

    :param model: the model.
    :param init_loc_fn: the initialization strategy for the locations.
    :param init_scale: the initial scale (unconstrained space) of every site.
    :param create_plates: see :class:`AutoGuide`.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer.autoguide import AutoNormal
        >>> def model():
        ...     with ember.plate("groups", 3):
        ...         ember.sample("theta", dist.LogNormal(0.0, 1.0))
        >>> guide = AutoNormal(model, init_scale=0.05)
        >>> guide()["theta"].shape, guide.locs.theta.shape, round(guide.scales.theta[0].item(), 6)
        (torch.Size([3]), torch.Size([3]), 0.05)
    """

    scale_constraint = constraints.softplus_positive

    def __init__(
        self, model, *, init_loc_fn=init_to_feasible, init_scale: float = 0.1, create_plates=None
    ):
        self.init_loc_fn = init_loc_fn
        self._init_scale = check_init_scale(init_scale)
        super().__init__(InitMessenger(init_loc_fn)(model), create_plates=create_plates)

    def _setup_prototype(self, *args, **kwargs):
        super()._setup_prototype(*args, **kwargs)
        self._event_dims = {}
        self._sites = []
        self.locs = PyroModule()
        self.scales = PyroModule()
        for name, site in self._prototype_sites():
            with helpful_support_errors(site):
                transform = _site_transform(site)
                init_loc = transform.inv(site["value"].detach()).detach()
            fn_event_dim = site["fn"].event_dim
            event_dim = fn_event_dim + init_loc.dim() - site["value"].dim()
            self._event_dims[name] = event_dim
            frames = site_frames(site, type(self).__name__)
            for frame in frames:
                full_size = frame.full_size or frame.size
                if full_size != frame.size:
                    init_loc = periodic_repeat(init_loc, full_size, frame.dim - event_dim)
                    init_loc = init_loc.contiguous()
            init_scale = torch.full_like(init_loc, self._init_scale)
            deep_setattr(self.locs, name, PyroParam(init_loc, constraints.real, event_dim))
            deep_setattr(self.scales, name, PyroParam(init_scale, self.scale_constraint, event_dim))
            self._sites.append((name, transform, event_dim, fn_event_dim, frames))

    def _get_loc_and_scale(self, name: str):
        return deep_getattr(self.locs, name), deep_getattr(self.scales, name)

    def forward(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        plates = self._create_plates(*args, **kwargs)
        result = {}
        locs, scales = self.locs, self.scales
        for name, transform, event_dim, fn_event_dim, frames in self._sites:
            with ExitStack() as stack:
                _enter_plates(stack, plates, frames)
                loc = deep_getattr(locs, name)
                scale = deep_getattr(scales, name)
                unconstrained = sample(
                    name + "_unconstrained",
                    Normal(loc, scale).to_event(event_dim),
                    infer={"is_auxiliary": True},
                )
                result[name] = _delta_site(name, transform, unconstrained, fn_event_dim)
        return result

    @torch.no_grad()
    def median(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        """``biject_to(support)(loc)`` of each site (full plate size)."""
        result = {}
        for name, transform, *_ in self._sites:
            loc = deep_getattr(self.locs, name)
            value = transform(loc)
            result[name] = value.clone() if value is loc else value
        return result

    @torch.no_grad()
    def quantiles(self, quantiles, *args, **kwargs) -> Dict[str, torch.Tensor]:
        """The quantiles of each site's normal, mapped onto its support (quantiles first).

        Example::

            >>> import ember, ember.distributions as dist
            >>> from ember.infer.autoguide import AutoNormal
            >>> guide = AutoNormal(lambda: ember.sample("x", dist.Normal(0.0, 1.0)), init_scale=1.0)
            >>> _ = guide()
            >>> guide.quantiles([0.5, 0.8413447])["x"]
            tensor([0.0000, 1.0000])
        """
        result = {}
        for name, transform, *_ in self._sites:
            loc, scale = self._get_loc_and_scale(name)
            q = torch.as_tensor(quantiles, dtype=loc.dtype, device=loc.device)
            q = q.reshape((-1,) + (1,) * loc.dim())
            result[name] = transform(Normal(loc, scale).icdf(q))
        return result


class LowerCholeskyAffine(Transform):
    """``x -> loc + scale_tril @ x`` for vectors ``x`` (a bijection of ``R^n``).

    Example::

        >>> import torch
        >>> t = LowerCholeskyAffine(torch.zeros(2), torch.tensor([[2.0, 0.0], [1.0, 1.0]]))
        >>> t(torch.tensor([1.0, 1.0])), t.log_abs_det_jacobian(None, torch.zeros(2))
        (tensor([2., 2.]), tensor(0.6931))
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, loc: torch.Tensor, scale_tril: torch.Tensor, cache_size: int = 0):
        super().__init__(cache_size=cache_size)
        self.loc = loc
        self.scale_tril = scale_tril

    def _call(self, x):
        return self.loc + (self.scale_tril @ x.unsqueeze(-1)).squeeze(-1)

    def _inverse(self, y):
        centred = (y - self.loc).unsqueeze(-1)
        return torch.linalg.solve_triangular(self.scale_tril, centred, upper=False).squeeze(-1)

    def log_abs_det_jacobian(self, x, y):
        logdet = self.scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        return logdet.expand(y.shape[:-1])


class AutoContinuous(AutoGuide):
    """Base class of the guides with one joint distribution over all latents.

    Every latent is mapped to the unconstrained space with ``biject_to`` of its
    support and flattened; the vectors are concatenated into one latent of size
    :attr:`latent_dim`, sampled as the auxiliary site ``_<guide name>_latent``.
    A subclass gives its distribution (:meth:`get_posterior`, or
    :meth:`get_base_dist` and :meth:`get_transform`) and :meth:`loc_scale`.
    The model's structure must be the same in every run, and every latent
    continuous (hide discrete sites with ``poutine.block`` and enumerate them).

    :param model: the model.
    :param init_loc_fn: the initialization strategy.
    """

    def __init__(self, model, init_loc_fn=init_to_median):
        self.init_loc_fn = init_loc_fn
        super().__init__(InitMessenger(init_loc_fn)(model))

    def _no_latents(self) -> None:
        raise RuntimeError(
            f"{type(self).__name__} found no latent variables in the model: every sample site "
            "is observed (or hidden). Use an empty guide (def guide(*args, **kwargs): pass)"
        )

    def _setup_prototype(self, *args, **kwargs):
        super()._setup_prototype(*args, **kwargs)
        self._unconstrained_shapes = {}
        self._cond_indep_stacks = {}
        self._sites = []
        for name, site in self._prototype_sites():
            with helpful_support_errors(site):
                transform = _site_transform(site)
                shape = transform.inv(site["value"].detach()).shape
            self._unconstrained_shapes[name] = shape
            frames = site_frames(site, type(self).__name__)
            self._cond_indep_stacks[name] = frames
            fn_event_dim = site["fn"].event_dim
            event_dim = fn_event_dim + len(shape) - site["value"].dim()
            self._sites.append((site, transform, shape, product(shape), event_dim, frames))
        self.latent_dim = sum(size for _, _, _, size, _, _ in self._sites)
        if self.latent_dim == 0:
            raise RuntimeError(
                f"{type(self).__name__} found no latent variables (all latent sites are "
                "empty); use an empty guide"
            )

    def _init_loc(self) -> torch.Tensor:
        """The initial latent vector: each site's initial value, unconstrained, flattened."""
        parts = [
            transform.inv(site["value"].detach()).reshape(-1) for site, transform, *_ in self._sites
        ]
        return torch.cat(parts)

    def get_base_dist(self):
        """The base distribution of the posterior as a transformed distribution: by
        default a standard normal over the latent vector (on the device and dtype of
        ``self.loc``)."""
        return Normal(torch.zeros_like(self.loc), torch.ones_like(self.loc)).to_event(1)

    def get_transform(self, *args, **kwargs):
        """The transform of :meth:`get_base_dist` that gives the posterior."""
        raise NotImplementedError

    def get_posterior(self, *args, **kwargs):
        """The distribution of the joint unconstrained latent."""
        return TransformedDistribution(self.get_base_dist(), self.get_transform(*args, **kwargs))

    def sample_latent(self, *args, **kwargs) -> torch.Tensor:
        """Sample the joint unconstrained latent (an auxiliary site)."""
        posterior = self.get_posterior(*args, **kwargs)
        return sample(f"_{self._pyro_name}_latent", posterior, infer={"is_auxiliary": True})

    def unpack_latent(self, latent: torch.Tensor):
        """``(site, unconstrained value)`` for every latent site, cut out of a joint
        latent of shape ``batch + (latent_dim,)`` (the batch dims come from plates
        outside the guide, e.g. vectorized particles)."""
        batch_shape = latent.shape[:-1]
        if latent.shape[-1] != self.latent_dim:
            raise ValueError(
                f"{type(self).__name__}: a joint latent has size {self.latent_dim}, got a "
                f"tensor of shape {tuple(latent.shape)}"
            )
        pos = 0
        for site, _, shape, size, event_dim, _ in self._sites:
            shape = torch.broadcast_shapes(shape, batch_shape + (1,) * event_dim)
            yield site, latent[..., pos : pos + size].reshape(shape)
            pos += size

    _unpack_latent = unpack_latent  # Pyro's name

    def forward(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        latent = self.sample_latent(*args, **kwargs)
        plates = self._create_plates(*args, **kwargs)
        result = {}
        pieces = self.unpack_latent(latent)
        for (site, transform, _, _, _, frames), (_, unconstrained) in zip(self._sites, pieces):
            with ExitStack() as stack:
                _enter_plates(stack, plates, frames)
                name = site["name"]
                result[name] = _delta_site(name, transform, unconstrained, site["fn"].event_dim)
        return result

    def loc_scale(self, *args, **kwargs):
        """``(loc, scale)`` of the posterior's marginals in the unconstrained space."""
        raise NotImplementedError(f"{type(self).__name__} has no loc and scale")

    def _loc_scale(self, *args, **kwargs):  # Pyro's name
        return self.loc_scale(*args, **kwargs)

    @torch.no_grad()
    def median(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        """The posterior median of each site (the marginal medians of the
        unconstrained normal, mapped onto the supports)."""
        loc, _ = self._loc_scale(*args, **kwargs)
        loc = loc.detach()
        return {
            site["name"]: transform(value)
            for (site, transform, *_), (_, value) in zip(self._sites, self.unpack_latent(loc))
        }

    @torch.no_grad()
    def quantiles(self, quantiles, *args, **kwargs) -> Dict[str, torch.Tensor]:
        """The marginal quantiles of each site, mapped onto its support (quantiles first)."""
        loc, scale = self._loc_scale(*args, **kwargs)
        q = torch.as_tensor(quantiles, dtype=loc.dtype, device=loc.device).unsqueeze(-1)
        latents = Normal(loc, scale).icdf(q)
        result = {}
        for latent in latents:
            for (site, transform, *_), (_, value) in zip(self._sites, self.unpack_latent(latent)):
                result.setdefault(site["name"], []).append(transform(value))
        return {k: torch.stack(v) for k, v in result.items()}


class AutoDiagonalNormal(AutoContinuous):
    """A normal with diagonal covariance over the joint unconstrained latent
    (parameters ``loc`` and ``scale``).

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember.infer.autoguide import AutoDiagonalNormal
        >>> def model():
        ...     ember.sample("a", dist.Normal(0.0, 1.0))
        ...     ember.sample("b", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        >>> guide = AutoDiagonalNormal(model)
        >>> _ = guide(); guide.latent_dim, guide.loc.shape
        (3, torch.Size([3]))
    """

    scale_constraint = constraints.softplus_positive

    def __init__(self, model, init_loc_fn=init_to_median, init_scale: float = 0.1):
        self._init_scale = check_init_scale(init_scale)
        super().__init__(model, init_loc_fn=init_loc_fn)

    def _setup_prototype(self, *args, **kwargs):
        super()._setup_prototype(*args, **kwargs)
        self.loc = nn.Parameter(self._init_loc())
        self.scale = PyroParam(
            self.loc.new_full((self.latent_dim,), self._init_scale), self.scale_constraint
        )

    def get_transform(self, *args, **kwargs):
        return AffineTransform(self.loc, self.scale)

    def get_posterior(self, *args, **kwargs):
        return Normal(self.loc, self.scale).to_event(1)

    def loc_scale(self, *args, **kwargs):
        return self.loc, self.scale


class AutoMultivariateNormal(AutoContinuous):
    """A multivariate normal over the joint unconstrained latent, with covariance
    ``(scale * scale_tril) (scale * scale_tril)^T`` (``scale`` positive,
    ``scale_tril`` unit lower triangular): it captures correlations between all
    latents.

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember.infer.autoguide import AutoMultivariateNormal
        >>> guide = AutoMultivariateNormal(
        ...     lambda: ember.sample("x", dist.Normal(0.0, 1.0).expand([3]).to_event(1)))
        >>> _ = guide(); guide.get_posterior().covariance_matrix.shape
        torch.Size([3, 3])
    """

    scale_constraint = constraints.softplus_positive
    scale_tril_constraint = constraints.unit_lower_cholesky

    def __init__(self, model, init_loc_fn=init_to_median, init_scale: float = 0.1):
        self._init_scale = check_init_scale(init_scale)
        super().__init__(model, init_loc_fn=init_loc_fn)

    def _setup_prototype(self, *args, **kwargs):
        super()._setup_prototype(*args, **kwargs)
        self.loc = nn.Parameter(self._init_loc())
        self.scale = PyroParam(torch.full_like(self.loc, self._init_scale), self.scale_constraint)
        self.scale_tril = PyroParam(eye_like(self.loc, self.latent_dim), self.scale_tril_constraint)

    def _cholesky(self):
        return self.scale[..., None] * self.scale_tril

    def get_transform(self, *args, **kwargs):
        return LowerCholeskyAffine(self.loc, self._cholesky())

    def get_posterior(self, *args, **kwargs):
        return MultivariateNormal(self.loc, scale_tril=self._cholesky())

    def loc_scale(self, *args, **kwargs):
        return self.loc, self._cholesky().pow(2).sum(-1).sqrt()


class AutoLowRankMultivariateNormal(AutoContinuous):
    """A multivariate normal over the joint unconstrained latent whose covariance
    is ``diag(scale) (cov_factor cov_factor^T + I) diag(scale)``: diagonal plus
    rank ``rank`` (default about ``sqrt(latent_dim)``), cheaper than the full
    covariance for many latents.

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember.infer.autoguide import AutoLowRankMultivariateNormal
        >>> guide = AutoLowRankMultivariateNormal(
        ...     lambda: ember.sample("x", dist.Normal(0.0, 1.0).expand([9]).to_event(1)))
        >>> _ = guide(); guide.rank, guide.cov_factor.shape
        (3, torch.Size([9, 3]))
    """

    scale_constraint = constraints.softplus_positive

    def __init__(self, model, init_loc_fn=init_to_median, init_scale: float = 0.1, rank=None):
        self._init_scale = check_init_scale(init_scale)
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
            raise ValueError(f"Expected rank > 0 but got {rank!r}")
        self.rank = rank
        super().__init__(model, init_loc_fn=init_loc_fn)

    def _setup_prototype(self, *args, **kwargs):
        super()._setup_prototype(*args, **kwargs)
        self.loc = nn.Parameter(self._init_loc())
        if self.rank is None:
            self.rank = max(1, int(round(self.latent_dim**0.5)))
        # the diagonal and the low-rank part each carry half the initial variance
        self.scale = PyroParam(
            self.loc.new_full((self.latent_dim,), 0.5**0.5 * self._init_scale),
            constraint=self.scale_constraint,
        )
        self.cov_factor = nn.Parameter(
            self.loc.new_empty(self.latent_dim, self.rank).normal_(0, 1 / self.rank**0.5)
        )

    def get_posterior(self, *args, **kwargs):
        scale = self.scale
        cov_factor = self.cov_factor * scale.unsqueeze(-1)
        return LowRankMultivariateNormal(self.loc, cov_factor, scale * scale)

    def loc_scale(self, *args, **kwargs):
        return self.loc, self.scale * (self.cov_factor.pow(2).sum(-1) + 1).sqrt()


class AutoNormalizingFlow(AutoContinuous):
    """A standard normal over the joint unconstrained latent pushed through a
    normalizing flow.

    :param model: the model.
    :param init_transform_fn: a function of the latent dimension returning the
        transform (e.g. ``functools.partial(iterated, 2, planar)``); called the
        first time the guide runs. Its learnable parts are sub-modules.

    Example::

        >>> import functools, ember, ember.distributions as dist
        >>> from ember.distributions.transforms import iterated, planar
        >>> from ember.infer.autoguide import AutoNormalizingFlow
        >>> guide = AutoNormalizingFlow(
        ...     lambda: ember.sample("x", dist.Normal(0.0, 1.0).expand([2]).to_event(1)),
        ...     functools.partial(iterated, 2, planar))
        >>> guide()["x"].shape
        torch.Size([2])
    """

    def __init__(self, model, init_transform_fn: Callable):
        super().__init__(model, init_loc_fn=init_to_feasible)
        self._init_transform_fn = init_transform_fn
        self.transform = None
        self._prototype_tensor = torch.tensor(0.0)

    def get_base_dist(self):
        loc = self._prototype_tensor.new_zeros(1)
        scale = self._prototype_tensor.new_ones(1)
        return Normal(loc, scale).expand([self.latent_dim]).to_event(1)

    def get_transform(self, *args, **kwargs):
        return self.transform

    def get_posterior(self, *args, **kwargs):
        if self.transform is None:
            self.transform = self._init_transform_fn(self.latent_dim)
            for p in self.parameters():  # take the flow's dtype and device
                self._prototype_tensor = p.detach()
                break
        return super().get_posterior(*args, **kwargs)


class AutoIAFNormal(AutoNormalizingFlow):
    """:class:`AutoNormalizingFlow` with ``num_transforms`` affine autoregressive
    flows (inverse autoregressive flows).

    :param model: the model.
    :param hidden_dim: hidden sizes of the autoregressive networks (default
        ``[3 * latent_dim + 1]``).
    :param init_loc_fn: not used (kept for compatibility; warns).
    :param num_transforms: how many flows to compose.
    :param init_transform_kwargs: passed to
        :func:`~ember.distributions.transforms.affine_autoregressive`.

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember.infer.autoguide import AutoIAFNormal
        >>> guide = AutoIAFNormal(
        ...     lambda: ember.sample("x", dist.Normal(0.0, 1.0).expand([3]).to_event(1)),
        ...     hidden_dim=[8], num_transforms=2)
        >>> guide()["x"].shape, len(guide.transform.parts)
        (torch.Size([3]), 2)
    """

    def __init__(
        self,
        model,
        hidden_dim: Optional[Sequence[int]] = None,
        init_loc_fn=None,
        num_transforms: int = 1,
        **init_transform_kwargs,
    ):
        if init_loc_fn:
            warnings.warn(
                "AutoIAFNormal does not use init_loc_fn (the flow starts near the identity "
                "around zero); remove the argument",
                FutureWarning,
                stacklevel=2,
            )
        if isinstance(hidden_dim, int):
            hidden_dim = [hidden_dim]
        init = functools.partial(
            iterated,
            num_transforms,
            affine_autoregressive,
            hidden_dims=hidden_dim,
            **init_transform_kwargs,
        )
        super().__init__(model, init_transform_fn=init)


class AutoLaplaceApproximation(AutoContinuous):
    r"""The Laplace approximation: a MAP guide over the joint unconstrained
    latent (a point mass at ``loc``) whose :meth:`laplace_approximation` then
    gives the multivariate normal centred at the MAP point with covariance the
    inverse Hessian of :math:`-\log p(x, z)` (in the unconstrained space, with
    the log-Jacobians of the support maps included).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer.autoguide import AutoLaplaceApproximation
        >>> def model():
        ...     ember.sample("x", dist.Normal(1.0, 2.0))
        >>> guide = AutoLaplaceApproximation(model)
        >>> with torch.no_grad():
        ...     _ = guide(); _ = guide.loc.fill_(1.0)  # the MAP point
        >>> guide.laplace_approximation().get_posterior().covariance_matrix
        tensor([[4.]])
    """

    def _setup_prototype(self, *args, **kwargs):
        super()._setup_prototype(*args, **kwargs)
        self.loc = nn.Parameter(self._init_loc())

    def get_posterior(self, *args, **kwargs):
        return Delta(self.loc, event_dim=1)

    def loc_scale(self, *args, **kwargs):
        return self.loc, torch.zeros_like(self.loc)

    def laplace_approximation(self, *args, **kwargs) -> AutoMultivariateNormal:
        """An :class:`AutoMultivariateNormal` (with buffers, not parameters) whose
        mean is ``loc`` and covariance the inverse Hessian of the negative log joint
        at ``loc``; arguments are the model's. ``ValueError`` when the Hessian is
        not positive definite (``loc`` is not a local maximum)."""
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        guide_trace = poutine.trace(self).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(self.model, trace=guide_trace)).get_trace(
            *args, **kwargs
        )
        loss = guide_trace.log_prob_sum() - model_trace.log_prob_sum()
        loc_param = self.loc
        hessian = _hessian(loss, loc_param)
        with torch.no_grad():
            loc = loc_param.detach().clone()
            try:
                precision_tril = torch.linalg.cholesky(hessian)
            except RuntimeError:
                raise ValueError(
                    f"{type(self).__name__}.laplace_approximation: the Hessian of the negative "
                    "log joint at loc is not positive definite, so loc is not a local maximum "
                    "of the posterior; optimize the guide (longer, or from another init) first"
                ) from None
            cov = torch.cholesky_inverse(precision_tril)
            scale = cov.diagonal().sqrt()
            scale_tril = torch.linalg.cholesky(cov / scale[:, None] / scale[None, :])
        gaussian = AutoMultivariateNormal(self.model)
        gaussian._setup_prototype(*args, **kwargs)
        del gaussian.loc
        del gaussian.scale
        del gaussian.scale_tril
        gaussian.register_buffer("loc", loc)
        gaussian.register_buffer("scale", scale)
        gaussian.register_buffer("scale_tril", scale_tril)
        return gaussian


def _hessian(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The Hessian of the scalar ``y`` with respect to the vector ``x``."""
    (grad,) = torch.autograd.grad(y, x, create_graph=True)
    rows = []
    for i in range(x.numel()):
        (row,) = torch.autograd.grad(grad[i], x, retain_graph=True, allow_unused=True)
        rows.append(torch.zeros_like(x) if row is None else row)
    return torch.stack(rows)


class AutoDiscreteParallel(AutoGuide):
    """A mean-field guide over discrete latents (``Bernoulli``, ``Categorical``,
    ``OneHotCategorical``), each with learned probabilities ``<site>_probs``,
    enumerated in parallel by :class:`~ember.infer.TraceEnum_ELBO`.

    Use it in an :class:`AutoGuideList` beside a continuous guide, each built
    from the model with the other's sites hidden.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer.autoguide import AutoDiscreteParallel
        >>> def model():
        ...     ember.sample("k", dist.Categorical(torch.tensor([0.2, 0.8])))
        >>> guide = AutoDiscreteParallel(model)
        >>> _ = guide(); guide.k_probs
        tensor([0.2000, 0.8000], grad_fn=<DivBackward0>)
    """

    _families = (Bernoulli, Categorical, OneHotCategorical)

    def _setup_prototype(self, *args, **kwargs):
        model = poutine.block(config_enumerate(self.model), hide_fn=self._prototype_hide_fn)
        self.prototype_trace = poutine.block(poutine.trace(model).get_trace)(*args, **kwargs)
        if self.master is not None:
            self.master().check_part_prototype(self.prototype_trace)
        self._discrete_sites = []
        self._prototype_frames = {}
        for name, site in self._prototype_sites():
            fn = site["fn"]
            if site["infer"].get("enumerate") != "parallel" or type(fn) not in self._families:
                raise ValueError(
                    f"AutoDiscreteParallel guides Bernoulli, Categorical and OneHotCategorical "
                    f"sites for parallel enumeration; site {name!r} is a {type(fn).__name__}. "
                    f"Hide it from this guide (poutine.block(model, expose=[...discrete "
                    "sites...])) and guide it with a continuous guide in an AutoGuideList"
                )
            frames = site_frames(site, type(self).__name__)
            for frame in frames:
                self._prototype_frames[frame.name] = frame
            self._discrete_sites.append((name, type(fn), frames))
            deep_setattr(
                self,
                f"{name}_probs",
                PyroParam(fn.probs.detach().clone(), constraint=fn.arg_constraints["probs"]),
            )

    def forward(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        plates = self._create_plates(*args, **kwargs)
        result = {}
        for name, family, frames in self._discrete_sites:
            probs = deep_getattr(self, f"{name}_probs")
            with ExitStack() as stack:
                _enter_plates(stack, plates, frames)
                result[name] = sample(name, family(probs=probs), infer={"enumerate": "parallel"})
        return result
