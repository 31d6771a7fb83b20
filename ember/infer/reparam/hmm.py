"""LinearHMMReparam: make a LinearHMM's noise conditionally Gaussian."""

from __future__ import annotations

import torch

import ember.distributions as dist
from ember.infer.reparam.reparam import Reparam

__all__ = ["LinearHMMReparam"]


def _as_vector_event(fn):
    """``fn`` with event dim exactly 1 (noise distributions of a Gaussian HMM)."""
    return fn.to_event(1 - fn.event_dim)


def _split_observation_transforms(obs_dist):
    """``(noise, transforms)``: an observation distribution written as
    ``TransformedDistribution(noise, transforms)``, possibly inside ``Independent``
    (such as ``LogNormal(...).to_event(1)``), split into its noise and the
    elementwise transforms applied to the observations."""
    base, event_dim = Reparam.unwrap_independent(obs_dist)
    if not isinstance(base, torch.distributions.TransformedDistribution):
        return obs_dist, []
    transforms = []
    while isinstance(base, torch.distributions.TransformedDistribution):
        transforms = list(base.transforms) + transforms
        base = base.base_dist
    if any(t.codomain.event_dim for t in transforms):
        return obs_dist, []  # not elementwise: left to GaussianHMM to reject
    return Reparam.wrap_event(base, event_dim), transforms


class LinearHMMReparam(Reparam):
    """Reparameterize a :class:`~ember.distributions.LinearHMM` (or an
    :class:`~ember.distributions.IndependentHMM` of one) into a
    :class:`~ember.distributions.GaussianHMM` by applying reparameterizers to
    its initial, transition and observation noise (``init``, ``trans``,
    ``obs``; e.g. :class:`StudentTReparam`, :class:`SymmetricStableReparam`,
    :class:`StableReparam`), which must make them Gaussian conditionally on
    new auxiliary sites ``"<x>_init_*"``, ``"<x>_trans_*"``, ``"<x>_obs_*"``.
    The distribution's ``duration`` must be set. Observation transforms are
    kept (the result is then a ``TransformedDistribution``).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer.reparam import StudentTReparam
        >>> hmm = dist.LinearHMM(
        ...     dist.Normal(torch.zeros(2), 1.0).to_event(1), torch.eye(2),
        ...     dist.StudentT(3.0, torch.zeros(2), 1.0).to_event(1), torch.ones(2, 1),
        ...     dist.Normal(torch.zeros(1), 1.0).to_event(1), duration=5)
        >>> model = lambda: ember.sample("x", hmm)
        >>> rep = LinearHMMReparam(trans=StudentTReparam())
        >>> tr = ember.poutine.trace(ember.poutine.reparam(model, {"x": rep})).get_trace()
        >>> type(tr.nodes["x"]["fn"]).__name__, tr.nodes["x_trans_gamma"]["value"].shape
        ('GaussianHMM', torch.Size([5, 2]))
    """

    def __init__(self, init=None, trans=None, obs=None):
        for key, r in (("init", init), ("trans", trans), ("obs", obs)):
            if r is not None and not isinstance(r, Reparam):
                raise TypeError(
                    f"LinearHMMReparam: {key} must be a Reparam or None, got {type(r).__name__}"
                )
        self.init = init
        self.trans = trans
        self.obs = obs

    def apply(self, msg):
        name, value, is_observed = msg["name"], msg["value"], msg["is_observed"]
        fn, event_dim = self.unwrap_independent(msg["fn"])
        if not isinstance(fn, (dist.LinearHMM, dist.IndependentHMM)):
            raise TypeError(
                f"LinearHMMReparam at site {name!r} needs a LinearHMM or IndependentHMM, "
                f"got {type(fn).__name__}"
            )
        if fn.duration is None:
            raise ValueError(
                f"LinearHMMReparam requires duration to be specified on targeted LinearHMM "
                f"distributions (site {name!r}); pass duration= to the LinearHMM"
            )
        if isinstance(fn, dist.IndependentHMM):
            # An IndependentHMM of shape (T, D) is a batch of D univariate HMMs.
            indep_value = None if value is None else value.transpose(-1, -2).unsqueeze(-1)
            out = self.apply(
                {
                    "name": name,
                    "fn": fn.base_dist.to_event(1),
                    "value": indep_value,
                    "is_observed": is_observed,
                }
            )
            hmm = dist.IndependentHMM(out["fn"].to_event(-1))
            if out["value"] is not indep_value:
                value = out["value"].squeeze(-1).transpose(-1, -2)
            return {"fn": hmm, "value": value, "is_observed": is_observed}

        init_dist = fn.initial_dist
        if self.init is not None:
            out = self.init.apply(
                {
                    "name": f"{name}_init",
                    "fn": self.wrap_event(init_dist, event_dim - 1),
                    "value": None,
                    "is_observed": False,
                }
            )
            init_dist = _as_vector_event(out["fn"])
        trans_dist = fn.transition_dist
        if self.trans is not None:
            if trans_dist.batch_shape[-1:] != (fn.duration,):
                trans_dist = trans_dist.expand(trans_dist.batch_shape[:-1] + (fn.duration,))
            out = self.trans.apply(
                {
                    "name": f"{name}_trans",
                    "fn": self.wrap_event(trans_dist, event_dim),
                    "value": None,
                    "is_observed": False,
                }
            )
            trans_dist = _as_vector_event(out["fn"])
        obs_dist, obs_transforms = _split_observation_transforms(fn.obs_base_dist)
        if self.obs is not None:
            if obs_dist.batch_shape[-1:] != (fn.duration,):
                obs_dist = obs_dist.expand(obs_dist.batch_shape[:-1] + (fn.duration,))
            out = self.obs.apply(
                {
                    "name": f"{name}_obs",
                    "fn": self.wrap_event(obs_dist, event_dim),
                    "value": value,
                    "is_observed": is_observed,
                }
            )
            obs_dist = _as_vector_event(out["fn"])
            value, is_observed = out["value"], out["is_observed"]
        parts = (("initial", init_dist), ("transition", trans_dist), ("observation", obs_dist))
        for part, d in parts:
            base = d
            while isinstance(base, dist.Independent):
                base = base.base_dist
            if not isinstance(base, (dist.Normal, dist.MultivariateNormal)):
                raise ValueError(
                    f"LinearHMMReparam at site {name!r}: the {part} noise is "
                    f"{type(base).__name__}, not Gaussian; give a reparameterizer for it "
                    "(init=, trans=, obs=) such as StudentTReparam or StableReparam"
                )
        hmm = dist.GaussianHMM(
            init_dist,
            fn.transition_matrix,
            trans_dist,
            fn.observation_matrix,
            obs_dist,
            duration=fn.duration,
        )
        hmm = self.wrap_event(hmm, event_dim)
        transforms = obs_transforms + list(fn.transforms)
        if transforms:
            hmm = dist.TransformedDistribution(hmm, transforms)
        return {"fn": hmm, "value": value, "is_observed": is_observed}
