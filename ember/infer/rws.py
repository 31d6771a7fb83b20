"""ReweightedWakeSleep: reweighted wake-sleep (Bornschein and Bengio 2015; Le et al. 2019).

Two losses are estimated together from ``K`` guide particles ``z_k ~ q(z | x)``
with importance weights ``w_k = p(x, z_k) / q(z_k)``:

* wake-theta, for the model's parameters: ``-log( 1/K * sum_k w_k )``, the
  importance weighted bound (its gradient reaches only the model: the
  particles and ``q`` are held fixed);
* phi, for the guide's parameters: ``insomnia * wake_phi + (1 - insomnia) *
  sleep_phi``, where wake-phi is ``-sum_k wbar_k log q(z_k)`` with the
  self-normalized weights ``wbar_k = w_k / sum_j w_j`` (held fixed): a
  self-normalized estimate of ``KL(p(z | x) || q)`` up to a constant; and
  sleep-phi is ``-E_{p(z, x)} log q(z | x)``, from ``num_sleep_particles`` joint
  draws of the model with its observed sites resampled.

For the sleep term the guide receives the model's draws of the observed sites
as the keyword argument ``observations`` (a dict from site name to value), so a
guide used with ``insomnia < 1`` must accept it (``observations=None`` as default
lets the same guide run in the wake phase).
"""

from __future__ import annotations

import inspect
import math
from typing import Callable, Tuple

import torch

from ember import poutine
from ember.infer.elbo import ELBO
from ember.infer.renyi_elbo import particle_trace_pairs, stack_particles
from ember.infer.util import (
    check_model_guide_match,
    guess_max_plate_nesting,
    is_validation_enabled,
    particle_sum,
    torch_item,
    vectorize,
)
from ember.poutine.util import prune_subsample_sites
from ember.util import warn_if_nan

__all__ = ["ReweightedWakeSleep"]

#: The name of the plate that vectorizes the sleep particles.
SLEEP_PARTICLES_PLATE = "num_sleep_particles_vectorized"


