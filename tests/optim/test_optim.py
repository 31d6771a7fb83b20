"""Tests for ember.optim: PyroOptim grouping, ClippedAdam, wrappers, schedulers, state."""

import math

import numpy as np
import pytest
import torch

import ember.optim as optim
import ember.optim.optim as optim_module
from ember.optim.clipped_adam import ClippedAdam as ClippedAdamOptimizer


def _quadratic_grads(params, targets):
    loss = sum(((p - t) ** 2).sum() for p, t in zip(params, targets))
    for p in params:
        p.grad = None
    loss.backward()


# ---------------------------------------------------------------- ClippedAdam


def _hand_clipped_adam(x0, grads, lr, betas, eps, wd, clip, lrd):
    """ClippedAdam written out in numpy, step by step, from its documented rule."""
    x = np.array(x0, dtype=np.float64)
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    b1, b2 = betas
    for t, g in enumerate(grads, start=1):
        lr = lr * lrd  # decayed before the update, as in Pyro
        g = np.clip(np.asarray(g, dtype=np.float64), -clip, clip) + wd * x
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        x = x - lr * m_hat / (np.sqrt(v_hat) + eps)
    return x, lr


@pytest.mark.parametrize("foreach", [False, True])
def test_clipped_adam_matches_hand_computed_update(foreach):
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=5)
    grads = [rng.normal(scale=4.0, size=5) for _ in range(7)]  # many exceed the clip
    kw = dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, clip_norm=2.0, lrd=0.9)
    expected, lr_end = _hand_clipped_adam(
        x0, grads, kw["lr"], kw["betas"], kw["eps"], kw["weight_decay"], kw["clip_norm"], kw["lrd"]
    )
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    opt = ClippedAdamOptimizer([x], foreach=foreach, **kw)
    for g in grads:
        x.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    np.testing.assert_allclose(x.detach().numpy(), expected, rtol=1e-12, atol=1e-12)
    assert opt.param_groups[0]["lr"] == pytest.approx(lr_end, rel=1e-12)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05 * 0.9**7, rel=1e-12)


def test_clipped_adam_clips_elementwise():
    # One step of Adam moves each coordinate by lr*sign(g); with weight decay the
    # clipped gradient is what enters, so g=1000 behaves exactly like g=clip.
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    y = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = ClippedAdamOptimizer([x, y], lr=0.1, clip_norm=0.5)
    x.grad = torch.tensor([1000.0, -1000.0, 0.25], dtype=torch.float64)
    y.grad = torch.tensor([0.5, -0.5, 0.25], dtype=torch.float64)
    opt.step()
    opt.step()  # second step with the same gradients: still identical
    torch.testing.assert_close(x, y)
    state = opt.state[x]
    torch.testing.assert_close(
        state["exp_avg_sq"],
        (1 - 0.999**2) * torch.tensor([0.25, 0.25, 0.0625], dtype=torch.float64),
    )


def test_clipped_adam_without_clip_or_decay_equals_torch_adam():
    torch.manual_seed(0)
    a = torch.randn(4, 3, requires_grad=True)
    b = a.detach().clone().requires_grad_()
    opt_a = ClippedAdamOptimizer([a], lr=0.01, clip_norm=1e9)
    opt_b = torch.optim.Adam([b], lr=0.01)
    target = torch.randn(4, 3)
    for _ in range(20):
        _quadratic_grads([a], [target])
        _quadratic_grads([b], [target])
        opt_a.step()
        opt_b.step()
    torch.testing.assert_close(a, b)


