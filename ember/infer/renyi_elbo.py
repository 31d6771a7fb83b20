"""RenyiELBO: the variational Renyi bound of order ``alpha`` (Li and Turner 2016).

With ``K`` particles ``z_k ~ q`` and log-weights ``log w_k = log p(x, z_k) - log q(z_k)``,
the bound is

    ``L_alpha = 1 / (1 - alpha) * log( 1/K * sum_k w_k ** (1 - alpha) )``

(``alpha != 1``). For ``alpha = 0`` it is the importance weighted bound of
Burda et al. (IWAE); as ``alpha -> 1`` it tends to the usual ELBO; for
``alpha >= 0`` it is a lower bound of ``log p(x)`` whose expectation grows
with ``K``.

Plates that every model sample site sits in (e.g. a data plate holding one
local latent per data point) are treated as independent: the bound is formed
for each of their elements separately and then summed, which is tighter than
one bound over the whole plate.

The gradient is that of the bound for reparameterized guide sites (each
particle's log-weight gradient weighted by its self-normalized weight
``w_k ** (1 - alpha) / sum_j w_j ** (1 - alpha)``). For a non-reparameterized
site ``z`` it is the self-normalized score-function estimate
``sum_k wbar_k * alpha / (1 - alpha) * grad log q(z_k)`` of the same paper
(which vanishes for ``alpha = 0``, where the bound's expectation no longer
depends on the guide as ``K`` grows).
"""

from __future__ import annotations

import math
from typing import Callable, List, Sequence, Tuple

import torch

from ember.infer.elbo import ELBO
from ember.infer.util import (
    VECTORIZED_PARTICLES_PLATE,
    check_if_enumerated,
    get_importance_trace,
    guess_max_plate_nesting,
    is_identically_zero,
    is_validation_enabled,
    vectorize,
)
from ember.util import warn_if_nan

__all__ = ["RenyiELBO", "particle_trace_pairs", "stack_particles"]


def particle_trace_pairs(
    elbo: ELBO, model: Callable, guide: Callable, args: Tuple, kwargs: dict, detach: bool = False
) -> Tuple[List[Tuple], int | None]:
    """The scored trace pairs of ``elbo.num_particles`` particles, and the particle dim.

    With ``elbo.vectorize_particles`` (and more than one particle) model and guide
    run once inside a plate of ``num_particles`` at
    ``dim = -(max_plate_nesting + 1)`` (found by tracing once when not given):
    one pair is returned with that dim. Otherwise one pair per particle and
    ``None``. ``detach`` detaches the guide's sampled values (no pathwise
    gradients reach the guide). With validation on, guide sites configured
    for enumeration give a warning (they are sampled here).

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember.infer import RenyiELBO
        >>> def model():
        ...     ember.sample("z", dist.Normal(0.0, 1.0))
        >>> pairs, dim = particle_trace_pairs(
        ...     RenyiELBO(num_particles=4, vectorize_particles=True), model, model, (), {})
        >>> len(pairs), dim, pairs[0][1].nodes["z"]["value"].shape
        (1, -1, torch.Size([4]))
    """
    if elbo.vectorize_particles and elbo.num_particles > 1:
        if elbo.max_plate_nesting == math.inf:
            elbo.max_plate_nesting = guess_max_plate_nesting(model, guide, args, kwargs)
        dim = -int(elbo.max_plate_nesting) - 1
        model = vectorize(model, elbo.num_particles, dim, VECTORIZED_PARTICLES_PLATE)
        guide = vectorize(guide, elbo.num_particles, dim, VECTORIZED_PARTICLES_PLATE)
        repeats, nesting = 1, -dim
    else:
        dim, repeats, nesting = None, elbo.num_particles, elbo.max_plate_nesting
    pairs = []
    for _ in range(repeats):
        model_trace, guide_trace = get_importance_trace(
            "flat", nesting, model, guide, args, kwargs, detach=detach
        )
        if is_validation_enabled():
            check_if_enumerated(guide_trace)
        pairs.append((model_trace, guide_trace))
    return pairs, dim


