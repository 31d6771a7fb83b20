"""ember.optim.Adam/AdamW step with torch's fused CPU kernel when the user chose no kernel."""

import numpy as np
import pytest
import torch

import ember.optim as optim


def _hand_adam(x0, grads, lr, betas, eps, wd, decoupled):
    """Adam (or AdamW) written out in numpy from its documented update rule."""
    x = np.array(x0, dtype=np.float64)
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    b1, b2 = betas
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, dtype=np.float64)
        if decoupled:
            x = x * (1 - lr * wd)
        else:
            g = g + wd * x
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x = x - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return x


def _run(opt, x, grads):
    for g in grads:
        x.grad = g.clone()
        opt([x])
    return x.detach().numpy()


@pytest.mark.parametrize("name,decoupled", [("Adam", False), ("AdamW", True)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adam_matches_hand_computed_update(name, decoupled, dtype):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, generator=g, dtype=dtype)
    grads = [torch.randn(5, generator=g, dtype=dtype) for _ in range(20)]
    args = {"lr": 0.05, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1}
    opt = getattr(optim, name)(args)
    x = _run(opt, x0.clone().requires_grad_(True), grads)
    expected = _hand_adam(
        x0.numpy(),
        [gr.numpy() for gr in grads],
        decoupled=decoupled,
        **{"lr": 0.05, "betas": (0.8, 0.95), "eps": 1e-6, "wd": 0.1},
    )
    tol = 1e-5 if dtype is torch.float32 else 1e-12
    np.testing.assert_allclose(x, expected, rtol=tol, atol=tol)


def test_adam_uses_fused_kernel_but_reports_the_users_options():
    x = torch.zeros(3, requires_grad=True)
    opt = optim.Adam({"lr": 0.1})
    x.grad = torch.ones(3)
    opt([x])
    (group,) = opt._groups.values()
    assert group.optimizer.param_groups[0]["fused"] is True
    state = opt.get_state()
    assert state["_param_0"]["param_groups"][0]["fused"] is None
    assert state["_param_0"]["state"][0]["step"].item() == 1.0


@pytest.mark.parametrize("choice", [{"foreach": False}, {"foreach": True}, {"fused": False}])
def test_an_explicit_kernel_choice_is_kept(choice):
    x = torch.zeros(3, requires_grad=True)
    opt = optim.Adam(dict(lr=0.1, **choice))
    x.grad = torch.ones(3)
    opt([x])
    (group,) = opt._groups.values()
    options = group.optimizer.param_groups[0]
    for k, v in choice.items():
        assert options[k] is v
    assert not options["fused"]
    np.testing.assert_allclose(x.detach().numpy(), [-0.1] * 3, rtol=1e-6)


def test_fused_and_plain_steps_agree_and_state_round_trips():
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(4, generator=g)
    grads = [torch.randn(4, generator=g) for _ in range(10)]
    fused = optim.Adam({"lr": 0.05})
    plain = optim.Adam({"lr": 0.05, "fused": False})
    a = _run(fused, x0.clone().requires_grad_(True), grads)
    b = _run(plain, x0.clone().requires_grad_(True), grads)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # the state of one loads into the other and both continue alike
    y = torch.tensor(a, requires_grad=True)
    z = torch.tensor(a, requires_grad=True)
    restored_plain = optim.Adam({"lr": 0.05, "fused": False})
    restored_plain.set_state(fused.get_state())
    restored_fused = optim.Adam({"lr": 0.05})
    restored_fused.set_state(fused.get_state())
    more = [torch.randn(4, generator=g) for _ in range(5)]
    np.testing.assert_allclose(
        _run(restored_plain, y, more), _run(restored_fused, z, more), rtol=1e-6, atol=1e-7
    )
