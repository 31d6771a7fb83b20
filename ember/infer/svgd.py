"""SVGD: Stein variational gradient descent (Liu and Wang 2016).

A set of ``N`` particles ``x_1 .. x_N`` in the model's unconstrained latent
space is moved along

    ``phi(x_n) = 1/N sum_m [ k(x_m, x_n) grad log p(x_m) + grad_{x_m} k(x_m, x_n) ]``

(an attractive term towards high density and a repulsive term that keeps the
particles apart); at a fixed point the particles approximate the posterior.
``log p`` is the model's joint log-density in the unconstrained space (the
transforms' log-Jacobians included). With ``mode="multivariate"`` ``k`` is one
kernel on the whole vector; with ``mode="univariate"`` each coordinate ``d``
has its own kernel ``k_d`` on that coordinate (Singhal et al. 2019, kernelized
complete conditional Stein discrepancy), and ``phi(x_n)_d`` uses ``k_d``.
"""

from __future__ import annotations

import math
from abc import ABCMeta, abstractmethod
from typing import Dict, Tuple

import torch

from ember import poutine
from ember.distributions import Delta, biject_to
from ember.infer.autoguide.guides import AutoContinuous
from ember.infer.autoguide.initialization import init_to_sample
from ember.infer.trace_elbo import Trace_ELBO
from ember.infer.util import (
    VECTORIZED_PARTICLES_PLATE,
    unconstrained_param,
    vectorize,
    zero_grads,
)
from ember.optim.optim import PyroOptim
from ember.primitives import param

__all__ = ["IMQSteinKernel", "RBFSteinKernel", "SVGD", "SteinKernel", "median_bandwidth"]

#: The name of the parameter holding the particles (the joint unconstrained latent).
PARTICLES_PARAM = "svgd_particles"


def median_bandwidth(norm_sq: torch.Tensor, bandwidth_factor: float | None = None):
    """The bandwidth of each coordinate: the median over pairs of particles of the
    squared distance in that coordinate, divided by ``log(N + 1)`` (Liu and Wang's
    heuristic) and multiplied by ``bandwidth_factor`` if given.

    :param norm_sq: the ``(N, N, D)`` squared coordinate differences.

    Example::

        >>> import math, torch
        >>> x = torch.tensor([[0.0], [1.0], [3.0]])
        >>> h = median_bandwidth((x[None] - x[:, None]) ** 2)  # pairs: 1, 9, 4
        >>> bool(torch.isclose(h, torch.tensor([4.0 / math.log(4.0)])))
        True
    """
    n = norm_sq.size(0)
    index = torch.arange(n, device=norm_sq.device)
    pairs = norm_sq[index < index.unsqueeze(-1)]  # (N (N - 1) / 2, D)
    median = pairs.median(dim=0).values
    if bandwidth_factor is not None:
        median = bandwidth_factor * median
    return median / math.log(n + 1)


def _check_bandwidth_factor(value):
    if value is not None and not (
        isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    ):
        raise ValueError(f"bandwidth_factor must be positive (or None), got {value!r}")
    return value


