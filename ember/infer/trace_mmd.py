"""Trace_MMD: the MMD-VAE loss (InfoVAE; Zhao, Song and Ermon 2017).

The loss replaces the ELBO's KL term by a maximum mean discrepancy between the
guide's marginal and the prior, for each latent site ``z`` the guide samples:

    ``loss = -E_q[log p(x | z)] + sum_z mmd_scale[z] * MMD_k(q(z), p(z))``

with ``MMD_k(q, p) = E k(z, z') + E k(y, y') - 2 E k(z, y)`` for ``z, z' ~ q``
and ``y, y' ~ p``, estimated from ``num_particles`` draws of each (the guide's
and, from an independent run of the model, the prior's). The first term holds
the model's other sample sites (observations and latents the guide does not
sample). Each draw of a site is one point of the MMD: only the particle
dimension is a sample dimension, every other dimension of the site (plates
included) is a coordinate of the point. Latent sites must be reparameterizable
in both model and guide.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Callable, Dict

import torch

from ember import poutine
from ember.infer.elbo import ELBO
from ember.infer.renyi_elbo import particle_trace_pairs
from ember.infer.util import VECTORIZED_PARTICLES_PLATE, vectorize
from ember.util import warn_if_nan

__all__ = ["Trace_MMD", "mmd"]


def mmd(x: torch.Tensor, y: torch.Tensor, kernel: Callable) -> torch.Tensor:
    """The (biased, V-statistic) squared MMD between the samples ``x`` and ``y`` (rows).

    ``kernel(a)`` and ``kernel(a, b)`` return the Gram matrices of the rows of
    ``a`` (with those of ``b``), as the GP kernels Pyro programs pass do.

    Example::

        >>> import torch
        >>> linear = lambda a, b=None: a @ (a if b is None else b).T
        >>> mmd(torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [0.0]]), linear)  # 2^2
        tensor(4.)
    """
    return kernel(x).mean() + kernel(y).mean() - 2 * kernel(x, y).mean()


def _check_kernel(kernel, where: str):
    if not callable(kernel):
        raise TypeError(
            f"Trace_MMD: {where} must be a kernel, a callable kernel(X, Z=None) returning the "
            f"Gram matrix of the rows of X and Z (e.g. a GP kernel such as RBF), got "
            f"{type(kernel).__name__}"
        )
    if isinstance(kernel, torch.nn.Module):
        kernel.requires_grad_(False)  # the kernel's own parameters stay fixed
    return kernel


class Trace_MMD(ELBO):
    """MMD-VAE loss: expected log-likelihood plus an MMD between guide and prior.

    :param kernel: the MMD kernel: a callable ``kernel(X, Z=None)`` returning the
        ``(n, m)`` Gram matrix of the rows of ``X`` (``n, d``) and ``Z``
        (``m, d``), or of ``X`` with itself, the call signature of Pyro's GP
        kernels (``pyro.contrib.gp.kernels``); or a dict from latent site names to
        such kernels. A ``torch.nn.Module`` kernel has its parameters frozen.
    :param mmd_scale: the weight of the MMD terms: a number, or a dict from site
        names to numbers.
    :param num_particles: draws of guide and prior per estimate (the MMD needs
        many; default 10).
    :param vectorize_particles: draw them in one pass (default True).
    :param max_plate_nesting: as for :class:`~ember.infer.elbo.ELBO`.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer import Trace_MMD
        >>> def rbf(x, z=None):
        ...     z = x if z is None else z
        ...     return torch.exp(-0.5 * torch.cdist(x, z).pow(2))
        >>> def model():
        ...     ember.sample("z", dist.Normal(0.0, 1.0))
        >>> def guide():
        ...     loc = ember.param("loc_mmd_doc", torch.tensor(3.0))
        ...     ember.sample("z", dist.Normal(loc, 1.0))
        >>> elbo = Trace_MMD(kernel=rbf, num_particles=200)
        >>> elbo.loss(model, guide) > 0.3  # guide far from the prior
        True
    """

    def __init__(
        self,
        kernel,
        mmd_scale=1,
        num_particles: int = 10,
        max_plate_nesting: float = math.inf,
        max_iarange_nesting: float | None = None,
        vectorize_particles: bool = True,
        strict_enumeration_warning: bool = True,
        ignore_jit_warnings: bool = False,
        retain_graph: bool | None = None,
    ):
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=max_plate_nesting,
            max_iarange_nesting=max_iarange_nesting,
            vectorize_particles=vectorize_particles,
            strict_enumeration_warning=strict_enumeration_warning,
            ignore_jit_warnings=ignore_jit_warnings,
            retain_graph=retain_graph,
        )
        self.kernel = kernel
        self.mmd_scale = mmd_scale

    @property
    def kernel(self) -> Dict[str, Callable]:
        """The kernel of each latent site (a dict; one kernel for all is a defaultdict)."""
        return self._kernel

    @kernel.setter
    def kernel(self, kernel) -> None:
        if isinstance(kernel, dict):
            self._kernel = {
                name: _check_kernel(k, f"kernel[{name!r}]") for name, k in kernel.items()
            }
        else:
            shared = _check_kernel(kernel, "kernel")
            self._kernel = defaultdict(lambda: shared)

    @property
    def mmd_scale(self) -> Dict[str, float]:
        """The weight of each latent site's MMD term (a dict)."""
        return self._mmd_scale

    @mmd_scale.setter
    def mmd_scale(self, mmd_scale) -> None:
        if isinstance(mmd_scale, dict):
            self._mmd_scale = dict(mmd_scale)
        elif isinstance(mmd_scale, (int, float)) and not isinstance(mmd_scale, bool):
            value = float(mmd_scale)
            self._mmd_scale = defaultdict(lambda: value)
        else:
            raise TypeError(
                f"Trace_MMD: mmd_scale should be a number or a dict of numbers, got {mmd_scale!r}"
            )

    def loss_parts(self, model: Callable, guide: Callable, *args, **kwargs):
        """``(log_likelihood, penalty)``: the particle average of the model's other
        sample sites' log-density and the weighted sum of the MMD terms (tensors)."""
        pairs, dim = particle_trace_pairs(self, model, guide, args, kwargs)
        if dim is not None:
            prior_model = vectorize(model, self.num_particles, dim, VECTORIZED_PARTICLES_PLATE)
        else:
            prior_model = model
        model_draws = defaultdict(list)
        guide_draws = defaultdict(list)
        log_likelihood = 0.0
        for model_trace, guide_trace in pairs:
            prior_trace = poutine.trace(prior_model).get_trace(*args, **kwargs)
            for name, site in model_trace.nodes.items():
                if site["type"] != "sample":
                    continue
                guide_site = guide_trace.nodes.get(name)
                if site["is_observed"] or guide_site is None or guide_site["type"] != "sample":
                    log_likelihood = log_likelihood + site["log_prob_sum"] / self.num_particles
                    continue
                prior_site = prior_trace.nodes[name]
                for role, s in (("model", prior_site), ("guide", guide_site)):
                    if not s["fn"].has_rsample:
                        raise ValueError(
                            f"Trace_MMD: {role} site {name!r} is not reparameterizable "
                            f"({type(s['fn']).__name__}); the MMD's gradient needs rsample"
                        )
                event_dim = prior_site["fn"].event_dim
                model_draws[name].append(self._points(prior_site["value"], dim, event_dim))
                guide_draws[name].append(self._points(guide_site["value"], dim, event_dim))
        penalty = 0.0
        for name, draws in model_draws.items():
            for what, table in (("kernel", self._kernel), ("mmd_scale", self._mmd_scale)):
                if not isinstance(table, defaultdict) and name not in table:
                    raise ValueError(
                        f"Trace_MMD: {what} is a dict without an entry for the latent site "
                        f"{name!r} (it has {sorted(table)}); give one for every latent site "
                        "the guide samples"
                    )
            divergence = mmd(torch.cat(draws), torch.cat(guide_draws[name]), self._kernel[name])
            penalty = penalty + self._mmd_scale[name] * divergence
        warn_if_nan(log_likelihood, "loglikelihood")
        warn_if_nan(penalty, "penalty")
        return torch.as_tensor(log_likelihood), torch.as_tensor(penalty)

    def _differentiable_loss_parts(self, model, guide, args, kwargs):  # Pyro's name
        return self.loss_parts(model, guide, *args, **kwargs)

    def _points(self, value: torch.Tensor, dim: int | None, event_dim: int) -> torch.Tensor:
        """A site's value as rows of points: one per particle, every other dim flattened."""
        if dim is None:
            return value.reshape(1, -1)
        pos = dim - event_dim
        if value.dim() < -pos:
            value = value.reshape((1,) * (-pos - value.dim()) + value.shape)
        value = value.movedim(pos, 0)
        value = value.expand((self.num_particles,) + value.shape[1:])
        return value.reshape(self.num_particles, -1)

    def loss_and_surrogate(self, model, guide, *args, **kwargs):
        """``(loss, loss)``: ``-log_likelihood + penalty`` is its own surrogate (every
        latent site is reparameterized)."""
        log_likelihood, penalty = self.loss_parts(model, guide, *args, **kwargs)
        loss = penalty - log_likelihood
        warn_if_nan(loss, "loss")
        return loss, loss
