"""Configuring enumeration: :func:`config_enumerate` marks a program's discrete
sample sites for enumeration by :class:`~ember.infer.TraceEnum_ELBO`."""

from __future__ import annotations

import functools
from typing import Callable

from ember.poutine.messenger import Messenger

_STRATEGIES = ("parallel", "sequential", "flat", None)


class _EnumerateConfig(Messenger):
    """Add enumeration settings to the ``infer`` dict of qualifying sample sites."""

    def __init__(self, default, expand, num_samples):
        super().__init__()
        self.default = default
        self.expand = expand
        self.num_samples = num_samples

    def _pyro_sample(self, msg):
        if msg["is_observed"] or type(msg["fn"]).__name__ == "_Subsample":
            return
        infer = dict(msg["infer"] or {})
        if infer.get("_subsample"):
            return
        if self.num_samples is not None:
            infer.setdefault("enumerate", self.default)
            infer.setdefault("num_samples", self.num_samples)
        elif getattr(msg["fn"], "has_enumerate_support", False):
            infer.setdefault("enumerate", self.default)
            infer.setdefault("expand", self.expand)
        else:
            return
        msg["infer"] = infer


def config_enumerate(
    guide: Callable | None = None,
    default: str | None = "parallel",
    expand: bool = False,
    num_samples: int | None = None,
):
    """Mark every discrete, unobserved sample site of ``guide`` for enumeration.

    Sites whose distribution has ``enumerate_support`` get
    ``infer={"enumerate": default, "expand": expand}``; settings a site already
    has win. With ``num_samples``, every unobserved site (discrete or not) is
    instead "enumerated" by ``num_samples`` Monte Carlo draws in parallel. Works
    on models too, and as a decorator with or without arguments.

    :param default: ``"parallel"`` (the default), ``"sequential"``, ``"flat"`` or
        ``None`` (which leaves the sites alone).
    :param expand: whether parallel enumeration expands values to the full batch
        shape (else they broadcast).
    :param num_samples: draws per site for Monte Carlo enumeration (parallel only).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember import poutine
        >>> @config_enumerate
        ... def model():
        ...     ember.sample("z", dist.Bernoulli(0.5))
        ...     ember.sample("w", dist.Normal(0.0, 1.0))
        >>> tr = poutine.trace(model).get_trace()
        >>> tr.nodes["z"]["infer"], tr.nodes["w"]["infer"]
        ({'enumerate': 'parallel', 'expand': False}, {})
    """
    if default not in _STRATEGIES:
        raise ValueError(f"config_enumerate: default must be one of {_STRATEGIES}, got {default!r}")
    if not isinstance(expand, bool):
        raise TypeError(f"config_enumerate: expand must be True or False, got {expand!r}")
    if num_samples is not None:
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
            raise ValueError(
                f"config_enumerate: num_samples must be a positive int, got {num_samples!r}"
            )
        if default != "parallel":
            raise ValueError(
                "config_enumerate: num_samples needs default='parallel' (Monte Carlo draws are "
                f"taken in parallel), got default={default!r}"
            )
    if guide is None:
        return functools.partial(
            config_enumerate, default=default, expand=expand, num_samples=num_samples
        )
    if not callable(guide):
        raise TypeError(f"config_enumerate expects a callable, got {type(guide).__name__}")
    return _EnumerateConfig(default, expand, num_samples)(guide)
