"""The No-U-Turn Sampler with multinomial sampling of the trajectory (Betancourt 2017).

The trajectory doubles, forwards or backwards at random, until it makes a U-turn
(the generalized criterion on the summed momentum), a leapfrog step diverges, or it
reaches ``2 ** max_tree_depth`` steps. Within a subtree a point is kept with
probability proportional to its density; at the top level the newer half is
preferred (biased progressive sampling), as in Stan.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import torch

from ember.infer.autoguide.initialization import init_to_uniform
from ember.infer.mcmc.hmc import HMC

__all__ = ["NUTS", "dot_index"]


class _Tree(NamedTuple):
    z_left: torch.Tensor
    r_left: torch.Tensor
    grad_left: torch.Tensor
    z_right: torch.Tensor
    r_right: torch.Tensor
    grad_right: torch.Tensor
    z_proposal: torch.Tensor
    pe_proposal: torch.Tensor
    grad_proposal: torch.Tensor
    r_sum: torch.Tensor
    log_weight: float
    turning: bool
    diverging: bool
    sum_accept_probs: float
    num_proposals: int


def logaddexp_floats(a: float, b: float) -> float:
    """``log(exp(a) + exp(b))`` of two Python floats (``-inf`` allowed), without overflow."""
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


_DOT_INDEX: dict = {}


def dot_index(device) -> torch.Tensor:
    """The rows of the stacked edge velocities ``(v_ll, v_rr, v_rl, v_lr)`` that pair
    with the stacked momenta ``(r_sum, r_sum, rho1, rho1, rho2, rho2)`` in the U-turn
    criterion of a merged tree (one tensor per device, made once)."""
    index = _DOT_INDEX.get(device)
    if index is None:
        index = _DOT_INDEX[device] = torch.tensor([0, 1, 0, 2, 3, 1], device=device)
    return index


class NUTS(HMC):
    """The No-U-Turn Sampler: HMC whose trajectory length is chosen per iteration.

    Takes :class:`~ember.infer.mcmc.hmc.HMC`'s arguments (except the trajectory length),
    plus:

    :param bool use_multinomial_sampling: pick the next point among the trajectory's
        points with probability proportional to their density (``False``: uniformly
        among the points inside a slice drawn under the starting density, as in the
        original NUTS).
    :param int max_tree_depth: at most ``2 ** max_tree_depth`` leapfrog steps per
        iteration.

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember.infer.mcmc import MCMC
        >>> def model():
        ...     ember.sample("x", dist.Normal(1.0, 2.0))
        >>> ember.set_rng_seed(0)
        >>> mcmc = MCMC(NUTS(model), num_samples=100, warmup_steps=100, disable_progbar=True)
        >>> mcmc.run()
        >>> mcmc.get_samples()["x"].shape
        torch.Size([100])
    """

    def __init__(
        self,
        model: Optional[Callable] = None,
        potential_fn: Optional[Callable] = None,
        step_size: float = 1,
        adapt_step_size: bool = True,
        adapt_mass_matrix: bool = True,
        full_mass=False,
        use_multinomial_sampling: bool = True,
        transforms: Optional[dict] = None,
        max_plate_nesting: Optional[int] = None,
        jit_compile: Optional[bool] = None,
        jit_options: Optional[dict] = None,
        ignore_jit_warnings: bool = False,
        target_accept_prob: float = 0.8,
        max_tree_depth: int = 10,
        init_strategy: Callable = init_to_uniform,
    ):
        super().__init__(
            model,
            potential_fn,
            step_size,
            adapt_step_size=adapt_step_size,
            adapt_mass_matrix=adapt_mass_matrix,
            full_mass=full_mass,
            transforms=transforms,
            max_plate_nesting=max_plate_nesting,
            jit_compile=jit_compile,
            jit_options=jit_options,
            ignore_jit_warnings=ignore_jit_warnings,
            target_accept_prob=target_accept_prob,
            init_strategy=init_strategy,
        )
        if max_tree_depth < 1:
            raise ValueError(f"max_tree_depth must be at least 1, got {max_tree_depth}")
        self.use_multinomial_sampling = use_multinomial_sampling
        self._log_slice = 0.0
        self._max_tree_depth = max_tree_depth
        self.tree_depths = []

    def _leaf_log_weight(self, delta: float) -> float:
        # multinomial: the point's density relative to the start; slice sampling: 1 for
        # a point inside the slice {H <= H0 - log u}, 0 outside
        if self.use_multinomial_sampling:
            return -delta
        return 0.0 if -delta >= self._log_slice else -math.inf

    def _base_tree(self, z, r, grad, step_size, energy_current) -> _Tree:
        z_new, r_new, grad_new, pe_new = self.leapfrog(z, r, grad, step_size)
        energy_new = float(self.kinetic_energy_flat(r_new) + pe_new)
        delta = energy_new - energy_current
        if math.isnan(delta):
            delta = math.inf
        diverging = delta > self._max_sliced_energy
        accept_prob = 1.0 if delta <= 0 else math.exp(-delta)
        return _Tree(
            z_new, r_new, grad_new, z_new, r_new, grad_new, z_new, pe_new, grad_new, r_new,
            self._leaf_log_weight(delta), False, diverging, accept_prob, 1,
        )  # fmt: skip

    def _build_tree(self, z, r, grad, step_size, direction, depth, energy_current) -> _Tree:
        if depth == 0:
            return self._base_tree(z, r, grad, direction * step_size, energy_current)
        half = self._build_tree(z, r, grad, step_size, direction, depth - 1, energy_current)
        if half.turning or half.diverging:
            return half
        if direction == 1:
            z_edge, r_edge, grad_edge = half.z_right, half.r_right, half.grad_right
        else:
            z_edge, r_edge, grad_edge = half.z_left, half.r_left, half.grad_left
        other = self._build_tree(
            z_edge, r_edge, grad_edge, step_size, direction, depth - 1, energy_current
        )
        return self._combine(half, other, direction, biased=False)

    def _combine(self, old: _Tree, new: _Tree, direction: int, biased: bool) -> _Tree:
        log_weight = logaddexp_floats(old.log_weight, new.log_weight)
        if biased:  # at the top level prefer the new half (Betancourt's biased progressive)
            log_ratio = new.log_weight - old.log_weight
        else:
            log_ratio = new.log_weight - log_weight
        take_new = (not new.diverging and not new.turning) or not biased
        if take_new and (log_ratio >= 0 or float(torch.rand(())) < math.exp(log_ratio)):
            z_p, pe_p, grad_p = new.z_proposal, new.pe_proposal, new.grad_proposal
        else:
            z_p, pe_p, grad_p = old.z_proposal, old.pe_proposal, old.grad_proposal
        if direction == 1:
            left, right = old, new
        else:
            left, right = new, old
        r_sum = old.r_sum + new.r_sum
        turning = new.turning or new.diverging
        if not turning:
            # the U-turn criterion over the merged tree, and Stan's extra checks across
            # the two halves, evaluated together (one host sync)
            # velocities M^-1 r at the outer edges (ll, rr) and the inner ones (rl, lr)
            v = self.kinetic_grad_flat(
                torch.stack([left.r_left, right.r_right, right.r_left, left.r_right])
            )
            rho1 = left.r_sum + right.r_left
            rho2 = left.r_right + right.r_sum
            # r_sum.v_ll, r_sum.v_rr, rho1.v_ll, rho1.v_rl, rho2.v_lr, rho2.v_rr
            momenta = torch.stack([r_sum, r_sum, rho1, rho1, rho2, rho2])
            dots = (momenta * v[dot_index(v.device)]).sum(-1)
            turning = bool((dots <= 0).any())
        return _Tree(
            left.z_left, left.r_left, left.grad_left,
            right.z_right, right.r_right, right.grad_right,
            z_p, pe_p, grad_p, r_sum, log_weight, turning,
            old.diverging or new.diverging,
            old.sum_accept_probs + new.sum_accept_probs,
            old.num_proposals + new.num_proposals,
        )  # fmt: skip

    def sample(self, params: dict) -> dict:
        if not params or self._layout is None or self._layout.size == 0:
            self._t += 1
            return params
        z, pe, grad = self._current(params)
        r = self.sample_momentum(z)
        energy_current = float(self.kinetic_energy_flat(r) + pe)
        if not self.use_multinomial_sampling:
            self._log_slice = math.log(max(float(torch.rand(())), 1e-300))
        step_size = self.step_size
        tree = _Tree(z, r, grad, z, r, grad, z, pe, grad, r, 0.0, False, False, 0.0, 0)
        depth = 0
        while depth < self._max_tree_depth:
            direction = 1 if float(torch.rand(())) < 0.5 else -1
            if direction == 1:
                start = (tree.z_right, tree.r_right, tree.grad_right)
            else:
                start = (tree.z_left, tree.r_left, tree.grad_left)
            new = self._build_tree(*start, step_size, direction, depth, energy_current)
            tree = self._combine(tree, new, direction, biased=True)
            depth += 1
            if tree.turning or tree.diverging:
                break
        self.tree_depths.append(depth)
        accept_prob = tree.sum_accept_probs / max(tree.num_proposals, 1)
        z, pe, grad = tree.z_proposal, tree.pe_proposal, tree.grad_proposal
        self._cached = (z, pe, grad)
        self._record(accept_prob, accept_prob, tree.diverging, z, grad)
        return self._layout.unpack(z)
