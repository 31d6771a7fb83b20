"""Initialization strategies: where an automatic guide (or MCMC) starts each latent site.

A strategy is a function ``init_fn(site) -> value``: given a sample site of the
model (a message dict with ``"name"``, ``"fn"``, ...), it returns an initial
value in the site's support, of the site's shape. Strategies with options are
configured by calling them without a site: ``init_to_median(num_samples=50)``.
:class:`InitMessenger` applies a strategy to every latent site of a model run.

Values from the built-in strategies carry the attribute
``_pyro_custom_init = False`` (Pyro's marker, read by reparameterizers to tell
a default starting point from one the user chose).

Example::

    >>> import torch, ember, ember.distributions as dist
    >>> from ember.infer.autoguide.initialization import InitMessenger, init_to_value
    >>> def model():
    ...     a = ember.sample("a", dist.Normal(0.0, 1.0))
    ...     b = ember.sample("b", dist.LogNormal(0.0, 1.0))
    ...     return a, b
    >>> with InitMessenger(init_to_value(values={"a": torch.tensor(0.5)})):
    ...     a, b = model()
    >>> a, bool(b > 0)
    (tensor(0.5000), True)
"""

from __future__ import annotations

import functools
from typing import Callable, Optional

import torch
from torch.distributions import transform_to

from ember.distributions.torch import Independent
from ember.distributions.torch_distribution import MaskedDistribution
from ember.infer.autoguide.utils import helpful_support_errors
from ember.poutine.broadcast import broadcast_to_plates
from ember.poutine.messenger import Messenger
from ember.poutine.subsample_messenger import site_is_subsample
from ember.util import is_validation_enabled, torch_isnan

__all__ = [
    "InitMessenger",
    "init_to_feasible",
    "init_to_generated",
    "init_to_mean",
    "init_to_median",
    "init_to_sample",
    "init_to_sample_or_feasible",
    "init_to_uniform",
    "init_to_value",
]


def _default_init(value: torch.Tensor) -> torch.Tensor:
    value._pyro_custom_init = False
    return value


def _is_multivariate(fn) -> bool:
    while isinstance(fn, (Independent, MaskedDistribution)):
        fn = fn.base_dist
    return any(size > 1 for size in fn.event_shape)


def _in_support(fn, value) -> bool:
    try:
        ok = fn.support.check(value)
    except (NotImplementedError, RuntimeError, ValueError):
        return True  # a dependent or exotic support: nothing to check against
    return bool(ok.all()) if isinstance(ok, torch.Tensor) else bool(ok)


def init_to_feasible(site: Optional[dict] = None):
    """The point of the support that the unconstrained zero maps to (e.g. 0 for a
    real site, 1 for a positive one, the centre of a simplex), whatever the
    distribution's parameters (the distribution need not have a sampler, as an
    ``ImproperUniform`` has not).

    Example::

        >>> import ember.distributions as dist
        >>> init_to_feasible({"name": "s", "fn": dist.Gamma(3.0, 1.0).expand([2])})
        tensor([1., 1.])
    """
    if site is None:
        return init_to_feasible
    fn = site["fn"]
    transform = transform_to(fn.support)
    try:
        unconstrained = torch.zeros_like(transform.inv(fn.sample().detach()))
    except NotImplementedError:  # no sampler: the shape alone decides
        shape = transform.inverse_shape(fn.batch_shape + fn.event_shape)
        unconstrained = torch.zeros(shape)
    return _default_init(transform(unconstrained))


def init_to_sample_or_feasible(site: Optional[dict] = None):
    """:func:`init_to_sample` for a distribution that can be sampled, else
    :func:`init_to_feasible` (e.g. for an ``ImproperUniform``).

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.distributions import constraints
        >>> d = dist.ImproperUniform(constraints.positive, (), (2,))
        >>> init_to_sample_or_feasible({"name": "x", "fn": d})
        tensor([1., 1.])
    """
    if site is None:
        return init_to_sample_or_feasible
    try:
        return init_to_sample(site)
    except NotImplementedError:
        return init_to_feasible(site)