def _accepts_observations(fn: Callable) -> bool:
    """Whether ``fn`` can be called with an ``observations=`` keyword (True if unknown)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        or (p.name == "observations" and p.kind is not inspect.Parameter.POSITIONAL_ONLY)
        for p in params
    )


class ReweightedWakeSleep(ELBO):
    """Reweighted wake-sleep: a model loss (wake-theta) and a guide loss (wake/sleep-phi).

    :param num_particles: guide particles per estimate (at least 2: the weights are
        self-normalized). Default 2.
    :param insomnia: the weight in ``[0, 1]`` of wake-phi against sleep-phi in the
        guide's loss; 1 (default) is wake-phi only, 0 sleep-phi only (as in CSIS).
    :param model_has_params: whether the model has parameters to learn; with
        ``False`` and ``insomnia=0`` the wake pass is skipped (the wake-theta loss
        is then not computed and reported as 0).
    :param num_sleep_particles: joint model draws for sleep-phi (default
        ``num_particles``).
    :param vectorize_particles: draw the particles in one vectorized pass
        (default True).
    :param max_plate_nesting: as for :class:`~ember.infer.elbo.ELBO`.
    :param strict_enumeration_warning: as for :class:`~ember.infer.elbo.ELBO`.

    :meth:`loss` returns ``(wake_theta_loss, phi_loss)`` as tensors and
    :meth:`loss_and_grads` as floats, after one backward pass on their sum (the
    two losses reach disjoint parameters: the model's and the guide's). Under
    :class:`~ember.infer.svi.SVI` a step returns the pair. See the module docs
    for the guide's ``observations`` keyword (sleep-phi). Mini-batches
    (subsampled plates) are not supported.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer import ReweightedWakeSleep
        >>> def model():
        ...     z = ember.sample("z", dist.Normal(0.0, 1.0))
        ...     ember.sample("x", dist.Normal(z, 1.0), obs=torch.tensor(0.0))
        >>> def guide(observations=None):  # the exact posterior N(0, 1/2)
        ...     ember.sample("z", dist.Normal(0.0, 0.5 ** 0.5))
        >>> theta_loss, phi_loss = ReweightedWakeSleep(num_particles=3).loss(model, guide)
        >>> bool(torch.isclose(theta_loss, -dist.Normal(0.0, 2**0.5).log_prob(torch.tensor(0.0))))
        True
    """

    def __init__(
        self,
        num_particles: int = 2,
        insomnia: float = 1.0,
        model_has_params: bool = True,
        num_sleep_particles: int | None = None,
        vectorize_particles: bool = True,
        max_plate_nesting: float = math.inf,
        strict_enumeration_warning: bool = True,
    ):
        if isinstance(num_particles, int) and not isinstance(num_particles, bool):
            if num_particles < 2:
                raise ValueError(
                    "ReweightedWakeSleep needs to be run with more than one particle (the "
                    f"weights are self-normalized), got num_particles={num_particles}"
                )
        if isinstance(insomnia, bool) or not isinstance(insomnia, (int, float)):
            raise TypeError(f"ReweightedWakeSleep: insomnia must be a number, got {insomnia!r}")
        if not 0 <= insomnia <= 1:
            raise ValueError(f"ReweightedWakeSleep: insomnia should be in [0, 1], got {insomnia}")
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=vectorize_particles,
            strict_enumeration_warning=strict_enumeration_warning,
        )
        if num_sleep_particles is None:
            num_sleep_particles = num_particles
        if (
            isinstance(num_sleep_particles, bool)
            or not isinstance(num_sleep_particles, int)
            or num_sleep_particles < 1
        ):
            raise ValueError(
                "ReweightedWakeSleep: num_sleep_particles must be an int >= 1, got "
                f"{num_sleep_particles!r}"
            )
        self.insomnia = insomnia
        self.model_has_params = model_has_params
        self.num_sleep_particles = num_sleep_particles

    # ------------------------------------------------------------------ the losses
    def wake_sleep_losses(
        self, model: Callable, guide: Callable, *args, **kwargs
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(wake_theta_loss, phi_loss)`` as differentiable tensors (see the module docs)."""
        wake_theta_loss = torch.tensor(0.0)
        wake_phi_loss = sleep_phi_loss = None
        if self.model_has_params or self.insomnia > 0:
            log_joints, log_qs = self._wake_log_densities(model, guide, args, kwargs)
            log_weights = log_joints - log_qs.detach()
            log_sum = torch.logsumexp(log_weights, 0)
            wake_theta_loss = -(log_sum - math.log(self.num_particles))
            warn_if_nan(wake_theta_loss, "wake theta loss")
            if self.insomnia > 0:
                normalized = (log_weights - log_sum).exp().detach()
                wake_phi_loss = -(normalized * log_qs).sum()
                warn_if_nan(wake_phi_loss, "wake phi loss")
        if self.insomnia < 1:
            sleep_phi_loss = self._sleep_phi_loss(model, guide, args, kwargs)
            warn_if_nan(sleep_phi_loss, "sleep phi loss")
        if self.insomnia == 1:
            phi_loss = wake_phi_loss
        elif self.insomnia == 0:
            phi_loss = sleep_phi_loss
        else:
            phi_loss = self.insomnia * wake_phi_loss + (1.0 - self.insomnia) * sleep_phi_loss
        return wake_theta_loss, phi_loss

    def _wake_log_densities(self, model, guide, args, kwargs):
        """Per-particle ``log p(x, z_k)`` and ``log q(z_k)``, the guide's values detached."""
        pairs, dim = particle_trace_pairs(self, model, guide, args, kwargs, detach=True)
        joints, qs = [], []
        for model_trace, guide_trace in pairs:
            log_joint = 0.0
            for site in model_trace.nodes.values():
                if site["type"] == "sample":
                    log_joint = log_joint + particle_sum(site["log_prob"], dim)
            log_q = 0.0
            for site in guide_trace.nodes.values():
                if site["type"] == "sample":
                    log_q = log_q + particle_sum(site["log_prob"], dim)
            joints.append(log_joint)
            qs.append(log_q)
        n = self.num_particles
        if dim is None:
            return stack_particles(joints, None, n), stack_particles(qs, None, n)
        # particle_sum leaves one entry per particle (or a scalar shared by all)
        return tuple(torch.as_tensor(v[0]).expand(n) for v in (joints, qs))

    def _sleep_phi_loss(self, model, guide, args, kwargs):
        """``-1/S sum_s log q(z_s | x_s)`` over ``S`` joint draws ``(z_s, x_s)`` of the model."""
        if not _accepts_observations(guide):
            raise TypeError(
                "ReweightedWakeSleep with insomnia < 1 passes the model's draws of the observed "
                "sites to the guide as the keyword argument 'observations'; the guide "
                f"{getattr(guide, '__name__', type(guide).__name__)!r} does not accept it "
                "(add observations=None to its signature)"
            )
        free_model = poutine.uncondition(model)
        sleep_guide = guide
        repeats = self.num_sleep_particles
        nesting = self.max_plate_nesting
        if self.vectorize_particles:
            if self.max_plate_nesting == math.inf:
                self.max_plate_nesting = guess_max_plate_nesting(free_model, guide, args, kwargs)
            nesting = self.max_plate_nesting + 1
            if self.num_sleep_particles > 1:
                dim = -int(self.max_plate_nesting) - 1
                free_model = vectorize(free_model, repeats, dim, SLEEP_PARTICLES_PLATE)
                sleep_guide = vectorize(guide, repeats, dim, SLEEP_PARTICLES_PLATE)
            repeats = 1
        total = 0.0
        for _ in range(repeats):
            model_trace = poutine.trace(free_model).get_trace(*args, **kwargs)
            model_trace.detach_()
            observations = {}
            for name, site in model_trace.nodes.items():
                if site["type"] == "sample" and (site["infer"] or {}).get("was_observed"):
                    site["is_observed"] = True
                    observations[name] = site["value"]
            guide_kwargs = dict(kwargs, observations=observations)
            guide_trace = poutine.trace(poutine.replay(sleep_guide, trace=model_trace)).get_trace(
                *args, **guide_kwargs
            )
            if is_validation_enabled():
                check_model_guide_match(model_trace, guide_trace, nesting)
            guide_trace = prune_subsample_sites(guide_trace)
            total = total + guide_trace.log_prob_sum()
        return -total / self.num_sleep_particles

    # ------------------------------------------------------------------ the contract
    def loss_and_surrogate(self, model, guide, *args, **kwargs):
        """``(loss, surrogate_loss)``: the sum of the two losses (detached, and with its
        gradients: each loss reaches only its own parameters)."""
        wake_theta_loss, phi_loss = self.wake_sleep_losses(model, guide, *args, **kwargs)
        total = wake_theta_loss + phi_loss
        return total.detach(), total

    def loss(self, model, guide, *args, **kwargs):
        """``(wake_theta_loss, phi_loss)`` as tensors, without gradients."""
        with torch.no_grad():
            wake_theta_loss, phi_loss = self.wake_sleep_losses(model, guide, *args, **kwargs)
        return wake_theta_loss, phi_loss

    def loss_and_grads(self, model, guide, *args, **kwargs):
        """Back-propagate both losses (one pass on their sum); return them as floats."""
        wake_theta_loss, phi_loss = self.wake_sleep_losses(model, guide, *args, **kwargs)
        total = wake_theta_loss + phi_loss
        if total.requires_grad:
            total.backward(retain_graph=self.retain_graph)
        return torch_item(wake_theta_loss.detach()), torch_item(phi_loss.detach())
