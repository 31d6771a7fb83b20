"""The base class of guides that run the model under themselves (messenger guides),
and what the ELBOs need to know about them.

Example::

    >>> import torch, ember, ember.distributions as dist
    >>> class PointGuide(GuideMessenger):
    ...     def get_posterior(self, name, prior):
    ...         return torch.zeros(prior.batch_shape + prior.event_shape)
    >>> def model():
    ...     ember.sample("z", dist.Normal(0.0, 1.0))
    ...     ember.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(1.0))
    >>> sorted(PointGuide(model)())
    ['x', 'z']
"""

from __future__ import annotations

from typing import Callable, Dict, Tuple, Union

import torch

from ember.distributions.delta import Delta
from ember.poutine.broadcast import broadcast_to_plates
from ember.poutine.messenger import Messenger, unwrap
from ember.poutine.subsample_messenger import site_is_subsample
from ember.poutine.trace_struct import Trace
from ember.poutine.util import prune_subsample_sites

__all__ = ["GuideMessenger", "drop_model_observations"]


class GuideMessenger(Messenger):
    """Base class of guides that run the model under themselves.

    Calling the guide with the model's arguments runs the model; each latent
    site's distribution is replaced by :meth:`get_posterior` of its prior, and
    the run is recorded in :attr:`trace`. The call returns ``{name: value}``
    of every sample site (latent, observed and deterministic). A subclass
    implements :meth:`get_posterior`.

    Used with an ELBO, the guide's trace holds the posterior at each latent
    site and the model replayed on it the priors; :meth:`get_traces` gives the
    same pair from the guide's own run.

    :param model: the model.
    """

    def __init__(self, model: Callable):
        super().__init__()
        self._model = (model,)  # a tuple, so a PyroModule model is not a sub-module
        self.trace = None

    @property
    def model(self) -> Callable:
        """The model the guide runs."""
        return self._model[0]

    def __getstate__(self):
        # the model is kept (the guide runs it), the trace of the last run is not
        state = super().__getstate__().copy()
        state["trace"] = None
        return state

    def __call__(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        self.args_kwargs = args, kwargs
        self.trace = Trace()
        try:
            with self:
                self.model(*args, **kwargs)
        finally:
            del self.args_kwargs
        model_trace, _ = self.get_traces()
        return {
            name: site["value"]
            for name, site in model_trace.nodes.items()
            if site["type"] == "sample"
        }

    def _pyro_sample(self, msg) -> None:
        if msg["is_observed"] or site_is_subsample(msg):
            return
        # the model's plates (inside this handler) have not broadcast the prior yet
        broadcast_to_plates(msg)
        prior = msg["fn"]
        msg["infer"]["prior"] = prior
        posterior = self.get_posterior(msg["name"], prior)
        if isinstance(posterior, torch.Tensor):
            posterior = Delta(posterior, event_dim=prior.event_dim)
        if posterior.batch_shape != prior.batch_shape:
            posterior = posterior.expand(prior.batch_shape)
        msg["fn"] = posterior

    def _postprocess_message(self, msg) -> None:
        name = msg["name"]
        if name is None:
            return
        if msg["type"] == "sample":
            prior = msg["infer"].get("prior")
            if prior is not None and prior.batch_shape != msg["fn"].batch_shape:
                # plates outside the guide (e.g. vectorized particles) batched the posterior
                msg["infer"]["prior"] = prior.expand(msg["fn"].batch_shape)
        if name in self.trace.nodes and msg["type"] == "param":
            return
        self.trace.add_node(name, **msg.copy())

    def get_posterior(
        self, name: str, prior
    ) -> Union[torch.distributions.Distribution, torch.Tensor]:
        """The posterior of site ``name`` given its ``prior`` (already conditioned on
        the upstream posterior samples): a distribution, or a tensor (a point).

        It may use ``ember.param`` (and ``ember.sample`` with
        ``infer={"is_auxiliary": True}``), :meth:`upstream_value`,
        :attr:`trace` (the sites so far) and ``self.args_kwargs`` (the model's
        arguments).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement get_posterior")

    def upstream_value(self, name: str) -> torch.Tensor:
        """The value of an upstream sample (or deterministic) site of this run."""
        return self.trace.nodes[name]["value"]

    def get_traces(self) -> Tuple[Trace, Trace]:
        """``(model_trace, guide_trace)`` of the last run: the model's sites with their
        priors, and the latent sites with their posteriors (no plate subsample sites)."""
        guide_trace = prune_subsample_sites(self.trace)
        model_trace = guide_trace.copy()
        for name, site in list(guide_trace.nodes.items()):
            if site["type"] != "sample" or site["is_observed"]:
                del guide_trace.nodes[name]
                continue
            model_site = dict(site)
            model_site["fn"] = site["infer"]["prior"]
            model_trace.nodes[name] = model_site
        return model_trace, guide_trace


def drop_model_observations(guide: Callable, guide_trace: Trace) -> None:
    """Remove from ``guide_trace`` (a trace of ``guide``) the observed sites that a
    :class:`GuideMessenger` guide records from the model it runs (in place).

    The ELBOs count every sample site of a guide trace in log q, observed ones
    (a guide's ``factor``) included; the observations of the model a messenger
    guide runs belong to the model alone. Other guides are left alone.
    """
    guide = unwrap(guide)
    while not isinstance(guide, GuideMessenger):  # through wrappers such as functools.wraps
        inner = getattr(guide, "__wrapped__", None)
        if inner is None:
            return
        guide = unwrap(inner)
    observed = [
        name
        for name, site in guide_trace.nodes.items()
        if site["type"] == "sample" and site["is_observed"]
    ]
    for name in observed:
        guide_trace.remove_node(name)
