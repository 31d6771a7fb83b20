"""ReplayMessenger: reuse the values of a previous trace (and/or given params)."""

from __future__ import annotations

from ember.poutine.messenger import Messenger
from ember.poutine.trace_struct import SiteError, Trace


class ReplayMessenger(Messenger):
    """Give unobserved sample sites the values they had in ``trace``; params from ``params``.

    Example::

        >>> import ember, ember.distributions as dist
        >>> model = lambda: ember.sample("x", dist.Normal(0.0, 1.0))
        >>> old = ember.poutine.trace(model).get_trace()
        >>> new = ember.poutine.trace(ember.poutine.replay(model, trace=old)).get_trace()
        >>> bool(new.nodes["x"]["value"] == old.nodes["x"]["value"])
        True
    """

    def __init__(self, trace: Trace | None = None, params: dict | None = None):
        super().__init__()
        if trace is None and params is None:
            raise ValueError("replay needs trace= (a Trace) or params= (a dict)")
        if trace is not None and not isinstance(trace, Trace):
            raise TypeError(f"replay: trace must be an ember.poutine.Trace, got {type(trace)}")
        self.trace = trace
        self.params = params

    def _pyro_sample(self, msg) -> None:
        trace = self.trace
        if trace is None:
            return
        name = msg["name"]
        site = trace.nodes.get(name)
        if site is None or msg["is_observed"]:
            return
        if site["type"] != "sample" or site["is_observed"]:
            raise SiteError(
                f"replay: site {name!r} must be an unobserved sample site in the replayed trace, "
                f"but there it is a {site['type']} site"
                + (" (observed)" if site.get("is_observed") else "")
            )
        msg["done"] = True
        msg["value"] = site["value"]
        msg["infer"] = site["infer"]

    def _pyro_param(self, msg) -> None:
        params = self.params
        if params is None:
            return
        name = msg["name"]
        if name in params:
            msg["done"] = True
            msg["value"] = params[name]
