"""AdagradRMSProp and DCTAdam against hand-computed updates; schedulers of schedulers."""

import functools
import math

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as L

import ember
from ember import optim
from ember.optim.adagrad_rmsprop import AdagradRMSProp as TorchAdagradRMSProp
from ember.optim.dct_adam import DCTAdam as TorchDCTAdam
from ember.optim.optim import is_scheduler


def _run(opt_factory, x0, grads):
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    opt = opt_factory([x])
    values = []
    for g in grads:
        x.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        values.append(x.detach().clone())
    return values, opt


# ---------------------------------------------------------------- AdagradRMSProp


def test_adagrad_rmsprop_hand_computed():
    eta, delta, t = 0.5, 0.0, 0.25
    grads = [2.0, -1.0, 4.0]
    values, opt = _run(lambda p: TorchAdagradRMSProp(p, eta=eta, delta=delta, t=t), 1.0, grads)
    x, s = 1.0, None
    for k, (g, got) in enumerate(zip(grads, values), start=1):
        s = g * g if k == 1 else (1 - t) * s + t * g * g
        x -= eta * k**-0.5 * g / (1 + math.sqrt(s))
        assert got.item() == pytest.approx(x, abs=1e-14)
    assert values[0].item() == pytest.approx(1 - 0.5 * 2 / 3, abs=1e-15)
    state = opt.state[opt.param_groups[0]["params"][0]]
    assert state["step"] == 3 and state["sum"].item() == pytest.approx(s)


def test_adagrad_rmsprop_delta_changes_the_decay():
    values, _ = _run(lambda p: TorchAdagradRMSProp(p, eta=1.0, delta=0.25, t=1.0), 0.0, [1.0] * 3)
    # t = 1: s = g^2 = 1; the k-th step is k^(-1/4) / 2
    expected = -np.cumsum([k**-0.25 / 2 for k in range(1, 4)])
    assert [v.item() for v in values] == pytest.approx(list(expected), abs=1e-14)


