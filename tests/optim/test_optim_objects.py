"""Per-parameter optimizer arguments by full name, and the optimizer objects a PyroOptim holds."""

import torch

import ember
from ember.optim import SGD, Adam, ExponentialLR


def take_up(opt, *names):
    ember.clear_param_store()
    params = []
    for name in names:
        p = ember.param(name, torch.tensor(1.0))
        (p * p).backward()
        params.append(p.unconstrained())
    opt(params)
    return params


def test_one_argument_callable_gets_the_full_name():
    seen = []

    def per_param(name):
        seen.append(name)
        return {"lr": 0.5 if name == "a" else 0.25}

    a, b = take_up(SGD(per_param), "a", "b")
    assert seen == ["a", "b"]
    # SGD: x - lr * 2x
    assert a.item() == 1.0 - 0.5 * 2.0
    assert b.item() == 1.0 - 0.25 * 2.0


def test_module_params_are_named_as_named_parameters():
    seen = []
    ember.clear_param_store()
    net = torch.nn.Linear(1, 1)
    ember.module("net", net)
    opt = SGD(lambda name: seen.append(name) or {"lr": 0.1})
    params = [ember.param(n).unconstrained() for n in ember.get_param_store().keys()]
    for p in params:
        p.grad = torch.ones_like(p)
    opt(params)
    assert sorted(seen) == ["net.bias", "net.weight"]


def test_two_argument_callable_gets_module_and_param_name():
    seen = []
    ember.clear_param_store()
    ember.module("net", torch.nn.Linear(1, 1))
    opt = SGD(lambda module_name, name: seen.append((module_name, name)) or {"lr": 0.1})
    params = [ember.param(n).unconstrained() for n in ember.get_param_store().keys()]
    for p in params:
        p.grad = torch.ones_like(p)
    opt(params)
    assert sorted(seen) == [("net", "bias"), ("net", "weight")]


def test_optim_objs_maps_each_param_to_its_torch_optimizer():
    opt = Adam({"lr": 0.1})
    a, b = take_up(opt, "a", "b")
    objs = opt.optim_objs
    assert set(map(id, objs)) == {id(a), id(b)}
    assert all(isinstance(o, torch.optim.Adam) for o in objs.values())
    assert objs[a].param_groups[0]["lr"] == 0.1


def test_optim_objs_of_a_scheduler_are_schedulers():
    sched = ExponentialLR({"optimizer": torch.optim.SGD, "optim_args": {"lr": 1.0}, "gamma": 0.5})
    (a,) = take_up(sched, "a")
    obj = sched.optim_objs[a]
    assert isinstance(obj, torch.optim.lr_scheduler.ExponentialLR)
    assert isinstance(obj.optimizer, torch.optim.SGD)
    sched.step()
    assert obj.optimizer.param_groups[0]["lr"] == 0.5