def init_to_sample(site: Optional[dict] = None):
    """A draw from the site's (prior) distribution.

    Example::

        >>> import ember, ember.distributions as dist
        >>> ember.set_rng_seed(0)
        >>> init_to_sample({"name": "x", "fn": dist.Normal(0.0, 1.0)}).shape
        torch.Size([])
    """
    if site is None:
        return init_to_sample
    return _default_init(site["fn"].sample().detach())


def init_to_median(
    site: Optional[dict] = None,
    num_samples: int = 15,
    *,
    fallback: Optional[Callable] = init_to_feasible,
):
    """The median of ``num_samples`` draws from the prior (elementwise); for a
    multivariate site (event size > 1) :func:`init_to_feasible`. When the
    median is not available (NaN, outside the support, no sampler) the
    ``fallback`` strategy is used, or ``ValueError`` raised when it is None.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> ember.set_rng_seed(0)
        >>> value = init_to_median({"name": "x", "fn": dist.Normal(3.0, 0.01)})
        >>> bool(abs(value - 3.0) < 0.05)
        True
    """
    if site is None:
        return functools.partial(init_to_median, num_samples=num_samples, fallback=fallback)
    fn = site["fn"]
    if _is_multivariate(fn):
        return init_to_feasible(site)
    try:
        samples = fn.sample(sample_shape=(num_samples,)).detach()
        value = samples.median(dim=0)[0]
        if not torch_isnan(value) and _in_support(fn, value):
            return _default_init(value)
    except (RuntimeError, ValueError, NotImplementedError):
        pass
    if fallback is not None:
        return fallback(site)
    raise ValueError(
        f"init_to_median: no median for site {site['name']!r} and no fallback strategy; "
        "give one, e.g. init_to_median(fallback=init_to_feasible)"
    )


def init_to_mean(site: Optional[dict] = None, *, fallback: Optional[Callable] = init_to_median):
    """The prior mean; where it is undefined or outside the support (e.g. a
    Cauchy), the ``fallback`` strategy (default :func:`init_to_median`), or
    ``ValueError`` when ``fallback`` is None.

    Example::

        >>> import ember.distributions as dist
        >>> init_to_mean({"name": "r", "fn": dist.Gamma(6.0, 2.0)})
        tensor(3.)
    """
    if site is None:
        return functools.partial(init_to_mean, fallback=fallback)
    fn = site["fn"]
    try:
        value = fn.mean.detach()
        if not torch_isnan(value) and _in_support(fn, value):
            return _default_init(value)
    except (NotImplementedError, ValueError, RuntimeError):
        pass
    if fallback is not None:
        return fallback(site)
    raise ValueError(
        f"init_to_mean: site {site['name']!r} has no mean and there is no fallback strategy; "
        "give one, e.g. init_to_mean(fallback=init_to_median)"
    )


def init_to_uniform(site: Optional[dict] = None, radius: float = 2.0):
    """A uniform draw from ``(-radius, radius)`` in the unconstrained space,
    mapped onto the support.

    Example::

        >>> import ember, ember.distributions as dist
        >>> ember.set_rng_seed(0)
        >>> value = init_to_uniform({"name": "p", "fn": dist.Beta(1.0, 1.0)}, radius=0.5)
        >>> bool(0.37 < value < 0.63)
        True
    """
    if site is None:
        return functools.partial(init_to_uniform, radius=radius)
    fn = site["fn"]
    value = fn.sample().detach()
    transform = transform_to(fn.support)
    u = transform.inv(value)
    return _default_init(transform(torch.rand_like(u) * (2 * radius) - radius))


def init_to_value(
    site: Optional[dict] = None,
    values: Optional[dict] = None,
    *,
    fallback: Optional[Callable] = init_to_uniform,
):
    """The value given in ``values`` (a dict keyed by site name); other sites
    get the ``fallback`` strategy (default :func:`init_to_uniform`), or
    ``ValueError`` when ``fallback`` is None.

    Example::

        >>> import torch, ember.distributions as dist
        >>> init = init_to_value(values={"x": torch.tensor(2.0)}, fallback=None)
        >>> init({"name": "x", "fn": dist.Normal(0.0, 1.0)})
        tensor(2.)
    """
    values = {} if values is None else values
    if site is None:
        return functools.partial(init_to_value, values=values, fallback=fallback)
    if site["name"] in values:
        return values[site["name"]]
    if fallback is not None:
        return fallback(site)
    raise ValueError(
        f"init_to_value: no value for site {site['name']!r} (values has {sorted(values)}) and "
        "no fallback strategy; add it to values or give a fallback"
    )