def test_adagrad_rmsprop_skips_params_without_grad_and_validates():
    a = torch.ones(2, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    opt = TorchAdagradRMSProp([a, b])
    a.grad = torch.ones(2)
    opt.step()
    assert torch.equal(b, torch.ones(2)) and b not in opt.state
    with pytest.raises(ValueError, match="t=0"):
        TorchAdagradRMSProp([a], t=0.0)
    with pytest.raises(ValueError, match="eta"):
        TorchAdagradRMSProp([a], eta=-1.0)


def test_adagrad_rmsprop_pyro_optim_wrapper():
    ember.clear_param_store()
    wrapper = optim.AdagradRMSProp({"eta": 0.3, "t": 0.5})
    assert wrapper.pt_optim_constructor.__name__ == "AdagradRMSProp"
    x = torch.tensor([1.0, -1.0], requires_grad=True)
    for _ in range(2):
        x.grad = torch.tensor([3.0, 0.5])
        wrapper([x])
    # step 1: s = g^2; step 2: s = g^2 (the average of equal squares), rho = 0.3 / sqrt(2)
    g = np.array([3.0, 0.5])
    expected = np.array([1.0, -1.0]) - (0.3 + 0.3 / math.sqrt(2)) * g / (1 + np.abs(g))
    assert np.allclose(x.detach().numpy(), expected, atol=1e-6)


# ----------------------------------------------------------------------- DCTAdam


def test_dct_adam_plain_hand_computed():
    lr, lrd, b1, b2, eps, clip = 0.1, 0.5, 0.9, 0.99, 1e-8, 1.0
    grads = [3.0, -0.5, 0.25]
    values, opt = _run(
        lambda p: TorchDCTAdam(p, lr=lr, betas=(b1, b2), eps=eps, clip_norm=clip, lrd=lrd),
        2.0,
        grads,
    )
    x, m, v, rate = 2.0, 0.0, 0.0, lr
    for k, (g, got) in enumerate(zip(grads, values), start=1):
        rate *= lrd
        g = max(-clip, min(clip, g))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x -= rate * math.sqrt(1 - b2**k) / (1 - b1**k) * m / (math.sqrt(v) + eps)
        assert got.item() == pytest.approx(x, abs=1e-13)
    assert opt.param_groups[0]["lr"] == pytest.approx(lr * lrd**3)


def _dct_matrix(n):
    """The orthonormal DCT-II matrix, from its definition."""
    k = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    c = np.cos(math.pi * (2 * j + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    c[0] /= math.sqrt(2.0)
    return c


def test_dct_adam_time_series_hand_computed():
    """A parameter with _pyro_dct_dim keeps Adam moments of [g, DCT(g padded to 8)]."""
    lr, b1, b2, eps = 0.05, 0.8, 0.9, 1e-8
    duration, fast = 7, 8
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=(2, duration)) for _ in range(3)]
    p = torch.zeros(2, duration, dtype=torch.float64, requires_grad=True)
    p._pyro_dct_dim = -1
    opt = TorchDCTAdam([p], lr=lr, betas=(b1, b2), eps=eps, clip_norm=100.0)
    C = _dct_matrix(fast)
    x = np.zeros((2, duration))
    m = np.zeros((2, duration + fast))
    v = np.zeros((2, duration + fast))
    for k, g in enumerate(grads, start=1):
        p.grad = torch.tensor(g)
        opt.step()
        padded = np.concatenate([g, np.zeros((2, fast - duration))], axis=-1)
        aug = np.concatenate([g, padded @ C.T], axis=-1)
        m = b1 * m + (1 - b1) * aug
        v = b2 * v + (1 - b2) * aug**2
        u = m / (np.sqrt(v) + eps)
        back = u[:, :duration] + (u[:, duration:] @ C)[:, :duration]  # time + idct(freq)
        x = x - lr * math.sqrt(1 - b2**k) / (1 - b1**k) * back
        assert np.allclose(p.detach().numpy(), x, atol=1e-12)
    assert opt.state[p]["exp_avg"].shape == (2, duration + fast)


def test_dct_adam_bad_time_dim():
    p = torch.zeros(3, requires_grad=True)
    p._pyro_dct_dim = 0
    p.grad = torch.ones(3)
    with pytest.raises(ValueError, match="_pyro_dct_dim=0"):
        TorchDCTAdam([p]).step()


def test_dct_adam_subsample_aware_updates_only_the_subsample():
    """A local parameter in a subsampled plate: only its subsampled rows move, each with its
    own step count."""
    ember.clear_param_store()
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    dct_adam = optim.DCTAdam({"lr": lr, "subsample_aware": True})
    assert dct_adam.pt_optim_constructor.__name__ == "DCTAdam"

    def model(rows):
        with ember.plate("rows", 6, subsample=torch.tensor(rows), dim=-1):
            return ember.param("loc", torch.zeros(6, 4), event_dim=1)

    def step(rows, grad_value):
        loc = model(rows)
        leaf = ember.param("loc").unconstrained()
        leaf.grad = None
        (grad_value * loc).sum().backward()
        dct_adam([leaf])
        return leaf

    leaf = step([1, 4], 2.0)
    assert leaf._pyro_subsample[-2].tolist() == [1, 4]
    first = lr * math.sqrt(1 - b2) / (1 - b1) * (1 - b1) * 2.0 / (math.sqrt(1 - b2) * 2.0 + eps)
    expected = torch.zeros(6, 4)
    expected[[1, 4]] = -first
    assert torch.allclose(leaf.detach(), expected, atol=1e-7)
    leaf = step([4, 5], -1.0)
    # row 4: second step with g = 2 then -1; row 5: first step with g = -1
    m = b1 * (1 - b1) * 2.0 + (1 - b1) * -1.0
    v = b2 * (1 - b2) * 4.0 + (1 - b2) * 1.0
    second = lr * math.sqrt(1 - b2**2) / (1 - b1**2) * m / (math.sqrt(v) + eps)
    expected[4] = -first - second
    expected[5] = lr * math.sqrt(1 - b2) / (math.sqrt(1 - b2) + eps)  # first step, g = -1
    assert torch.allclose(leaf.detach(), expected, atol=1e-7)
    steps = dct_adam.optim_objs[leaf].state[leaf]["step"]
    assert steps[:, 0].tolist() == [0, 1, 0, 0, 2, 1]


def test_dct_adam_subsample_unaware_updates_everything_with_gradients():
    ember.clear_param_store()
    dct_adam = optim.DCTAdam({"lr": 0.1})
    with ember.plate("rows", 4, subsample=torch.tensor([0, 2]), dim=-1):
        loc = ember.param("loc", torch.zeros(4, 2), event_dim=1)
    leaf = ember.param("loc").unconstrained()
    loc.sum().backward()
    dct_adam([leaf])
    # the other rows have zero gradients: their (plain Adam) step is zero
    assert torch.allclose(leaf[[0, 2]], torch.full((2, 2), -0.1), atol=1e-6)
    assert torch.equal(leaf[[1, 3]], torch.zeros(2, 2))


def test_dct_adam_validates():
    x = torch.zeros(1, requires_grad=True)
    for kwargs, match in [
        ({"lr": -1.0}, "lr"),
        ({"betas": (0.9, 1.0)}, "betas"),
        ({"clip_norm": 0.0}, "clip_norm"),
        ({"lrd": 0.0}, "lrd"),
        ({"eps": -1.0}, "eps"),
    ]:
        with pytest.raises(ValueError, match=match):
            TorchDCTAdam([x], **kwargs)


# --------------------------------------------------------------------- schedulers


def _lrs(scheduler, steps):
    x = torch.zeros(1, requires_grad=True)
    out = []
    for _ in range(steps):
        x.grad = torch.ones(1)
        scheduler([x])
        out.append(next(iter(scheduler.get_last_lr().values())))
        scheduler.step()
    return out, x


def test_sequential_lr_hand_computed():
    sched = optim.SequentialLR(
        {
            "optimizer": torch.optim.SGD,
            "optim_args": {"lr": 1.0},
            "schedulers": [
                {"scheduler": optim.ConstantLR, "factor": 0.5, "total_iters": 2},
                functools.partial(L.ExponentialLR, gamma=0.5),
            ],
            "milestones": [2],
        }
    )
    lrs, x = _lrs(sched, 5)
    # ConstantLR halves the rate for two steps, then ExponentialLR restarts from 1.0
    assert lrs == [0.5, 0.5, 1.0, 0.5, 0.25]
    assert x.item() == pytest.approx(-sum(lrs))
    assert is_scheduler(next(iter(sched.optim_objs.values())))


def test_chained_scheduler_hand_computed():
    sched = optim.ChainedScheduler(
        {
            "optimizer": optim.SGD,
            "optim_args": {"lr": 1.0},
            "schedulers": [
                {"scheduler": L.ExponentialLR, "gamma": 0.5},
                {"scheduler": L.StepLR, "step_size": 2, "gamma": 0.1},
            ],
        }
    )
    lrs, _ = _lrs(sched, 5)
    expected = [0.5**t * 0.1 ** (t // 2) for t in range(5)]
    assert lrs == pytest.approx(expected, rel=1e-12)


def test_each_group_gets_its_own_inner_schedulers_and_state_round_trips():
    def make():
        return optim.SequentialLR(
            {
                "optimizer": torch.optim.SGD,
                "optim_args": lambda name: {"lr": 1.0 if name == "a" else 0.1},
                "schedulers": [
                    {"scheduler": L.LinearLR, "start_factor": 0.5, "total_iters": 2},
                    {"scheduler": L.StepLR, "step_size": 1, "gamma": 0.5},
                ],
                "milestones": [3],
            }
        )

    ember.clear_param_store()
    a = ember.param("a", torch.zeros(1)).unconstrained()
    b = ember.param("b", torch.zeros(1)).unconstrained()
    sched = make()
    for _ in range(4):
        a.grad, b.grad = torch.ones(1), torch.ones(1)
        sched([a, b])
        sched.step()
    objs = sched.optim_objs
    assert objs[a] is not objs[b]
    # LinearLR: 0.5, 0.75, 1.0 of the base rate; at the milestone StepLR restarts at 1.0
    # and halves it after every step
    lrs = sched.get_last_lr()
    assert lrs == pytest.approx({"a": 0.5, "b": 0.05})
    clone = make()
    clone.set_state(sched.get_state())
    a.grad, b.grad = torch.zeros(1), torch.zeros(1)
    clone([a, b])  # takes a and b up with the saved state (a zero-gradient SGD step)
    assert clone.get_last_lr() == pytest.approx(lrs)
    for _ in range(2):
        sched.step()
        clone.step()
        assert clone.get_last_lr() == pytest.approx(sched.get_last_lr())
    assert sched.get_last_lr() == pytest.approx({"a": 0.125, "b": 0.0125})


def test_lr_scheduler_base_takes_a_concrete_class():
    sched = optim.LRScheduler(
        {
            "optimizer": torch.optim.SGD,
            "optim_args": {"lr": 1.0},
            "scheduler": L.StepLR,
            "step_size": 1,
            "gamma": 0.5,
        }
    )
    lrs, _ = _lrs(sched, 3)
    assert lrs == [1.0, 0.5, 0.25]
    with pytest.raises(ValueError, match="abstract base"):
        optim.LRScheduler({"optimizer": torch.optim.SGD, "optim_args": {"lr": 1.0}})


def test_scheduler_of_schedulers_errors():
    base = {"optimizer": torch.optim.SGD, "optim_args": {"lr": 1.0}}
    with pytest.raises(ValueError, match="needs 'schedulers'"):
        optim.ChainedScheduler(dict(base))
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    built = L.ExponentialLR(opt, gamma=0.5)
    with pytest.raises(TypeError, match="not scheduler objects"):
        optim.ChainedScheduler(dict(base, schedulers=[built]))
    with pytest.raises(TypeError, match="must be a dict"):
        optim.SequentialLR(dict(base, schedulers=[3], milestones=[]))
    sched = optim.SequentialLR(dict(base, schedulers=[{"gamma": 0.5}], milestones=[]))
    x = torch.zeros(1, requires_grad=True)
    x.grad = torch.ones(1)
    with pytest.raises(ValueError, match="needs a 'scheduler' entry"):
        sched([x])


def test_is_scheduler_duck_types():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    assert not is_scheduler(opt)
    assert is_scheduler(L.ReduceLROnPlateau(opt))
    assert not is_scheduler(optim.Adam({"lr": 0.1}))


def test_dct_adam_checkpoint_of_a_time_series_parameter(tmp_path):
    """Saved moments of a DCT-augmented parameter (time dim 7 -> 7 + 8) load back, and the
    restored optimizer continues exactly as the original."""
    p = torch.zeros(2, 7, dtype=torch.float64, requires_grad=True)
    p._pyro_dct_dim = -1
    original = optim.DCTAdam({"lr": 0.1})
    for k in range(2):
        p.grad = torch.arange(14.0, dtype=torch.float64).reshape(2, 7) - 5 * k
        original([p])
    state = original.get_state()
    assert state["_param_0"]["state"][0]["exp_avg"].shape == (2, 15)
    original.save(tmp_path / "dct.pt")
    restored = optim.DCTAdam({"lr": 0.1})
    restored.load(tmp_path / "dct.pt")
    q = p.detach().clone().requires_grad_()
    q._pyro_dct_dim = -1
    p.grad = torch.ones(2, 7, dtype=torch.float64)
    q.grad = torch.ones(2, 7, dtype=torch.float64)
    original([p])
    restored([q])
    assert torch.equal(p, q)
    wrong = torch.zeros(2, 7, dtype=torch.float64, requires_grad=True)  # no time dim
    wrong.grad = torch.ones(2, 7, dtype=torch.float64)
    other = optim.DCTAdam({"lr": 0.1})
    other.set_state(state)
    with pytest.raises(ValueError, match=r"shape \(2, 15\)"):
        other([wrong])