def test_clipped_adam_learning_rate_decays_geometrically():
    opt = optim.ClippedAdam({"lr": 0.2, "lrd": 0.5})
    x = torch.zeros(1, requires_grad=True)
    lrs = []
    for _ in range(4):
        x.grad = torch.ones(1)
        opt([x])
        lrs.append(opt.get_state()["_param_0"]["param_groups"][0]["lr"])
    assert lrs == pytest.approx([0.1, 0.05, 0.025, 0.0125])


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"lr": -1.0}, "lr"),
        ({"clip_norm": 0.0}, "clip_norm"),
        ({"lrd": 0.0}, "lrd"),
        ({"betas": (0.9, 1.0)}, "betas"),
        ({"eps": -1.0}, "eps"),
    ],
)
def test_clipped_adam_rejects_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        ClippedAdamOptimizer([torch.zeros(1, requires_grad=True)], **kwargs)


def test_clipped_adam_rejects_sparse_gradients():
    x = torch.zeros(3, requires_grad=True)
    opt = ClippedAdamOptimizer([x])
    x.grad = torch.zeros(3).to_sparse()
    with pytest.raises(TypeError, match="sparse"):
        opt.step()


# -------------------------------------------------------------- PyroOptim core


def test_wrappers_exist_for_every_torch_optimizer_and_scheduler():
    names = [
        n
        for n, v in vars(torch.optim).items()
        if isinstance(v, type) and issubclass(v, torch.optim.Optimizer) and n != "Optimizer"
    ]
    assert {"Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "LBFGS", "SparseAdam"} <= set(names)
    for n in names:
        cls = getattr(optim, n)
        assert issubclass(cls, optim.PyroOptim)
        assert cls.torch_optimizer is getattr(torch.optim, n)
    for n in ["StepLR", "ExponentialLR", "ReduceLROnPlateau", "CosineAnnealingLR", "OneCycleLR"]:
        cls = getattr(optim, n)
        assert issubclass(cls, optim.PyroLRScheduler)
        assert cls.torch_scheduler is getattr(torch.optim.lr_scheduler, n)


@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "NAdam", "RAdam"])
def test_wrapper_follows_torch_optimizer_trajectory(name):
    torch.manual_seed(1)
    shapes = [(3,), (2, 4), ()]
    ours = [torch.randn(s, requires_grad=True) for s in shapes]
    theirs = [p.detach().clone().requires_grad_() for p in ours]
    targets = [torch.randn(s) for s in shapes]
    args = {"lr": 0.05}
    wrapped = getattr(optim, name)(args)
    reference = getattr(torch.optim, name)(theirs, **args)
    for _ in range(15):
        _quadratic_grads(ours, targets)
        _quadratic_grads(theirs, targets)
        wrapped(ours)
        reference.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)
    # all parameters share one torch optimizer and one param group
    assert len(wrapped._groups) == 1
    (group,) = wrapped._groups.values()
    assert len(group.optimizer.param_groups) == 1
    assert len(group.params) == 3


