"""Leapfrog (velocity Verlet) integration of Hamiltonian dynamics over dicts of tensors."""

from __future__ import annotations

from typing import Callable, Dict, Optional

import torch

__all__ = ["potential_grad", "velocity_verlet"]


def velocity_verlet(
    z: Dict[str, torch.Tensor],
    r: Dict[str, torch.Tensor],
    potential_fn: Callable,
    kinetic_grad: Callable,
    step_size: float,
    num_steps: int = 1,
    z_grads: Optional[Dict[str, torch.Tensor]] = None,
):
    """Integrate Hamilton's equations with ``num_steps`` leapfrog steps.

    :param dict z: positions, site name to tensor.
    :param dict r: momenta with the same keys.
    :param potential_fn: maps positions to the potential energy (a scalar tensor).
    :param kinetic_grad: maps momenta to the gradient of the kinetic energy (a dict).
    :param float step_size: the leapfrog step size.
    :param int num_steps: the number of leapfrog steps.
    :param dict z_grads: the potential's gradient at ``z`` if already known.
    :returns: ``(z_next, r_next, z_grads, potential_energy)`` at the end of the path.

    Example (a harmonic oscillator: after time ``pi`` the position flips sign)::

        >>> import math
        >>> z, r = {"x": torch.tensor(1.0)}, {"x": torch.tensor(0.0)}
        >>> z2, r2, _, _ = velocity_verlet(z, r, lambda q: 0.5 * q["x"] ** 2, lambda p: p,
        ...                                math.pi / 1000, 1000)
        >>> round(float(z2["x"]), 3)
        -1.0
    """
    z_next = dict(z)
    r_next = dict(r)
    grads = z_grads
    if grads is None:
        grads, potential_energy = potential_grad(potential_fn, z_next)
    potential_energy = None
    for _ in range(num_steps):
        z_next, r_next, grads, potential_energy = _single_step(
            z_next, r_next, potential_fn, kinetic_grad, step_size, grads
        )
    if potential_energy is None:
        potential_energy = potential_fn(z_next).detach()
    return z_next, r_next, grads, potential_energy


def _single_step(z, r, potential_fn, kinetic_grad, step_size, z_grads):
    r_half = {name: r[name] - 0.5 * step_size * z_grads[name] for name in r}
    r_grads = kinetic_grad(r_half)
    z_new = {name: z[name] + step_size * r_grads[name] for name in z}
    grads, potential_energy = potential_grad(potential_fn, z_new)
    r_new = {name: r_half[name] - 0.5 * step_size * grads[name] for name in r_half}
    return z_new, r_new, grads, potential_energy


def potential_grad(potential_fn: Callable, z: Dict[str, torch.Tensor]):
    """The potential energy at ``z`` and its gradient with respect to every entry of ``z``.

    :returns: ``(grads, potential_energy)``, both detached. If the potential cannot be
        evaluated (a ``ValueError`` or ``RuntimeError`` from a distribution's argument
        validation or a singular matrix), the energy is ``nan`` and every gradient is zero,
        so that a sampler rejects the point instead of crashing.
    """
    z_leaves = {name: value.detach().requires_grad_(True) for name, value in z.items()}
    try:
        potential_energy = potential_fn(z_leaves)
    except (ValueError, RuntimeError) as err:
        message = str(err)
        if (
            "singular" in message
            or "input is not positive-definite" in message
            or (isinstance(err, ValueError) and "Expected parameter" in message)
        ):
            grads = {name: torch.zeros_like(value) for name, value in z_leaves.items()}
            return grads, z_leaves[next(iter(z_leaves))].new_tensor(float("nan"))
        raise
    names = list(z_leaves)
    grad_values = torch.autograd.grad(
        potential_energy, [z_leaves[n] for n in names], allow_unused=True
    )
    grads = {
        n: (torch.zeros_like(z_leaves[n]) if g is None else g) for n, g in zip(names, grad_values)
    }
    return grads, potential_energy.detach()
