"""Helpers shared by the automatic guides: nested attributes, support errors, entropy."""

from __future__ import annotations

import operator
from contextlib import contextmanager
from typing import Callable, Iterable, Optional

from ember import poutine
from ember.nn.module import PyroModule
from ember.poutine.subsample_messenger import site_is_subsample

__all__ = [
    "ENUMERATION_DOCS",
    "deep_getattr",
    "deep_setattr",
    "helpful_support_errors",
    "mean_field_entropy",
    "product",
    "site_frames",
]

#: Where enumeration of discrete latents is explained (the phrase Pyro users look for).
ENUMERATION_DOCS = "https://pyro.ai/examples/enumeration.html"


def product(shape: Iterable[int]) -> int:
    """The number of elements of a tensor of shape ``shape``.

    Example::

        >>> product((2, 3)), product(())
        (6, 1)
    """
    result = 1
    for size in shape:
        result *= size
    return result


_product = product  # Pyro's name (programs and Pyro's tests import it)


def deep_setattr(obj, key: str, value) -> None:
    """``obj.a.b.c = value`` for ``key = "a.b.c"``, creating missing intermediate
    attributes as empty :class:`~ember.nn.PyroModule` s.

    Example::

        >>> import torch
        >>> from ember.nn import PyroModule
        >>> root = PyroModule()
        >>> deep_setattr(root, "layer.weight", torch.nn.Parameter(torch.zeros(2)))
        >>> type(root.layer).__name__, root.layer.weight.shape
        ('PyroModule', torch.Size([2]))
    """
    *path, leaf = key.split(".")
    for name in path:
        child = getattr(obj, name, None)
        if child is None:
            setattr(obj, name, PyroModule())
            child = getattr(obj, name)
        obj = child
    setattr(obj, leaf, value)


def deep_getattr(obj, key: str):
    """``obj.a.b.c`` for ``key = "a.b.c"``.

    Example::

        >>> import torch
        >>> deep_getattr(torch.nn.Sequential(torch.nn.Linear(2, 1)), "0.bias").shape
        torch.Size([1])
    """
    return operator.attrgetter(key)(obj)


@contextmanager
def helpful_support_errors(site: dict):
    """Turn "no transform for this support" (``NotImplementedError``) into a
    ``ValueError`` that names the site and says what to do.

    Continuous guides map each latent onto its support with ``biject_to``;
    that fails for discrete supports (enumerate the site, or guide it with
    :class:`~ember.infer.autoguide.AutoDiscreteParallel`) and for spherical ones
    (reparameterize with ``ProjectedNormalReparam``).

    Example::

        >>> import ember.distributions as dist
        >>> site = {"name": "k", "fn": dist.Bernoulli(0.5)}
        >>> with helpful_support_errors(site):
        ...     dist.biject_to(site["fn"].support)
        Traceback (most recent call last):
        ...
        ValueError: Continuous inference cannot handle discrete sample site 'k' ...
    """
    try:
        yield
    except NotImplementedError as e:
        name = site["name"]
        support = site["fn"].support
        if getattr(support, "is_discrete", False):
            raise ValueError(
                f"Continuous inference cannot handle discrete sample site {name!r} (support "
                f"{support}). Enumerate it (config_enumerate and TraceEnum_ELBO, see "
                f"{ENUMERATION_DOCS}), guide it with AutoDiscreteParallel in an AutoGuideList, "
                "and hide it from the continuous guide, e.g. "
                f"AutoNormal(poutine.block(model, hide=[{name!r}]))."
            ) from None
        if "sphere" in repr(support).lower():
            raise ValueError(
                f"Continuous inference cannot handle spherical sample site {name!r}. Use a "
                "ProjectedNormal distribution with a reparameterizer, e.g. "
                f"poutine.reparam(model, config={{{name!r}: ProjectedNormalReparam()}})."
            ) from None
        raise e from None


def mean_field_entropy(model: Callable, args, whitelist: Optional[Iterable[str]] = None):
    """The entropy of ``model(*args)`` assuming its sample sites are independent:
    the sum of the sites' entropies (only those in ``whitelist`` when given;
    plate subsample sites never count).

    Example::

        >>> import math, torch, ember, ember.distributions as dist
        >>> def guide():
        ...     ember.sample("a", dist.Normal(0.0, 2.0))
        ...     ember.sample("b", dist.Bernoulli(0.5))
        >>> h = mean_field_entropy(guide, ())
        >>> bool(torch.isclose(h, torch.tensor(0.5 * math.log(2 * math.pi * math.e * 4)
        ...                                   + math.log(2.0))))
        True
    """
    trace = poutine.trace(model).get_trace(*args)
    keep = None if whitelist is None else set(whitelist)
    entropy = 0.0
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        if keep is None or name in keep:
            entropy = entropy + site["fn"].entropy()
    return entropy


def site_frames(site: dict, what: str = "AutoGuide") -> tuple:
    """The plates (``CondIndepStackFrame`` s) of a prototype site, outermost first;
    ``NotImplementedError`` naming the site if one of them is sequential.

    Example::

        >>> import ember, ember.distributions as dist
        >>> def model():
        ...     with ember.plate("data", 3):
        ...         ember.sample("x", dist.Normal(0.0, 1.0))
        >>> site = ember.poutine.trace(model).get_trace().nodes["x"]
        >>> [f.name for f in site_frames(site)]
        ['data']
    """
    frames = []
    for frame in site["cond_indep_stack"]:
        if not frame.vectorized:
            raise NotImplementedError(
                f"{what} does not support sequential ember.plate: site {site['name']!r} is in "
                f"the sequential plate {frame.name!r}; use a vectorized plate (with ember.plate"
                "(...) as idx) or guide that part of the model by hand"
            )
        frames.append(frame)
    return tuple(frames)


def check_init_scale(init_scale) -> float:
    """``init_scale`` as a float, or a ``ValueError`` unless it is a positive number."""
    if isinstance(init_scale, bool) or not isinstance(init_scale, (int, float)):
        raise ValueError(f"init_scale must be a positive float, got {init_scale!r}")
    if not init_scale > 0:
        raise ValueError(f"Expected init_scale > 0. but got {init_scale!r}")
    return float(init_scale)
