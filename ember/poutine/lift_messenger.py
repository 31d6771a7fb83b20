"""LiftMessenger: turn param sites into sample sites drawn from a prior."""

from __future__ import annotations

from ember.distributions.distribution import Distribution
from ember.params.param_store import user_param_name
from ember.poutine.messenger import Messenger


class LiftMessenger(Messenger):
    """Replace ``ember.param`` calls by samples from ``prior``.

    ``prior`` is a distribution, a stochastic function (called with the
    param's arguments), or a dict from parameter names (without a module
    prefix) to either; params missing from the dict stay params. A param
    read twice in one run gets the same sample.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> ember.clear_param_store()
        >>> model = lambda: ember.param("w", torch.zeros(()))
        >>> tr = ember.poutine.trace(
        ...     ember.poutine.lift(model, prior=dist.Normal(0.0, 1.0))).get_trace()
        >>> tr.nodes["w"]["type"]
        'sample'
    """

    def __init__(self, prior):
        super().__init__()
        if not (isinstance(prior, dict) or callable(prior)):
            raise TypeError(
                f"lift: prior must be a distribution, a callable or a dict, got {type(prior)}"
            )
        self.prior = prior
        self._samples_cache = {}

    def __enter__(self):
        self._samples_cache = {}
        return super().__enter__()

    def _reset(self) -> None:
        self._samples_cache = {}

    def _pyro_param(self, msg) -> None:
        name = msg["name"]
        prior = self.prior
        if isinstance(prior, dict):
            key = user_param_name(name)
            if key not in prior:
                return
            prior = prior[key]
        if isinstance(prior, Distribution) or hasattr(prior, "log_prob"):
            msg["fn"] = prior
            msg["args"] = ()
            msg["kwargs"] = {}
            msg["infer"] = {}
        elif callable(prior):
            msg["fn"] = prior
            msg["stop"] = True
        else:
            raise TypeError(f"lift: prior for param {name!r} is not callable: {prior!r}")
        msg["type"] = "sample"
        if name in self._samples_cache:
            msg["value"] = self._samples_cache[name]["value"]
            msg["is_observed"] = True
            msg["done"] = True
            msg["stop"] = True  # a repeated read is not a new random variable
        else:
            self._samples_cache[name] = msg
            msg["is_observed"] = False