class _InitToGenerated:
    """Calls ``generate()`` for a fresh strategy once per model run (a run starts
    again when a site name is seen a second time)."""

    def __init__(self, generate: Callable):
        self.generate = generate
        self.strategy = None
        self.seen = set()

    def __call__(self, site):
        if self.strategy is None or site["name"] in self.seen:
            self.strategy = self.generate()
            self.seen = set()
        self.seen.add(site["name"])
        return self.strategy(site)


def init_to_generated(site: Optional[dict] = None, generate: Callable = lambda: init_to_uniform):
    """The strategy returned by ``generate()``, called anew for each run of the
    model: like :func:`init_to_value`, but the values may differ from run to run.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> runs = iter(range(10))
        >>> def generate():
        ...     return init_to_value(values={"x": torch.tensor(float(next(runs)))})
        >>> init = init_to_generated(generate=generate)
        >>> site = {"name": "x", "fn": dist.Normal(0.0, 1.0)}
        >>> init(site), init(site)
        (tensor(0.), tensor(1.))
    """
    strategy = _InitToGenerated(generate)
    return strategy if site is None else strategy(site)


class InitMessenger(Messenger):
    """Sets every latent sample site (that has no value yet) to ``init_fn(site)``.

    Automatic guides wrap their model in it to find where to start. With
    validation on, a value that does not fit the site is a ``ValueError``
    naming the site: its shape must broadcast to the site's shape, and it must
    lie in the site's support.

    Example::

        >>> import ember, ember.distributions as dist
        >>> with InitMessenger(init_to_mean):
        ...     ember.sample("x", dist.Normal(2.0, 1.0))
        tensor(2.)
    """

    # A reparameterizer inside this handler runs it first on the original site, so the
    # reparameterized sites start from the transformed initial value (values already set
    # are never overwritten, so running twice is harmless).
    applies_before_reparam = True

    def __init__(self, init_fn: Callable):
        if not callable(init_fn):
            raise TypeError(f"InitMessenger: init_fn must be callable, got {init_fn!r}")
        self.init_fn = init_fn
        super().__init__()

    def _pyro_sample(self, msg) -> None:
        if msg["value"] is not None or site_is_subsample(msg):
            return
        # the plates inside this handler have declared themselves but not yet broadcast
        # the distribution (only the outermost plate does): give the site its full shape
        broadcast_to_plates(msg)
        with torch.no_grad(), helpful_support_errors(msg):
            value = self.init_fn(msg)
        if is_validation_enabled():
            value = self._checked(msg, value)
        msg["value"] = value

    def _checked(self, msg, value):
        name = msg["name"]
        if not isinstance(value, torch.Tensor):
            raise ValueError(
                f"init strategy {self.init_fn!r} gave site {name!r} a "
                f"{type(value).__name__}, not a tensor"
            )
        fn = msg["fn"]
        shape = fn.shape() if hasattr(fn, "shape") else value.shape
        if value.shape != shape:
            try:
                value = value.expand(shape)
            except RuntimeError:
                raise ValueError(
                    f"init strategy {self.init_fn!r} gave site {name!r} a value of shape "
                    f"{tuple(value.shape)}; the site's shape is {tuple(shape)}"
                ) from None
        if not _in_support(fn, value):
            raise ValueError(
                f"init strategy {self.init_fn!r} gave site {name!r} a value outside its "
                f"support {fn.support}: {value.flatten()[:5].tolist()}... Give an initial "
                "value inside the support"
            )
        return value

    def _pyro_get_init_messengers(self, msg) -> None:
        if msg["value"] is None:
            msg["value"] = []
        msg["value"].append(self)
