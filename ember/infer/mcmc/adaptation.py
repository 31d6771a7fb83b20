"""Warm-up adaptation of HMC/NUTS: step size by dual averaging and the mass matrix by
windowed Welford estimates, over Stan's warm-up schedule.

Stan's schedule splits the warm-up into a fast initial buffer (step size only), a series
of slow windows doubling in length (the mass matrix is re-estimated at the end of each,
and the step-size adaptation restarts) and a fast terminal buffer (step size only).
"""

from __future__ import annotations

import math
from collections import OrderedDict, namedtuple
from typing import Callable, Dict, Optional, Tuple

import torch

from ember.ops.dual_averaging import DualAveraging
from ember.ops.welford import WelfordArrowheadCovariance, WelfordCovariance

__all__ = [
    "ArrowheadMassMatrix",
    "BlockMassMatrix",
    "SymmArrowhead",
    "WarmupAdapter",
    "adapt_window",
    "mass_matrix_blocks",
]

#: One phase of the warm-up: the first and last iteration (inclusive) of the window.
adapt_window = namedtuple("adapt_window", ["start", "end"])


class BlockMassMatrix:
    """A block-diagonal mass matrix over groups of sites, each block dense or diagonal.

    :meth:`configure` takes ``{tuple_of_site_names: shape}`` where ``shape`` is
    ``(size,)`` for a diagonal block and ``(size, size)`` for a dense block. During a
    slow adaptation window :meth:`update` accumulates draws; :meth:`end_adaptation`
    sets the inverse mass matrix of each block to their (regularized) covariance.

    Momenta are dicts from site name to tensor. ``scale`` turns a standard-normal draw
    into a momentum with covariance ``M``, ``unscale`` maps back (so the kinetic energy
    is half the squared norm of ``unscale(r)``) and ``kinetic_grad`` is ``M^-1 r``.
    """

    def __init__(self, init_scale: float = 1.0):
        self._init_scale = init_scale
        self._adapt_scheme: Dict[tuple, WelfordCovariance] = {}
        self._inverse_mass_matrix: Dict[tuple, torch.Tensor] = {}
        self._mass_matrix_sqrt: Dict[tuple, torch.Tensor] = {}
        self._mass_matrix_sqrt_inv: Dict[tuple, torch.Tensor] = {}
        self._mass_matrix_size: Dict[tuple, int] = {}
        #: incremented whenever a block changes, so that users can cache derived arrays
        self.version = 0

    @property
    def mass_matrix_size(self) -> Dict[tuple, int]:
        """The number of scalar coordinates of each block."""
        return self._mass_matrix_size

    @property
    def inverse_mass_matrix(self) -> Dict[tuple, torch.Tensor]:
        """Each block's inverse mass matrix (a vector for a diagonal block)."""
        return self._inverse_mass_matrix

    @inverse_mass_matrix.setter
    def inverse_mass_matrix(self, value: Dict[tuple, torch.Tensor]) -> None:
        for site_names, inv in value.items():
            self._set_block(site_names, inv)

    @property
    def mass_matrix_sqrt(self) -> Dict[tuple, torch.Tensor]:
        """A square root ``S`` of each block's mass matrix (``S S^T = M``)."""
        return self._mass_matrix_sqrt

    @property
    def mass_matrix_sqrt_inv(self) -> Dict[tuple, torch.Tensor]:
        """A square root ``L`` of each block's inverse mass matrix (``L L^T = M^-1``)."""
        return self._mass_matrix_sqrt_inv

    def _set_block(self, site_names: tuple, inv: torch.Tensor) -> None:
        self.version += 1
        self._inverse_mass_matrix[site_names] = inv
        if inv.dim() == 1:
            self._mass_matrix_sqrt_inv[site_names] = inv.sqrt()
            self._mass_matrix_sqrt[site_names] = inv.rsqrt()
        else:
            chol = torch.linalg.cholesky(inv)
            self._mass_matrix_sqrt_inv[site_names] = chol
            eye = torch.eye(inv.shape[-1], dtype=inv.dtype, device=inv.device)
            # S = L^-T, so that S S^T = (L L^T)^-1 = M
            self._mass_matrix_sqrt[site_names] = torch.linalg.solve_triangular(
                chol, eye, upper=False
            ).transpose(-1, -2)

    def configure(
        self,
        mass_matrix_shape: Dict[tuple, tuple],
        adapt_mass_matrix: bool = True,
        options: Optional[dict] = None,
    ) -> None:
        """Set every block to ``init_scale`` times the identity.

        :param dict mass_matrix_shape: ``{site_names: (size,) or (size, size)}``.
        """
        options = options or {}
        self._adapt_scheme = {}
        for site_names, shape in mass_matrix_shape.items():
            if len(shape) not in (1, 2) or (len(shape) == 2 and shape[0] != shape[1]):
                raise ValueError(
                    f"mass matrix block {site_names} must have shape (size,) or (size, size), "
                    f"got {tuple(shape)}"
                )
            self._mass_matrix_size[site_names] = shape[0]
            diagonal = len(shape) == 1
            if diagonal:
                inv = torch.full(shape, self._init_scale, **options)
            else:
                inv = self._init_scale * torch.eye(shape[0], **options)
            self._set_block(site_names, inv)
            if adapt_mass_matrix:
                self._adapt_scheme[site_names] = WelfordCovariance(diagonal=diagonal)

    def update(self, z: Dict[str, torch.Tensor], z_grad: Optional[dict] = None) -> None:
        """Add the current position to each block's running covariance estimate."""
        for site_names, adapt_scheme in self._adapt_scheme.items():
            z_flat = torch.cat([z[name].detach().reshape(-1) for name in site_names])
            adapt_scheme.update(z_flat)

    def end_adaptation(self) -> None:
        """Set each block's inverse mass matrix to its estimate and restart the estimate."""
        for site_names, adapt_scheme in self._adapt_scheme.items():
            self._set_block(site_names, adapt_scheme.get_covariance(regularize=True))
            adapt_scheme.reset()

    def kinetic_grad(self, r: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The gradient of the kinetic energy, ``M^-1 r``, as a dict like ``r``."""
        out = {}
        for site_names, inv in self._inverse_mass_matrix.items():
            r_flat = torch.cat([r[name].reshape(-1) for name in site_names])
            g = inv * r_flat if inv.dim() == 1 else inv @ r_flat
            out.update(_unflatten(g, site_names, r))
        return out

    def scale(
        self, r_unscaled: Dict[tuple, torch.Tensor], r_prototype: Dict[str, torch.Tensor]
    ) -> Dict[str, torch.Tensor]:
        """Map standard-normal block vectors ``{site_names: u}`` to momenta ``S u``."""
        out = {}
        for site_names, sqrt in self._mass_matrix_sqrt.items():
            u = r_unscaled[site_names]
            r_flat = sqrt * u if sqrt.dim() == 1 else sqrt @ u
            out.update(_unflatten(r_flat, site_names, r_prototype))
        return out

    def unscale(self, r: Dict[str, torch.Tensor]) -> Dict[tuple, torch.Tensor]:
        """Map momenta to block vectors ``u`` with ``|u|^2 / 2`` the kinetic energy."""
        out = {}
        for site_names, sqrt_inv in self._mass_matrix_sqrt_inv.items():
            r_flat = torch.cat([r[name].reshape(-1) for name in site_names])
            if sqrt_inv.dim() == 1:
                out[site_names] = sqrt_inv * r_flat
            else:
                out[site_names] = sqrt_inv.transpose(-1, -2) @ r_flat
        return out


def _unflatten(flat: torch.Tensor, site_names: tuple, prototype: Dict[str, torch.Tensor]):
    out = {}
    pos = 0
    for name in site_names:
        shape = prototype[name].shape
        size = prototype[name].numel()
        out[name] = flat[pos : pos + size].reshape(shape)
        pos += size
    return out


class WarmupAdapter:
    """Adapts the step size (dual averaging) and the mass matrix (windowed covariance
    estimates) during warm-up, following Stan's schedule.

    :param float step_size: the initial step size.
    :param bool adapt_step_size: adapt the step size.
    :param float target_accept_prob: the acceptance probability dual averaging aims at.
    :param bool adapt_mass_matrix: adapt the mass matrix.
    :param bool dense_mass: unused when a ``mass_matrix_shape`` names the block shapes
        (kept for the signature of Pyro's adapter).
    """

    def __init__(
        self,
        step_size: float = 1.0,
        adapt_step_size: bool = False,
        target_accept_prob: float = 0.8,
        adapt_mass_matrix: bool = False,
        dense_mass: bool = False,
    ):
        self.adapt_step_size = adapt_step_size
        self.adapt_mass_matrix = adapt_mass_matrix
        self.target_accept_prob = target_accept_prob
        self.dense_mass = dense_mass
        self.step_size = 1.0 if step_size is None else step_size
        self._init_step_size = self.step_size
        self._adaptation_disabled = not (adapt_step_size or adapt_mass_matrix)
        if adapt_step_size:
            self._step_size_adapt_scheme = DualAveraging()
        self._mass_matrix_adapter = BlockMassMatrix()
        # Stan's defaults for the buffers and the first slow window
        self._adapt_start_buffer = 75
        self._adapt_end_buffer = 50
        self._adapt_initial_window = 25
        self._warmup_steps = None
        self._adaptation_schedule = []
        self._current_window = 0
        self._find_reasonable_step_size = None

    def _build_adaptation_schedule(self):
        adaptation_schedule = []
        if self._warmup_steps < 20:  # too short to split into windows
            adaptation_schedule.append(adapt_window(0, self._warmup_steps - 1))
            return adaptation_schedule
        start_buffer = self._adapt_start_buffer
        window = self._adapt_initial_window
        end_buffer = self._adapt_end_buffer
        if start_buffer + window + end_buffer > self._warmup_steps:
            start_buffer = int(0.15 * self._warmup_steps)
            end_buffer = int(0.1 * self._warmup_steps)
            window = self._warmup_steps - start_buffer - end_buffer
        adaptation_schedule.append(adapt_window(0, start_buffer - 1))
        end_window_start = self._warmup_steps - end_buffer
        start = start_buffer
        while start < end_window_start:
            next_start = start + window
            if next_start + 2 * window > end_window_start:
                adaptation_schedule.append(adapt_window(start, end_window_start - 1))
                break
            adaptation_schedule.append(adapt_window(start, next_start - 1))
            start = next_start
            window *= 2
        adaptation_schedule.append(adapt_window(end_window_start, self._warmup_steps - 1))
        return adaptation_schedule

    def reset_step_size_adaptation(self, z: Dict[str, torch.Tensor]) -> None:
        """Restart dual averaging around ``log(10 * step_size)`` after finding a
        reasonable step size at ``z``."""
        if self._find_reasonable_step_size is not None:
            self.step_size = self._find_reasonable_step_size(z)
        self._step_size_adapt_scheme.prox_center = math.log(10 * self.step_size)
        self._step_size_adapt_scheme.reset()

    def _update_step_size(self, accept_prob: float) -> None:
        # dual averaging drives (target - accept_prob) to zero in log step size
        self._step_size_adapt_scheme.step(self.target_accept_prob - accept_prob)
        log_step_size, _ = self._step_size_adapt_scheme.get_state()
        self.step_size = math.exp(log_step_size)

    def _end_adaptation(self) -> None:
        if self.adapt_step_size:
            _, log_step_size_avg = self._step_size_adapt_scheme.get_state()
            self.step_size = math.exp(log_step_size_avg)

    def configure(
        self,
        warmup_steps: int,
        initial_step_size: Optional[float] = None,
        mass_matrix_shape: Optional[Dict[tuple, tuple]] = None,
        find_reasonable_step_size_fn: Optional[Callable] = None,
        options: Optional[dict] = None,
    ) -> None:
        """Prepare for a warm-up of ``warmup_steps`` iterations.

        :param dict mass_matrix_shape: ``{site_names: shape}`` of the mass matrix blocks.
        :param find_reasonable_step_size_fn: maps a position to a step size worth starting
            dual averaging from (Hoffman and Gelman's heuristic).
        """
        self._warmup_steps = warmup_steps
        if initial_step_size is not None:
            self._init_step_size = initial_step_size
        self.step_size = self._init_step_size  # every chain starts from the same step size
        self._find_reasonable_step_size = find_reasonable_step_size_fn
        if mass_matrix_shape is None or mass_matrix_shape:
            # Pyro's adapter tolerates {"z": shape}; a site name alone is a one-site block
            shapes = {
                (k if isinstance(k, tuple) else (k,)): v
                for k, v in (mass_matrix_shape or {}).items()
            }
            self._mass_matrix_adapter.configure(shapes, self.adapt_mass_matrix, options)
        if not self._adaptation_disabled:
            self._adaptation_schedule = self._build_adaptation_schedule()
        else:
            self._adaptation_schedule = []
        self._current_window = 0

    def step(self, t: int, z: Dict[str, torch.Tensor], accept_prob, z_grad=None) -> None:
        """Adapt after warm-up iteration ``t`` (0-based) with position ``z`` and the
        iteration's mean acceptance probability."""
        if t >= self._warmup_steps or self._adaptation_disabled:
            return
        window = self._adaptation_schedule[self._current_window]
        num_windows = len(self._adaptation_schedule)
        mass_matrix_adaptation_phase = self.adapt_mass_matrix and (
            0 < self._current_window < num_windows - 1
        )
        if self.adapt_step_size:
            self._update_step_size(float(accept_prob))
        if mass_matrix_adaptation_phase:
            self._mass_matrix_adapter.update(z, z_grad)
        if t == window.end:
            if self._current_window == num_windows - 1:
                self._current_window += 1
                self._end_adaptation()
                return
            if self._current_window == 0:
                self._current_window += 1
                return
            if mass_matrix_adaptation_phase:
                self._mass_matrix_adapter.end_adaptation()
                if self.adapt_step_size:
                    self.reset_step_size_adaptation(z)
            self._current_window += 1

    @property
    def adaptation_schedule(self):
        """The warm-up windows, a list of :data:`adapt_window` (inclusive bounds)."""
        return self._adaptation_schedule

    @property
    def mass_matrix_adapter(self) -> BlockMassMatrix:
        """The mass matrix (and its adaptation)."""
        return self._mass_matrix_adapter

    @mass_matrix_adapter.setter
    def mass_matrix_adapter(self, value: BlockMassMatrix) -> None:
        self._mass_matrix_adapter = value


def mass_matrix_blocks(site_shapes: Dict[str, Tuple[int, ...]], full_mass) -> Dict[tuple, tuple]:
    """The mass matrix block shapes for sites with the given (unconstrained) shapes.

    ``full_mass=False``: one diagonal block over all sites; ``True``: one dense block;
    a list of tuples of site names: a dense block per tuple and one diagonal block for
    the remaining sites.
    """
    names = list(site_shapes)
    sizes = {n: int(math.prod(site_shapes[n])) for n in names}
    if full_mass is False or full_mass is None:
        total = sum(sizes.values())
        return {tuple(names): (total,)} if names else {}
    if full_mass is True:
        total = sum(sizes.values())
        return {tuple(names): (total, total)} if names else {}
    if not isinstance(full_mass, (list, tuple)):
        raise TypeError(
            f"full_mass must be a bool or a list of tuples of site names, got {full_mass!r}"
        )
    blocks: Dict[tuple, tuple] = OrderedDict()
    seen = set()
    for group in full_mass:
        group = tuple(group) if isinstance(group, (list, tuple)) else (group,)
        for n in group:
            if n not in sizes:
                raise ValueError(
                    f"full_mass names site {n!r}, which is not a latent continuous site of the "
                    f"model; sites: {names}"
                )
            if n in seen:
                raise ValueError(f"full_mass names site {n!r} in more than one block")
            seen.add(n)
        size = sum(sizes[n] for n in group)
        blocks[group] = (size, size)
    rest = tuple(n for n in names if n not in seen)
    if rest:
        blocks[rest] = (sum(sizes[n] for n in rest),)
    return blocks


#: An arrowhead matrix: its first rows ``top`` (shape ``(head, D)``) and the diagonal of
#: the rest ``bottom_diag`` (shape ``(D - head,)``); the rest is zero off the diagonal.
SymmArrowhead = namedtuple("SymmArrowhead", ["top", "bottom_diag"])


class ArrowheadMassMatrix(BlockMassMatrix):
    """A mass matrix with an arrowhead structure, adapted from gradients.

    All sites form one block: the sites of dense blocks (``full_mass`` tuples) are the
    head, with a dense mass matrix and their couplings to every other coordinate; the
    other sites get a diagonal. During adaptation the mass matrix itself is estimated as
    the covariance of the potential's gradient (for a Gaussian target that is the
    precision matrix, the ideal mass matrix).
    """

    def __init__(self, init_scale: float = 1.0):
        super().__init__(init_scale)
        self._mass_matrix: Dict[tuple, SymmArrowhead] = {}
        self._arrow_scheme = None
        self._arrow_key = None

    @property
    def mass_matrix(self) -> Dict[tuple, SymmArrowhead]:
        """The mass matrix of the (single) block, as a :data:`SymmArrowhead`."""
        return self._mass_matrix

    def configure(self, mass_matrix_shape: Dict[tuple, tuple], adapt_mass_matrix: bool = True,
                  options: Optional[dict] = None) -> None:  # fmt: skip
        options = options or {}
        head, tail, head_size, size = [], [], 0, 0
        for site_names, shape in mass_matrix_shape.items():
            if len(shape) == 2:
                head.extend(site_names)
                head_size += shape[0]
            else:
                tail.extend(site_names)
            size += shape[0]
        key = tuple(head + tail)
        self._arrow_key = key
        self._mass_matrix_size = {key: size}
        self._inverse_mass_matrix, self._mass_matrix_sqrt, self._mass_matrix_sqrt_inv = {}, {}, {}
        top = self._init_scale * torch.eye(head_size, size, **options)
        bottom = torch.full((size - head_size,), self._init_scale, **options)
        self._set_arrowhead(key, SymmArrowhead(top, bottom))
        self._adapt_scheme = {}
        self._arrow_scheme = WelfordArrowheadCovariance(head_size) if adapt_mass_matrix else None

    def _set_arrowhead(self, key: tuple, mass: SymmArrowhead) -> None:
        self._mass_matrix[key] = mass
        head = mass.top.shape[0]
        dense = torch.diag(torch.cat([mass.top.new_zeros(head), mass.bottom_diag]))
        dense[:head] = mass.top
        dense[:, :head] = mass.top.transpose(0, 1)
        if head == 0:
            self._set_block(key, 1.0 / mass.bottom_diag)
            return
        _, info = torch.linalg.cholesky_ex(dense)
        if int(info) == 0:
            self._set_block(key, torch.linalg.inv(dense))
        else:  # a short window's estimate need not be positive definite: keep its diagonal
            self._set_block(key, torch.diag(1.0 / dense.diagonal().clamp(min=1e-6)))

    def update(self, z: Dict[str, torch.Tensor], z_grad: Optional[dict] = None) -> None:
        if self._arrow_scheme is None or z_grad is None:
            return
        g = torch.cat([z_grad[name].detach().reshape(-1) for name in self._arrow_key])
        self._arrow_scheme.update(g)

    def end_adaptation(self) -> None:
        if self._arrow_scheme is None or self._arrow_scheme.n_samples < 2:
            return
        top, bottom = self._arrow_scheme.get_covariance(regularize=False)
        head = top.shape[0]
        if head:
            top = top + 1e-6 * torch.eye(head, top.shape[1], dtype=top.dtype, device=top.device)
        self._set_arrowhead(self._arrow_key, SymmArrowhead(top, bottom + 1e-6))
        self._arrow_scheme.reset()
