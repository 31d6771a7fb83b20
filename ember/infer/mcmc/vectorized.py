"""Vectorized chains: HMC and NUTS advancing ``C`` chains together.

The positions of all chains form one ``(C, D)`` tensor and every leapfrog step is one
batched evaluation of the potential and its gradient. When the model broadcasts over an
extra batch dim on the left, that evaluation is one run of the model inside a chain plate
(:class:`~ember.infer.mcmc.util.ChainBatchedPotential`), recorded once with
``torch.jit.trace`` when the recording is exact; otherwise the chains' potentials are
evaluated one after another.

Each chain keeps its own step size, mass matrix and adaptation: it is a shallow copy of
the user's kernel (sharing the model, transforms and recorded potential) whose
bookkeeping (:meth:`HMC._record`) and step-size search run exactly as in a single chain.
In NUTS all chains double their trees together; a chain whose trajectory has stopped
(U-turn, divergence) waits, masked, until the others stop. With one chain the arithmetic
and the random draws are those of the sequential kernel, so the draws are identical.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Callable, Dict, List, NamedTuple, Optional

import torch

from ember.infer.mcmc.adaptation import mass_matrix_blocks
from ember.infer.mcmc.hmc import HMC, record_potential_grad
from ember.infer.mcmc.nuts import NUTS, dot_index, logaddexp_floats
from ember.infer.mcmc.util import ChainBatchedPotential, initialize_model
from ember.util import validation_enabled

__all__ = ["VectorizedChains"]


class _BTree(NamedTuple):
    # blocks: (3, C, D) stacks of (position, momentum, gradient); pe_proposal (C,);
    # r_sum (C, D); the scalar fields are lists with one entry per chain
    left: torch.Tensor
    right: torch.Tensor
    proposal: torch.Tensor
    pe_proposal: torch.Tensor
    r_sum: torch.Tensor
    log_weight: list
    turning: list
    diverging: list
    sum_accept_probs: list
    num_proposals: list


def _pick(mask: List[bool], mask_t: Optional[torch.Tensor], a: torch.Tensor, b: torch.Tensor):
    """``a`` where ``mask`` holds, else ``b`` (per chain); no tensor op when uniform."""
    if all(mask):
        return a
    if not any(mask):
        return b
    m = mask_t if a.dim() >= 2 else mask_t.squeeze(-1)
    return torch.where(m, a, b)


def _mask_tensor(mask: List[bool], device) -> torch.Tensor:
    return torch.tensor(mask, device=device).unsqueeze(-1)


def _grad_value_batched(fn: Callable, z: torch.Tensor):
    z = z.detach().requires_grad_(True)
    with torch.enable_grad():
        pe = fn(z)
        (grad,) = torch.autograd.grad(pe.sum(), [z], allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(z)
    return grad.detach(), pe.detach()


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-4, atol=1e-4, equal_nan=True))


class VectorizedChains:
    """Runs an :class:`~ember.infer.mcmc.hmc.HMC` or :class:`~ember.infer.mcmc.nuts.NUTS`
    kernel on ``num_chains`` chains at once.

    :param kernel: the configured HMC or NUTS kernel (it becomes chain 0; the other chains
        are copies of it with their own adaptation state).
    :param int num_chains: the number of chains.

    :meth:`setup` takes the warm-up length, the model's arguments and per-chain initial
    values; :meth:`sample` advances every chain by one iteration and returns the
    ``(num_chains, D)`` flat unconstrained positions (:attr:`layout` unpacks them);
    :meth:`diagnostics` gives one dict per chain. :attr:`potential_mode` says how the
    batched potential is evaluated: ``"recorded"`` (one replay of a recorded forward
    and backward pass), ``"traced"`` (one recorded batched model run),
    ``"batched"`` (one model run per evaluation), ``"single"`` (one chain) or
    ``"loop"`` (chain by chain).

    Example::

        >>> import ember, ember.distributions as dist
        >>> def model():
        ...     ember.sample("x", dist.Normal(0.0, 1.0))
        >>> ember.set_rng_seed(0)
        >>> chains = VectorizedChains(NUTS(model), 3)
        >>> chains.setup(10)
        >>> chains.sample().shape, chains.potential_mode
        (torch.Size([3, 1]), 'recorded')
    """

    def __init__(self, kernel, num_chains: int):
        if not isinstance(kernel, HMC):
            raise TypeError(
                "chain_method='vectorized' runs HMC or NUTS kernels; got "
                f"{type(kernel).__name__}. Hint: use chain_method='parallel' (or "
                "'sequential') for other kernels"
            )
        if num_chains < 1:
            raise ValueError(f"num_chains must be at least 1, got {num_chains}")
        self.kernel = kernel
        self.num_chains = num_chains
        self.is_nuts = isinstance(kernel, NUTS)
        self.chains: List[HMC] = []
        self.layout = None
        self.potential_mode = None
        self._batched_fn = None
        self._batched_grad = None
        self._state = None
        self._start = None
        self._mass_versions = None

    # ----------------------------------------------------------------- setup
    def _initial_values(self, initial_params) -> List[Optional[Dict[str, torch.Tensor]]]:
        c = self.num_chains
        if initial_params is not None:
            if c == 1:
                return [initial_params]
            return [{k: v[i] for k, v in initial_params.items()} for i in range(c)]
        return [None] * c

    def setup(self, warmup_steps: int, *args, initial_params=None, **kwargs) -> None:
        """Set every chain up: chain 0 exactly as ``kernel.setup`` does, the others with
        their own initial values, mass matrix and step size."""
        kernel = self.kernel
        inits = self._initial_values(initial_params)
        if inits[0] is not None:
            kernel.initial_params = inits[0]
        kernel.setup(warmup_steps, *args, **kwargs)
        layout = kernel._layout
        self.layout = layout
        if layout is None or layout.size == 0:
            raise ValueError(
                "chain_method='vectorized' needs a model with at least one continuous "
                "latent site (or initial_params for a potential_fn)"
            )
        first = kernel.initial_params
        if any(v is None for v in inits[1:]):
            drawn = initialize_model(
                kernel.model,
                args,
                kwargs,
                transforms=kernel.transforms,
                max_plate_nesting=kernel.potential_fn.max_plate_nesting,
                init_strategy=kernel._init_strategy,
                num_chains=self.num_chains - 1,
            )[0]
            if self.num_chains == 2:
                drawn = {k: v.unsqueeze(0) for k, v in drawn.items()}
            inits = [first] + [{k: v[i] for k, v in drawn.items()} for i in range(len(inits) - 1)]
        else:
            inits[0] = first
        self.chains = [kernel]
        shapes = {n: v.shape for n, v in first.items()}
        blocks = mass_matrix_blocks(shapes, kernel.full_mass)
        find_fn = kernel._adapter._find_reasonable_step_size
        kernel._adapter._find_reasonable_step_size = None  # not deep-copied with the adapter
        try:
            adapter_proto = copy.deepcopy(kernel._adapter)
        finally:
            kernel._adapter._find_reasonable_step_size = find_fn
        options = {"dtype": layout.pack(first).dtype, "device": layout.pack(first).device}
        for i in range(1, self.num_chains):
            chain = copy.copy(kernel)
            chain._reset()
            chain._warmup_steps = warmup_steps
            chain._initial_params = inits[i]
            if self.is_nuts:
                chain.tree_depths = []
            chain._adapter = copy.deepcopy(adapter_proto)
            chain._adapter.step_size = chain._adapter._init_step_size
            chain._adapter.configure(
                warmup_steps,
                mass_matrix_shape=blocks,
                find_reasonable_step_size_fn=chain._find_reasonable_step_size,
                options=options,
            )
            chain._mm_version = -1
            chain._refresh_mass()
            if chain._adapter.adapt_step_size:
                chain._adapter.reset_step_size_adaptation(inits[i])
            self.chains.append(chain)
        z0 = torch.stack([layout.pack(p).detach() for p in inits])
        self._choose_potential(z0)
        self._mass_versions = None
        self._refresh_mass()
        grad, pe = self.potential_grad(z0)
        self._state = (z0, pe, grad)

    def _loop_potential_grad(self, z: torch.Tensor):
        outs = [self.kernel.potential_grad_flat(z[i]) for i in range(z.shape[0])]
        return torch.stack([g for g, _ in outs]), torch.stack([p for _, p in outs])

    def _choose_potential(self, z0: torch.Tensor) -> None:
        self._batched_fn = None
        self._batched_grad = None
        if self.num_chains == 1:
            self.potential_mode = "single"
            return
        self.potential_mode = "loop"
        kernel = self.kernel
        pf = kernel.potential_fn
        if kernel.model is None or getattr(pf, "has_enumerable_sites", True):
            return
        layout = self.layout
        batched = ChainBatchedPotential(pf, kernel._prototype_trace, self.num_chains)

        def direct(z):
            return batched(layout.unpack(z))

        points = [z0] + [z0 + 0.5 * torch.randn_like(z0) for _ in range(2)]
        try:
            with validation_enabled(False), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for z in points:
                    g_ref, pe_ref = self._loop_potential_grad(z)
                    g, pe = _grad_value_batched(direct, z)
                    if not (_close(pe, pe_ref) and _close(g, g_ref)):
                        return
                self._batched_fn = direct
                self.potential_mode = "batched"
                if kernel._jit_compile is False:
                    return
                recorded = record_potential_grad(direct, z0, batched=True)
                if recorded is not None:
                    self._batched_fn = None
                    self._batched_grad = recorded
                    self.potential_mode = "recorded"
                    return
                traced = torch.jit.trace(direct, (z0,), check_trace=False)
                for z in points:
                    g_ref, pe_ref = _grad_value_batched(direct, z)
                    g, pe = _grad_value_batched(traced, z)
                    if not (_close(pe, pe_ref) and _close(g, g_ref)):
                        return
                self._batched_fn = traced
                self.potential_mode = "traced"
        except Exception:  # a model that does not broadcast over the chain dim
            if self.potential_mode != "batched":
                self._batched_fn = None
                self.potential_mode = "loop"

    def potential_grad(self, z: torch.Tensor):
        """``(gradient, potential energy)`` of every chain at the ``(C, D)`` positions."""
        if self.potential_mode == "single":
            g, pe = self.kernel.potential_grad_flat(z[0])
            return g.unsqueeze(0), pe.unsqueeze(0)
        if self._batched_grad is not None:
            try:
                return self._batched_grad(z)
            except (ValueError, RuntimeError):
                return self._loop_potential_grad(z)
        if self._batched_fn is None:
            return self._loop_potential_grad(z)
        try:
            return _grad_value_batched(self._batched_fn, z)
        except (ValueError, RuntimeError):  # one chain's invalid point: evaluate each alone
            return self._loop_potential_grad(z)

    # ------------------------------------------------------------ mass matrix
    def _refresh_mass(self) -> None:
        versions = tuple(ch.mass_matrix_adapter.version for ch in self.chains)
        if versions == self._mass_versions:
            return
        self._mass_versions = versions
        for ch in self.chains:
            ch._refresh_mass()
        self._dense = self.chains[0]._dense
        self._inv_mass = torch.stack([ch._inv_mass for ch in self.chains])
        self._mass_sqrt = torch.stack([ch._mass_sqrt for ch in self.chains])
        if self._dense:
            self._inv_mass_t = self._inv_mass.transpose(-1, -2)
            self._mass_sqrt_t = self._mass_sqrt.transpose(-1, -2)

    def kinetic_grad(self, r: torch.Tensor) -> torch.Tensor:
        """``M_c^-1 r_c`` for every chain."""
        if self._dense:
            return (r.unsqueeze(-2) @ self._inv_mass_t).squeeze(-2)
        return self._inv_mass * r

    def kinetic_energy(self, r: torch.Tensor) -> torch.Tensor:
        """The ``(C,)`` kinetic energies."""
        return 0.5 * (r * self.kinetic_grad(r)).sum(-1)

    def sample_momentum(self, like: torch.Tensor) -> torch.Tensor:
        """Momenta drawn from each chain's ``N(0, M_c)``."""
        u = torch.randn_like(like)
        if self._dense:
            return (u.unsqueeze(-2) @ self._mass_sqrt_t).squeeze(-2)
        return self._mass_sqrt * u

    def leapfrog(self, z, r, grad, half_step, step):
        """One leapfrog step of every chain (``half_step``, ``step``: ``(C, 1)``)."""
        r = r - half_step * grad
        z = z + step * self.kinetic_grad(r)
        grad, pe = self.potential_grad(z)
        r = r - half_step * grad
        return z, r, grad, pe

    def _step_tensors(self, steps: List[float], like: torch.Tensor):
        half = torch.tensor([0.5 * s for s in steps], dtype=like.dtype, device=like.device)
        full = torch.tensor(steps, dtype=like.dtype, device=like.device)
        return half.unsqueeze(-1), full.unsqueeze(-1)

    # ---------------------------------------------------------------- sample
    def end_warmup(self) -> None:
        """Tell every chain that warm-up is over."""
        for ch in self.chains:
            ch.end_warmup()

    def sample(self) -> torch.Tensor:
        """One iteration of every chain; returns the ``(C, D)`` positions."""
        if self.is_nuts:
            z, pe, grad, accept, accepted, diverging = self._nuts_step()
        else:
            z, pe, grad, accept, accepted, diverging = self._hmc_step()
        self._state = (z, pe, grad)
        for i, ch in enumerate(self.chains):
            ch._record(accept[i], accepted[i], diverging[i], z[i], grad[i])
        self._refresh_mass()
        return z

    def _hmc_step(self):
        z, pe, grad = self._state
        c = self.num_chains
        r = self.sample_momentum(z)
        energy_current = self.kinetic_energy(r) + pe
        steps = [ch.step_size for ch in self.chains]
        num_steps = [ch.num_steps for ch in self.chains]
        half, full = self._step_tensors(steps, z)
        z_new, r_new, grad_new, pe_new = z, r, grad, pe
        for k in range(max(num_steps)):
            moving = [k < n for n in num_steps]
            zn, rn, gn, pn = self.leapfrog(z_new, r_new, grad_new, half, full)
            if all(moving):
                z_new, r_new, grad_new, pe_new = zn, rn, gn, pn
            else:
                m = _mask_tensor(moving, z.device)
                z_new, r_new = torch.where(m, zn, z_new), torch.where(m, rn, r_new)
                grad_new, pe_new = torch.where(m, gn, grad_new), torch.where(m[:, 0], pn, pe_new)
        energy_new = self.kinetic_energy(r_new) + pe_new
        deltas = (energy_new - energy_current).tolist()
        u = torch.rand(c).tolist()
        accept, accepted, diverging = [], [], []
        for i in range(c):
            delta = math.inf if math.isnan(deltas[i]) else deltas[i]
            diverging.append(delta > self.kernel._max_sliced_energy)
            prob = 1.0 if delta <= 0 else math.exp(-delta)
            accept.append(prob)
            accepted.append(u[i] < prob)
        m = _mask_tensor(accepted, z.device)
        z = _pick(accepted, m, z_new, z)
        pe = _pick(accepted, m, pe_new, pe)
        grad = _pick(accepted, m, grad_new, grad)
        return z, pe, grad, accept, accepted, diverging

    # NUTS -------------------------------------------------------------------
    # A tree keeps its left edge, right edge and proposal each as one (3, C, D) block of
    # (position, momentum, gradient), so that choosing per chain is one ``where`` a block.
    def _leaf_log_weight(self, delta: float, log_slice: float) -> float:
        if self.kernel.use_multinomial_sampling:
            return -delta
        return 0.0 if -delta >= log_slice else -math.inf

    def _base_tree(self, edge, steps, active, energy0, log_slice) -> _BTree:
        if not all(active):  # stopped chains step from their (finite) start instead
            edge = torch.where(_mask_tensor(active, edge.device), edge, self._start)
        half, full = steps
        z_new, r_new, grad_new, pe_new = self.leapfrog(edge[0], edge[1], edge[2], half, full)
        block = torch.stack([z_new, r_new, grad_new])
        energies = (self.kinetic_energy(r_new) + pe_new).tolist()
        max_energy = self.kernel._max_sliced_energy
        lw, div, acc = [], [], []
        for i, e in enumerate(energies):
            delta = e - energy0[i]
            if math.isnan(delta):
                delta = math.inf
            div.append(delta > max_energy)
            acc.append(1.0 if delta <= 0 else math.exp(-delta))
            lw.append(self._leaf_log_weight(delta, log_slice[i]))
        c = len(energies)
        return _BTree(block, block, block, pe_new, r_new, lw, [False] * c, div, acc, [1] * c)

    def _build_tree(self, edge, steps, forward, forward_t, depth, active, energy0,
                    log_slice) -> _BTree:  # fmt: skip
        if depth == 0:
            return self._base_tree(edge, steps, active, energy0, log_slice)
        half = self._build_tree(
            edge, steps, forward, forward_t, depth - 1, active, energy0, log_slice
        )
        active2 = [a and not (t or d) for a, t, d in zip(active, half.turning, half.diverging)]
        if not any(active2):
            return half
        edge2 = _pick(forward, forward_t, half.right, half.left)
        other = self._build_tree(
            edge2, steps, forward, forward_t, depth - 1, active2, energy0, log_slice
        )
        return self._combine(half, other, forward, forward_t, False, active2)

    def _combine(self, old: _BTree, new: _BTree, forward, forward_t, biased: bool,
                 active: List[bool]) -> _BTree:  # fmt: skip
        c = len(active)
        log_weight, log_ratio, take_new, need_u = [], [], [], []
        for i in range(c):
            lw = logaddexp_floats(old.log_weight[i], new.log_weight[i])
            log_weight.append(lw)
            ratio = new.log_weight[i] - (old.log_weight[i] if biased else lw)
            log_ratio.append(ratio)
            take = (not new.diverging[i] and not new.turning[i]) or not biased
            take_new.append(take)
            need_u.append(active[i] and take and not ratio >= 0)  # (a nan ratio draws too)
        u = torch.rand(c).tolist() if any(need_u) else None
        choose_new = [
            active[i] and take_new[i] and (log_ratio[i] >= 0 or u[i] < math.exp(log_ratio[i]))
            for i in range(c)
        ]
        device = old.left.device
        m = _mask_tensor(choose_new, device) if 0 < sum(choose_new) < c else None
        proposal = _pick(choose_new, m, new.proposal, old.proposal)
        pe_p = _pick(choose_new, m, new.pe_proposal, old.pe_proposal)
        # the new subtree is on the right of a chain moving forward
        left = _pick(forward, forward_t, old.left, new.left)
        right = _pick(forward, forward_t, new.right, old.right)
        r_sum = old.r_sum + new.r_sum
        turning = [new.turning[i] or new.diverging[i] for i in range(c)]
        if not all(turning):
            # the U-turn criterion over the merged tree and across its two halves
            backward_t = None if forward_t is None else ~forward_t
            backward = [not f for f in forward]
            left_r_sum = _pick(forward, forward_t, old.r_sum, new.r_sum)
            right_r_sum = _pick(backward, backward_t, old.r_sum, new.r_sum)
            right_r_left = _pick(forward, forward_t, new.left[1], old.left[1])
            left_r_right = _pick(forward, forward_t, old.right[1], new.right[1])
            v = self.kinetic_grad(torch.stack([left[1], right[1], right_r_left, left_r_right]))
            rho1 = left_r_sum + right_r_left
            rho2 = left_r_right + right_r_sum
            a = torch.stack([r_sum, r_sum, rho1, rho1, rho2, rho2])
            dots = (a * v[dot_index(v.device)]).sum(-1)
            u_turn = (dots <= 0).any(0).tolist()
            turning = [t or ut for t, ut in zip(turning, u_turn)]
        merged = _BTree(
            left, right, proposal, pe_p, r_sum, log_weight, turning,
            [old.diverging[i] or new.diverging[i] for i in range(c)],
            [old.sum_accept_probs[i] + new.sum_accept_probs[i] for i in range(c)],
            [old.num_proposals[i] + new.num_proposals[i] for i in range(c)],
        )  # fmt: skip
        if all(active):
            return merged
        # chains that did not build ``new`` keep ``old``
        am = _mask_tensor(active, device)
        tensors = [_pick(active, am, a, b) for a, b in zip(merged[:5], old[:5])]
        scalars = [[a if active[i] else b for i, (a, b) in enumerate(zip(ms, os))]
                   for ms, os in zip(merged[5:], old[5:])]  # fmt: skip
        return _BTree(*tensors, *scalars)

    def _nuts_step(self):
        z, pe, grad = self._state
        c = self.num_chains
        kernel = self.kernel
        r = self.sample_momentum(z)
        energy0 = (self.kinetic_energy(r) + pe).tolist()
        if kernel.use_multinomial_sampling:
            log_slice = [0.0] * c
        else:
            log_slice = [math.log(max(u, 1e-300)) for u in torch.rand(c).tolist()]
        block = torch.stack([z, r, grad])
        self._start = block
        steps = [ch.step_size for ch in self.chains]
        tree = _BTree(block, block, block, pe, r, [0.0] * c, [False] * c, [False] * c,
                      [0.0] * c, [0] * c)  # fmt: skip
        active = [True] * c
        depths = [0] * c
        depth = 0
        while depth < kernel._max_tree_depth and any(active):
            u = torch.rand(c).tolist()
            forward = [x < 0.5 for x in u]
            forward_t = _mask_tensor(forward, z.device) if 0 < sum(forward) < c else None
            signed = self._step_tensors([s if f else -s for s, f in zip(steps, forward)], z)
            edge = _pick(forward, forward_t, tree.right, tree.left)
            new = self._build_tree(edge, signed, forward, forward_t, depth, active, energy0,
                                   log_slice)  # fmt: skip
            tree = self._combine(tree, new, forward, forward_t, True, active)
            depth += 1
            for i in range(c):
                if active[i]:
                    depths[i] = depth
                    if tree.turning[i] or tree.diverging[i]:
                        active[i] = False
        self._start = None
        accept = []
        for i, ch in enumerate(self.chains):
            ch.tree_depths.append(depths[i])
            accept.append(tree.sum_accept_probs[i] / max(tree.num_proposals[i], 1))
        proposal = tree.proposal
        return (proposal[0], tree.pe_proposal, proposal[2], accept, accept,
                tree.diverging)  # fmt: skip

    # ------------------------------------------------------------- reporting
    def logging(self) -> Dict[str, str]:
        """Figures for the progress line: step sizes, mean acceptance, divergences."""
        steps = [ch.step_size for ch in self.chains]
        acc = [ch._mean_accept_prob for ch in self.chains]
        return {
            "step size": f"{min(steps):.2e}-{max(steps):.2e}",
            "acc. prob": f"{sum(acc) / len(acc):.3f}",
            "div.": str(sum(len(ch._divergences) for ch in self.chains)),
        }

    def diagnostics(self) -> List[dict]:
        """Each chain's kernel diagnostics (divergences, acceptance rate)."""
        return [ch.diagnostics() for ch in self.chains]

    def cleanup(self) -> None:
        """Release the recorded potentials."""
        self._batched_fn = None
        self._batched_grad = None
        self._state = None
        self.kernel.cleanup()