def stack_particles(values: Sequence, particle_dim: int | None, num_particles: int) -> torch.Tensor:
    """Per-particle values as one tensor with the particles in dim 0.

    ``values`` holds one tensor (or number) per particle when ``particle_dim``
    is None (they are broadcast together and stacked), or a single tensor whose
    ``particle_dim`` indexes the particles (it is moved to the front; a tensor
    without that dim is shared by all particles and expanded).

    Example::

        >>> import torch
        >>> stack_particles([torch.zeros(3), 1.0], None, 2).shape
        torch.Size([2, 3])
        >>> stack_particles([torch.ones(4, 1, 3)], -3, 4).shape
        torch.Size([4, 1, 3])
        >>> stack_particles([torch.ones(3)], -2, 5).shape
        torch.Size([5, 3])
    """
    if particle_dim is None:
        tensors = [v for v in values if isinstance(v, torch.Tensor)]
        like = tensors[0] if tensors else torch.tensor(0.0)
        full = [v if isinstance(v, torch.Tensor) else like.new_tensor(float(v)) for v in values]
        return torch.stack(torch.broadcast_tensors(*full))
    (value,) = values
    if not isinstance(value, torch.Tensor):
        value = torch.tensor(float(value))
    if value.dim() < -particle_dim:
        value = value.reshape((1,) * (-particle_dim - value.dim()) + value.shape)
    value = value.movedim(particle_dim, 0)
    return value.expand((num_particles,) + value.shape[1:])


def _common_plate_dims(model_trace) -> frozenset:
    """Dims of the plates that every model sample site sits in (kept apart, not summed)."""
    stacks = [
        frozenset(f for f in site["cond_indep_stack"] if f.dim is not None)
        for site in model_trace.nodes.values()
        if site["type"] == "sample"
    ]
    if not stacks:
        return frozenset()
    return frozenset(f.dim for f in frozenset.intersection(*stacks))


def _sum_except(value, keep: frozenset):
    """Sum ``value`` over every dim not in ``keep`` (negative dims), keeping them as size 1."""
    if not isinstance(value, torch.Tensor) or value.dim() == 0:
        return value
    dims = [d for d in range(-value.dim(), 0) if d not in keep]
    if not dims:
        return value
    return value.sum(dims, keepdim=True)


