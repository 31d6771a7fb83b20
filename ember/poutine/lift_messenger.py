"""LiftMessenger: turn param sites into sample sites drawn from a prior."""

from __future__ import annotations

import warnings

from ember.distributions.distribution import Distribution
from ember.params.param_store import user_param_name
from ember.poutine.messenger import Messenger
from ember.util import is_poutine_validation_enabled


class LiftMessenger(Messenger):
    """Replace ``ember.param`` calls by samples from ``prior``.

    ``prior`` is a distribution, a stochastic function (called with the
    param's initial value and keyword arguments), or a dict from parameter
    names (without a module prefix) to either; params missing from the dict
    stay params. A stochastic function given alone replaces the param site by
    its own sample sites; one given in a dict is itself the sample site's
    function. A param read twice in one run gets the same sample. With
    validation on, prior dict entries that matched no param of a run are
    reported in a warning.

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
        self._hits = set()  # prior dict keys that matched a param in this run
        self._misses = set()  # param names the prior dict had no entry for

    def __enter__(self):
        self._samples_cache = {}
        self._hits = set()
        self._misses = set()
        return super().__enter__()

    def __exit__(self, exc_type, exc_value, traceback):
        self._samples_cache = {}
        if exc_type is None and is_poutine_validation_enabled() and isinstance(self.prior, dict):
            unused = sorted(set(self.prior) - self._hits)
            if unused:
                warnings.warn(
                    f"lift: the prior has entries {unused} that match no param of the run; "
                    f"the params seen without a prior were {sorted(self._misses)}",
                    UserWarning,
                    stacklevel=2,
                )
        return super().__exit__(exc_type, exc_value, traceback)

    def _reset(self) -> None:
        self._samples_cache = {}

    def _pyro_param(self, msg) -> None:
        name = msg["name"]
        prior = self.prior
        stop = False
        if isinstance(prior, dict):
            key = user_param_name(name)
            if key not in prior:
                self._misses.add(key)
                return
            self._hits.add(key)
            prior = prior[key]
        elif not isinstance(prior, Distribution):
            stop = True  # a stochastic function: its own sample sites stand for the param
        if isinstance(prior, Distribution) or hasattr(prior, "log_prob"):
            msg["fn"] = prior
            msg["args"] = ()
            msg["kwargs"] = {}
            msg["infer"] = {}
        elif callable(prior):
            # called like the param store: with the initial value (without the param's name)
            msg["fn"] = prior
            msg["args"] = msg["args"][1:]
            msg["stop"] = stop
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
