import math

import pytest
import torch

from ember.ops.integrator import potential_grad, velocity_verlet


def test_harmonic_oscillator_exact_solution():
    # H = p^2/2 + q^2/2: q(t) = cos t for q(0) = 1, p(0) = 0; leapfrog error is O(eps^2)
    z, r = (
        {"x": torch.tensor([1.0], dtype=torch.float64)},
        {"x": torch.zeros(1, dtype=torch.float64)},
    )
    n = 1000
    eps = 1.0 / n
    zf, rf, grads, pe = velocity_verlet(
        z, r, lambda q: 0.5 * (q["x"] ** 2).sum(), lambda p: p, eps, n
    )
    assert abs(float(zf["x"]) - math.cos(1.0)) < 1e-6
    assert abs(float(rf["x"]) + math.sin(1.0)) < 1e-6
    assert abs(float(pe) - 0.5 * math.cos(1.0) ** 2) < 1e-6
    assert torch.allclose(grads["x"], zf["x"])


def test_reversibility_and_energy():
    torch.manual_seed(0)
    prec = torch.tensor([[2.0, 0.3], [0.3, 1.0]], dtype=torch.float64)

    def potential(q):
        return 0.5 * q["a"] @ prec @ q["a"]

    z = {"a": torch.randn(2, dtype=torch.float64)}
    r = {"a": torch.randn(2, dtype=torch.float64)}
    z1, r1, _, pe1 = velocity_verlet(z, r, potential, lambda p: p, 0.05, 40)
    z0, r0, _, _ = velocity_verlet(z1, {"a": -r1["a"]}, potential, lambda p: p, 0.05, 40)
    assert torch.allclose(z0["a"], z["a"]) and torch.allclose(-r0["a"], r["a"])
    h0 = float(potential(z)) + 0.5 * float(r["a"] @ r["a"])
    h1 = float(pe1) + 0.5 * float(r1["a"] @ r1["a"])
    assert abs(h1 - h0) < 1e-2


def test_potential_grad_values_and_singular():
    grads, pe = potential_grad(lambda q: (q["x"] ** 3).sum(), {"x": torch.tensor([2.0])})
    assert float(pe) == 8.0 and float(grads["x"]) == 12.0
    grads, pe = potential_grad(
        lambda q: torch.linalg.cholesky(q["c"]).sum(), {"c": torch.ones(2, 2)}
    )
    assert math.isnan(float(pe)) and torch.equal(grads["c"], torch.zeros(2, 2))
    with pytest.raises(KeyError):
        potential_grad(lambda q: q["missing"], {"x": torch.tensor(1.0)})