class SteinKernel(metaclass=ABCMeta):
    """Base class of the kernels of :class:`SVGD`."""

    @abstractmethod
    def log_kernel_and_grad(self, particles: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The coordinate-wise log-kernels and their gradients.

        :param particles: an ``(N, D)`` tensor, one particle per row.
        :returns: ``(log_kernel, kernel_grad)``, both ``(N, N, D)``: ``log_kernel[n, m, d]``
            is the log of coordinate ``d``'s factor of ``k(x_n, x_m)`` (the kernel is the
            product of the factors, so the multivariate kernel is ``exp`` of the sum over
            ``d``), and ``kernel_grad[n, m, d]`` is the derivative of ``log_kernel[n, m, d]``
            with respect to ``x_{n, d}`` (minus the derivative with respect to ``x_{m, d}``,
            for a kernel of ``x_n - x_m``).
        """
        raise NotImplementedError


class _MedianBandwidthKernel(SteinKernel):
    """A Stein kernel of the coordinate differences with the median bandwidth."""

    @property
    def bandwidth_factor(self):
        """The factor of the median bandwidth (None for 1)."""
        return self._bandwidth_factor

    @bandwidth_factor.setter
    def bandwidth_factor(self, value) -> None:
        self._bandwidth_factor = _check_bandwidth_factor(value)

    def scaled_differences(self, particles):
        """``(diff, diff ** 2, h)``: ``diff[n, m] = x_m - x_n`` and the median bandwidth."""
        diff = particles.unsqueeze(0) - particles.unsqueeze(1)
        norm_sq = diff.pow(2)
        return diff, norm_sq, median_bandwidth(norm_sq, self.bandwidth_factor)


class RBFSteinKernel(_MedianBandwidthKernel):
    """The RBF kernel ``k(x, y) = exp(-sum_d (x_d - y_d)^2 / h_d)`` with the median
    bandwidth ``h`` (:func:`median_bandwidth`) chosen afresh from the particles.

    :param bandwidth_factor: a positive factor of the bandwidth (None: 1); it may be
        changed between steps.

    Example::

        >>> import torch
        >>> log_k, grad = RBFSteinKernel().log_kernel_and_grad(torch.randn(5, 2))
        >>> log_k.shape, bool((log_k.diagonal() == 0).all())
        (torch.Size([5, 5, 2]), True)
    """

    def __init__(self, bandwidth_factor: float | None = None):
        self.bandwidth_factor = bandwidth_factor

    @torch.no_grad()
    def log_kernel_and_grad(self, particles):
        diff, norm_sq, h = self.scaled_differences(particles)
        return -norm_sq / h, 2.0 * diff / h


class IMQSteinKernel(_MedianBandwidthKernel):
    """The inverse multiquadric kernel ``k(x, y) = prod_d (alpha + (x_d - y_d)^2 / h_d)^beta``
    (Chen et al. 2018, Stein points) with the median bandwidth ``h``.

    :param alpha: positive offset (default 0.5).
    :param beta: negative exponent (default -0.5).
    :param bandwidth_factor: as for :class:`RBFSteinKernel`.

    Example::

        >>> import torch
        >>> log_k, _ = IMQSteinKernel(alpha=1.0).log_kernel_and_grad(torch.randn(4, 3))
        >>> bool((log_k.diagonal() == 0).all())  # k(x, x) = alpha^beta = 1
        True
    """

    def __init__(self, alpha: float = 0.5, beta: float = -0.5, bandwidth_factor=None):
        if not (isinstance(alpha, (int, float)) and alpha > 0):
            raise ValueError(f"IMQSteinKernel: alpha must be positive, got {alpha!r}")
        if not (isinstance(beta, (int, float)) and beta < 0):
            raise ValueError(f"IMQSteinKernel: beta must be negative, got {beta!r}")
        self.alpha = alpha
        self.beta = beta
        self.bandwidth_factor = bandwidth_factor

    @torch.no_grad()
    def log_kernel_and_grad(self, particles):
        diff, norm_sq, h = self.scaled_differences(particles)
        base = self.alpha + norm_sq / h
        return self.beta * base.log(), (-2.0 * self.beta) * diff / (h * base)


class _SVGDGuide(AutoContinuous):
    """The particles as a guide: a point mass at the joint unconstrained latent, whose
    value (parameter ``svgd_particles``) holds every particle (the model is vectorized)."""

    def __init__(self, model):
        super().__init__(model, init_loc_fn=init_to_sample)

    def get_posterior(self, *args, **kwargs):
        return Delta(param(PARTICLES_PARAM, self._init_loc), event_dim=1)


class SVGD:
    """Stein variational gradient descent with a fixed number of particles.

    :param model: the model; it must be vectorizable (it runs once for all
        particles, inside a plate at ``dim = -(max_plate_nesting + 1)``) and have
        continuous latents only.
    :param kernel: a :class:`SteinKernel` (e.g. :class:`RBFSteinKernel`).
    :param optim: an :mod:`ember.optim` optimizer; it follows the SVGD direction.
    :param num_particles: the number of particles (at least 2).
    :param max_plate_nesting: the number of plate dims of the model.
    :param mode: ``"univariate"`` (a kernel per coordinate, default) or
        ``"multivariate"`` (one kernel on the whole latent).

    The particles start at draws from the prior and live in the parameter
    ``svgd_particles`` (unconstrained, all sites concatenated).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer import SVGD, RBFSteinKernel
        >>> from ember.optim import Adam
        >>> ember.clear_param_store(); ember.set_rng_seed(0)
        >>> def model():
        ...     ember.sample("z", dist.Normal(2.0, 0.5))
        >>> svgd = SVGD(model, RBFSteinKernel(), Adam({"lr": 0.1}), num_particles=50,
        ...             max_plate_nesting=0)
        >>> for _ in range(300):
        ...     _ = svgd.step()
        >>> z = svgd.get_named_particles()["z"]
        >>> z.shape, round(z.mean().item(), 1)
        (torch.Size([50]), 2.0)
    """

    def __init__(self, model, kernel, optim, num_particles, max_plate_nesting, mode="univariate"):
        if not callable(model):
            raise TypeError(f"SVGD: model must be callable, got {type(model).__name__}")
        if not isinstance(kernel, SteinKernel):
            raise TypeError(
                "SVGD: kernel must be a SteinKernel (e.g. RBFSteinKernel() or IMQSteinKernel()), "
                f"got {type(kernel).__name__}"
            )
        if not isinstance(optim, PyroOptim):
            raise TypeError(
                "SVGD: optim must be an ember.optim optimizer (e.g. "
                f"ember.optim.Adam({{'lr': 0.1}})), got {type(optim).__name__}"
            )
        if isinstance(num_particles, bool) or not isinstance(num_particles, int):
            raise TypeError(f"SVGD: num_particles must be an int, got {num_particles!r}")
        if num_particles < 2:
            raise ValueError(f"SVGD: use at least two particles, got num_particles={num_particles}")
        if (
            isinstance(max_plate_nesting, bool)
            or not isinstance(max_plate_nesting, int)
            or max_plate_nesting < 0
        ):
            raise ValueError(
                f"SVGD: max_plate_nesting must be an int >= 0, got {max_plate_nesting!r}"
            )
        if mode not in ("univariate", "multivariate"):
            raise ValueError(f"SVGD: mode must be 'univariate' or 'multivariate', got {mode!r}")
        self.particle_dim = -max_plate_nesting - 1
        self.model = vectorize(model, num_particles, self.particle_dim, VECTORIZED_PARTICLES_PLATE)
        self.kernel = kernel
        self.optim = optim
        self.num_particles = num_particles
        self.max_plate_nesting = max_plate_nesting
        self.mode = mode
        self.loss = Trace_ELBO().differentiable_loss
        self.guide = _SVGDGuide(self.model)

    # ------------------------------------------------------------ particle layout
    def _site_rows(self, latent: torch.Tensor):
        """``(site, (N, d_site) view of that site's coordinates, particle position)`` per site."""
        n = self.num_particles
        for site, value in self.guide.unpack_latent(latent):
            pos = len(site["fn"].batch_shape) + self.particle_dim
            yield site, value.movedim(pos, 0).reshape(n, -1), pos, value.shape

    def _as_matrix(self, latent: torch.Tensor) -> torch.Tensor:
        """The joint latent as an ``(N, D)`` matrix, one particle per row."""
        return torch.cat([rows for _, rows, _, _ in self._site_rows(latent)], dim=-1)

    def _as_latent(self, matrix: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`_as_matrix` (``like`` gives the sites' layout)."""
        pieces = []
        start = 0
        for _, rows, pos, shape in self._site_rows(like):
            width = rows.size(-1)
            moved = list(shape)
            moved.insert(0, moved.pop(pos))
            block = matrix[:, start : start + width].reshape(moved).movedim(0, pos)
            pieces.append(block.reshape(-1))
            start += width
        return torch.cat(pieces)

    # ------------------------------------------------------------ the algorithm
    def get_named_particles(self) -> Dict[str, torch.Tensor]:
        """``{site name: particles}`` on the sites' supports; each tensor holds every
        particle at its particle dim (the first, for a model without plates)."""
        latent = unconstrained_param(param(PARTICLES_PARAM))
        return {
            site["name"]: biject_to(site["fn"].support)(value)
            for site, value in self.guide.unpack_latent(latent)
        }

    @torch.no_grad()
    def step(self, *args, **kwargs) -> Dict[str, float]:
        """Move the particles one optimizer step along the SVGD direction.

        Arguments go to the model. Returns ``{site name: mean squared SVGD
        gradient}``, a measure of convergence.
        """
        with torch.enable_grad(), poutine.trace(param_only=True) as capture:
            loss = self.loss(self.model, self.guide, *args, **kwargs)
            loss.backward()
        particles = unconstrained_param(param(PARTICLES_PARAM))
        x = self._as_matrix(particles)
        loss_grad = self._as_matrix(particles.grad)  # -grad log p at each particle
        log_kernel, kernel_grad = self.kernel.log_kernel_and_grad(x)
        if self.mode == "multivariate":
            k = log_kernel.sum(-1).exp()  # (N, N)
            attraction = k @ loss_grad
            repulsion = torch.einsum("nm,nmd->nd", k, kernel_grad)
        else:
            k = log_kernel.exp()  # (N, N, D)
            attraction = torch.einsum("nmd,md->nd", k, loss_grad)
            repulsion = torch.einsum("nmd,nmd->nd", k, kernel_grad)
        # -phi: the optimizer descends it, moving each particle along phi
        direction = (attraction + repulsion) / self.num_particles
        particles.grad = self._as_latent(direction, particles).reshape(particles.shape)
        squared = {
            site["name"]: value.mean().item()
            for site, value in self.guide.unpack_latent(particles.grad.pow(2))
        }
        params = {}
        for site in capture.trace.nodes.values():
            p = unconstrained_param(site["value"])
            params[id(p)] = p
        params = list(params.values())
        self.optim(params)
        zero_grads(params)
        return squared