class RenyiELBO(ELBO):
    """The Renyi ``alpha``-divergence bound; ``alpha = 0`` is the IWAE bound.

    :param alpha: the order of the divergence (any number but 1; ``alpha >= 0``
        for a lower bound of the evidence). Default 0.
    :param num_particles: particles per estimate (the bound is a function of
        all of them together). Default 2.
    :param max_plate_nesting: as for :class:`~ember.infer.elbo.ELBO`.
    :param vectorize_particles: draw all particles in one pass.
    :param strict_enumeration_warning: as for :class:`~ember.infer.elbo.ELBO`.

    ``loss`` is ``-L_alpha`` (see the module docs) estimated from one set of
    ``num_particles`` particles; ``loss_and_grads`` also back-propagates its
    surrogate. A guide site that is only partly reparameterized is not supported.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer import RenyiELBO
        >>> def model():
        ...     z = ember.sample("z", dist.Normal(0.0, 1.0))
        ...     ember.sample("x", dist.Normal(z, 1.0), obs=torch.tensor(0.0))
        >>> def guide():  # the exact posterior N(0, 1/2): every weight is p(x)
        ...     ember.sample("z", dist.Normal(0.0, 0.5 ** 0.5))
        >>> loss = RenyiELBO(alpha=0.5, num_particles=5).loss(model, guide)
        >>> log_evidence = dist.Normal(0.0, 2**0.5).log_prob(torch.tensor(0.0)).item()
        >>> abs(loss + log_evidence) < 1e-5
        True
    """

    def __init__(
        self,
        alpha: float = 0,
        num_particles: int = 2,
        max_plate_nesting: float = math.inf,
        max_iarange_nesting: float | None = None,
        vectorize_particles: bool = False,
        strict_enumeration_warning: bool = True,
    ):
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise TypeError(f"RenyiELBO: alpha must be a number, got {alpha!r}")
        if alpha == 1:
            raise ValueError(
                "RenyiELBO: the order alpha should not be equal to 1 (the bound is the usual "
                "ELBO there); use Trace_ELBO for alpha = 1"
            )
        if not math.isfinite(alpha):
            raise ValueError(f"RenyiELBO: alpha must be finite, got {alpha!r}")
        self.alpha = alpha
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=max_plate_nesting,
            max_iarange_nesting=max_iarange_nesting,
            vectorize_particles=vectorize_particles,
            strict_enumeration_warning=strict_enumeration_warning,
        )

    def log_weights_and_surrogates(self, model, guide, args, kwargs):
        """Per-particle ``(log_weights, surrogates, particle_dim)``, particles in dim 0.

        ``log_weights`` (detached) are ``log p - log q`` of each particle, summed over
        every plate except those shared by all model sample sites; ``surrogates``
        carry the gradients (``log p - log q`` with pathwise gradients, plus
        ``alpha / (1 - alpha) * log q`` for non-reparameterized guide sites); both
        are ``None`` when model and guide have no sample sites.
        """
        pairs, dim = particle_trace_pairs(self, model, guide, args, kwargs)
        grad = torch.is_grad_enabled()
        sf_coef = self.alpha / (1.0 - self.alpha)
        weights: List = []
        surrogates: List = []
        found = False
        for model_trace, guide_trace in pairs:
            keep = _common_plate_dims(model_trace)
            log_p = 0.0
            for site in model_trace.nodes.values():
                if site["type"] == "sample":
                    found = True
                    log_p = log_p + _sum_except(site["log_prob"], keep)
            # log p enters the surrogate with its gradients (pathwise and the model's params)
            log_w = surrogate = log_p
            for name, site in guide_trace.nodes.items():
                if site["type"] != "sample":
                    continue
                found = True
                term = _sum_except(site["log_prob"], keep)
                log_w = log_w - term
                if not grad:
                    continue
                _, score, entropy = site["score_parts"]
                reparam = not is_identically_zero(entropy)
                scored = not is_identically_zero(score)
                if reparam and scored:
                    raise NotImplementedError(
                        f"RenyiELBO: guide site {name!r} ({type(site['fn']).__name__}) is only "
                        "partly reparameterized; RenyiELBO supports fully reparameterized or "
                        "non-reparameterized sites"
                    )
                if reparam:
                    surrogate = surrogate - term
                if scored:
                    surrogate = surrogate + sf_coef * term
            weights.append(log_w.detach() if isinstance(log_w, torch.Tensor) else log_w)
            surrogates.append(surrogate)
        if not found:
            return None, None, dim
        n = self.num_particles
        log_weights = stack_particles(weights, dim, n)
        surrogate_particles = stack_particles(surrogates, dim, n) if grad else None
        return log_weights, surrogate_particles, dim

    def loss_and_surrogate(self, model, guide, *args, **kwargs):
        """``(loss, surrogate_loss)``: ``-L_alpha`` from ``num_particles`` particles, and a
        surrogate whose gradient is the estimator's gradient (see the module docs)."""
        log_weights, surrogates, _ = self.log_weights_and_surrogates(model, guide, args, kwargs)
        if log_weights is None:
            zero = torch.tensor(0.0)
            return zero, zero
        scaled = (1.0 - self.alpha) * log_weights
        log_mean = torch.logsumexp(scaled, dim=0) - math.log(self.num_particles)
        loss = -(log_mean.sum() / (1.0 - self.alpha))
        warn_if_nan(loss, "loss")
        if surrogates is None or not (
            isinstance(surrogates, torch.Tensor) and surrogates.requires_grad
        ):
            return loss, loss
        # self-normalized weights w_k^(1-alpha) / sum_j w_j^(1-alpha), per kept plate element
        normalized = (scaled - torch.logsumexp(scaled, dim=0)).exp()
        normalized, surrogates = torch.broadcast_tensors(normalized, surrogates)
        surrogate_loss = -(normalized * surrogates).sum()
        return loss, surrogate_loss