def test_params_taken_up_mid_training():
    torch.manual_seed(2)
    x = torch.randn(3, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    tx, ty = torch.randn(3), torch.randn(2)
    opt = optim.Adam({"lr": 0.1})
    ref_x = torch.optim.Adam([x_ref], lr=0.1)
    for _ in range(5):
        _quadratic_grads([x], [tx])
        _quadratic_grads([x_ref], [tx])
        opt([x])
        ref_x.step()
    y = torch.zeros(2, requires_grad=True)
    y_ref = y.detach().clone().requires_grad_()
    ref_y = torch.optim.Adam([y_ref], lr=0.1)
    for _ in range(5):
        _quadratic_grads([x, y], [tx, ty])
        _quadratic_grads([x_ref], [tx])
        _quadratic_grads([y_ref], [ty])
        opt([x, y])
        ref_x.step()
        ref_y.step()
    torch.testing.assert_close(x, x_ref)  # x's Adam state carried on unaffected
    torch.testing.assert_close(y, y_ref)  # y started its own moments when it appeared
    assert len(opt._groups) == 1
    assert sorted(opt.get_state()) == ["_param_0", "_param_1"]


def test_only_passed_params_are_stepped():
    x = torch.zeros(2, requires_grad=True)
    y = torch.zeros(2, requires_grad=True)
    opt = optim.SGD({"lr": 1.0})
    x.grad, y.grad = torch.ones(2), torch.ones(2)
    opt([x, y])
    x.grad, y.grad = torch.ones(2), torch.ones(2)
    opt([x])  # y keeps a gradient but was not passed
    assert x.detach().tolist() == [-2.0, -2.0]
    assert y.detach().tolist() == [-1.0, -1.0]
    assert y.grad is not None  # its gradient was restored


def test_callable_optim_args_group_equal_arguments(monkeypatch):
    names = {}
    tensors = [torch.zeros(2, requires_grad=True) for _ in range(4)]
    for t, n in zip(tensors, ["enc$$$w", "enc$$$b", "dec$$$w", "loc"]):
        names[id(t)] = n
    monkeypatch.setattr(optim_module, "_param_name_in_store", lambda p: names.get(id(p)))
    seen = []

    def per_param(module_name, param_name):
        seen.append((module_name, param_name))
        return {"lr": 0.5 if module_name == "enc" else 0.1}

    opt = optim.SGD(per_param)
    for t in tensors:
        t.grad = torch.ones(2)
    opt(tensors)
    assert seen == [("enc", "w"), ("enc", "b"), ("dec", "w"), (None, "loc")]
    assert len(opt._groups) == 2  # two distinct argument dicts, two groups
    assert sorted(len(g.params) for g in opt._groups.values()) == [2, 2]
    steps = [t.detach()[0].item() for t in tensors]
    assert steps == pytest.approx([-0.5, -0.5, -0.1, -0.1])
    assert sorted(opt.get_state()) == sorted(names.values())


def test_clip_args_norm_and_value():
    x = torch.zeros(2, requires_grad=True)
    y = torch.zeros(2, requires_grad=True)
    opt = optim.SGD({"lr": 1.0}, clip_args={"clip_norm": 1.0})
    x.grad = torch.tensor([3.0, 4.0])  # norm 5 -> rescaled to norm 1
    y.grad = torch.tensor([0.3, 0.4])  # norm 0.5 -> unchanged
    opt([x, y])
    torch.testing.assert_close(x.detach(), torch.tensor([-0.6, -0.8]), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.detach(), torch.tensor([-0.3, -0.4]))
    z = torch.zeros(2, requires_grad=True)
    opt = optim.SGD({"lr": 1.0}, clip_args={"clip_value": 0.5})
    z.grad = torch.tensor([3.0, -0.25])
    opt([z])
    torch.testing.assert_close(z.detach(), torch.tensor([-0.5, 0.25]))


def test_bad_arguments_are_reported():
    with pytest.raises(TypeError, match="optim_args"):
        optim.Adam(0.01)
    with pytest.raises(ValueError, match="clip_norm"):
        optim.Adam({"lr": 0.01}, clip_args={"clip_nrom": 1.0})
    with pytest.raises(ValueError, match="params"):
        optim.Adam({"params": [], "lr": 0.01})
    opt = optim.Adam({"lr": 0.01})
    with pytest.raises(TypeError, match="tensors"):
        opt([1.0])
    opt = optim.SGD({"lr": 0.1, "bogus": 3})
    with pytest.raises(TypeError, match="bogus"):
        opt([torch.zeros(1, requires_grad=True)])


# --------------------------------------------------------------------- state


def _train(opt, params, targets, steps, noise_seed):
    gen = torch.Generator().manual_seed(noise_seed)
    for _ in range(steps):
        _quadratic_grads(params, targets)
        for p in params:  # noisy gradients, as in SVI
            p.grad.add_(torch.randn(p.shape, generator=gen))
        opt(params)


@pytest.mark.parametrize(
    "make",
    [
        lambda: optim.Adam({"lr": 0.05}),
        lambda: optim.ClippedAdam({"lr": 0.05, "clip_norm": 0.5, "lrd": 0.95}),
        lambda: optim.RMSprop({"lr": 0.01, "momentum": 0.5}),
        lambda: optim.StepLR(
            {"optimizer": torch.optim.Adam, "optim_args": {"lr": 0.05}, "step_size": 2}
        ),
    ],
    ids=["Adam", "ClippedAdam", "RMSprop", "StepLR"],
)
def test_save_and_load_resume_identical_trajectory(tmp_path, make):
    torch.manual_seed(3)
    init = [torch.randn(3), torch.randn(2, 2)]
    targets = [torch.randn(3), torch.randn(2, 2)]

    def run(opt, params, seed, steps):
        _train(opt, params, targets, steps, seed)
        if isinstance(opt, optim.PyroLRScheduler):
            opt.step()

    # uninterrupted: 6 + 6 steps
    full = [t.clone().requires_grad_() for t in init]
    opt = make()
    run(opt, full, 10, 6)
    run(opt, full, 11, 6)

    # interrupted after 6 steps: save, then a fresh optimizer and fresh tensors resume
    first = [t.clone().requires_grad_() for t in init]
    opt1 = make()
    run(opt1, first, 10, 6)
    path = tmp_path / "optim.pt"
    opt1.save(path)
    assert not [f for f in tmp_path.iterdir() if f.name != "optim.pt"]  # no temp file left
    resumed = [p.detach().clone().requires_grad_() for p in first]
    opt2 = make()
    opt2.load(path)
    run(opt2, resumed, 11, 6)
    for a, b in zip(full, resumed):
        assert torch.equal(a, b)

    # a fresh optimizer without the state takes a different path
    other = [p.detach().clone().requires_grad_() for p in first]
    run(make(), other, 11, 6)
    assert not all(torch.equal(a, b) for a, b in zip(full, other))


def test_get_state_is_a_snapshot_and_set_state_restores():
    x = torch.zeros(3, requires_grad=True)
    opt = optim.Adam({"lr": 0.1})
    x.grad = torch.ones(3)
    opt([x])
    snap = opt.get_state()
    avg = snap["_param_0"]["state"][0]["exp_avg"].clone()
    x.grad = torch.ones(3)
    opt([x])
    assert torch.equal(snap["_param_0"]["state"][0]["exp_avg"], avg)
    opt.set_state(snap)
    assert torch.equal(opt.get_state()["_param_0"]["state"][0]["exp_avg"], avg)


def test_pending_state_survives_get_state():
    x = torch.zeros(3, requires_grad=True)
    opt = optim.Adam({"lr": 0.1})
    x.grad = torch.ones(3)
    opt([x])
    state = opt.get_state()
    fresh = optim.Adam({"lr": 0.1})
    fresh.set_state(state)
    assert sorted(fresh.get_state()) == ["_param_0"]  # not yet applied, still reported


def test_load_rejects_foreign_files_and_shape_mismatch(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not an optimizer state file"):
        optim.Adam({"lr": 0.1}).load(bad)

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    evil = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, evil)
    with pytest.raises(ValueError, match="not an optimizer state file"):
        optim.Adam({"lr": 0.1}).load(evil)

    x = torch.zeros(3, requires_grad=True)
    opt = optim.Adam({"lr": 0.1})
    x.grad = torch.ones(3)
    opt([x])
    state = opt.get_state()
    other = optim.Adam({"lr": 0.1})
    other.set_state(state)
    y = torch.zeros(4, requires_grad=True)
    y.grad = torch.ones(4)
    with pytest.raises(ValueError, match="_param_0"):
        other([y])
    with pytest.raises(ValueError, match="layout"):
        other.set_state({"a": 1})


# ---------------------------------------------------------------- schedulers


def test_exponential_lr_scheduler_decays_every_group():
    sched = optim.ExponentialLR({"optimizer": optim.SGD, "optim_args": {"lr": 1.0}, "gamma": 0.5})
    x = torch.zeros(1, requires_grad=True)
    for _epoch in range(3):
        x.grad = torch.ones(1)
        sched([x])
        sched.step()
    assert x.item() == pytest.approx(-(1.0 + 0.5 + 0.25))
    assert sched.get_last_lr() == {"_param_0": pytest.approx(0.125)}
    # a parameter arriving later joins at the group's current learning rate
    y = torch.zeros(1, requires_grad=True)
    x.grad, y.grad = torch.ones(1), torch.ones(1)
    sched([x, y])
    assert y.item() == pytest.approx(-0.125)


def test_reduce_lr_on_plateau_takes_the_metric():
    sched = optim.ReduceLROnPlateau(
        {"optimizer": torch.optim.SGD, "optim_args": {"lr": 1.0}, "factor": 0.1, "patience": 0}
    )
    x = torch.zeros(1, requires_grad=True)
    x.grad = torch.ones(1)
    sched([x])
    sched.step(1.0)
    sched.step(2.0)  # no improvement with patience 0: the rate drops
    assert sched.get_last_lr()["_param_0"] == pytest.approx(0.1)


def test_scheduler_requires_an_optimizer():
    with pytest.raises(ValueError, match="optimizer"):
        optim.StepLR({"optim_args": {"lr": 0.1}, "step_size": 2})
    sched = optim.StepLR({"optimizer": torch.optim.SGD, "optim_args": {"lr": 0.1}})
    with pytest.raises(TypeError, match="StepLR"):
        sched([torch.zeros(1, requires_grad=True)])


def test_lbfgs_wrapper_passes_the_closure():
    x = torch.tensor([3.0], requires_grad=True)
    opt = optim.LBFGS({"lr": 1.0})

    def closure():
        x.grad = None
        loss = ((x - 1.0) ** 2).sum()
        loss.backward()
        return loss

    for _ in range(3):
        opt([x], closure)
    assert math.isclose(x.item(), 1.0, abs_tol=1e-4)


# ------------------------------------------------------- with the param store


def test_param_store_names_and_module_names():
    from ember.primitives import clear_param_store, get_param_store, module, param

    clear_param_store()
    net = torch.nn.Linear(2, 1)
    module("encoder", net)
    param("loc", torch.zeros(2))
    store = get_param_store()
    unconstrained = [store.get_param(n) for n in store.get_all_param_names()]
    unconstrained = [getattr(p, "unconstrained", lambda p=p: p)() for p in unconstrained]
    seen = []

    def per_param(module_name, param_name):
        seen.append((module_name, param_name))
        return {"lr": 0.1 if module_name == "encoder" else 1.0}

    opt = optim.SGD(per_param)
    for p in unconstrained:
        p.grad = torch.ones_like(p)
    opt(unconstrained)
    assert sorted(seen, key=str) == sorted(
        [("encoder", "weight"), ("encoder", "bias"), (None, "loc")], key=str
    )
    assert sorted(opt.get_state()) == ["encoder$$$bias", "encoder$$$weight", "loc"]
    assert len(opt._groups) == 2
    assert param("loc").detach().tolist() == [-1.0, -1.0]
    clear_param_store()


def test_new_tensor_under_a_known_name_replaces_the_old_one():
    import ember

    ember.clear_param_store()
    store = ember.get_param_store()
    opt = optim.SGD({"lr": 1.0})
    ember.param("w", torch.zeros(2))
    old = dict(store.named_parameters())["w"]
    for _ in range(2):  # the second call reuses the grouping of the first
        old.grad = torch.ones(2)
        opt([old])
    assert old.detach().tolist() == [-2.0, -2.0]
    store["w"] = torch.full((2,), 5.0)  # a new leaf tensor under the same name
    new = dict(store.named_parameters())["w"]
    assert new is not old
    new.grad = torch.ones(2)
    opt([new])
    assert new.detach().tolist() == [4.0, 4.0]
    assert old.detach().tolist() == [-2.0, -2.0]
    assert sorted(opt.get_state()) == ["w"]
    (group,) = opt._groups.values()
    assert group.params == [new]
    ember.clear_param_store()
