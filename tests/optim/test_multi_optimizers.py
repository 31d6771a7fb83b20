import pytest
import torch

import ember
from ember.optim import (
    SGD,
    Adam,
    MixedMultiOptimizer,
    MultiOptimizer,
    Newton,
    PyroMultiOptimizer,
    TorchMultiOptimizer,
)


def _problem():
    g = torch.Generator().manual_seed(0)
    target_a = torch.randn(5, 2, generator=g, dtype=torch.float64)
    target_b = torch.randn(3, 1, generator=g, dtype=torch.float64)
    a = torch.zeros(5, 2, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(3, 1, dtype=torch.float64, requires_grad=True)

    def loss_fn():
        return 2.0 * ((a - target_a) ** 2).sum() + ((b - target_b) ** 2).sum()

    return a, b, target_a, target_b, loss_fn


def test_newton_reaches_optimum_in_one_step():
    a, b, ta, tb, loss_fn = _problem()
    Newton().step(loss_fn(), {"a": a, "b": b})
    assert torch.allclose(a, ta, atol=1e-12) and torch.allclose(b, tb, atol=1e-12)
    assert not a.grad_fn  # step() leaves detached leaves


def test_newton_get_step_is_differentiable():
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    c = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    updated = Newton().get_step(((x - c) ** 2).sum(), {"x": x})["x"]
    assert torch.allclose(updated, c.detach())
    updated.sum().backward()
    assert torch.allclose(c.grad, torch.ones(2, dtype=torch.float64))


def test_newton_trust_radius():
    x = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[30.0, 40.0]], dtype=torch.float64)
    Newton({"x": 1.0}).step(((x - target) ** 2).sum(), {"x": x})
    assert float(x.detach().norm()) <= 1.0 + 1e-9
    # direction is towards the target
    assert torch.allclose(x.detach() / x.detach().norm(), target / 50.0, atol=1e-9)


def test_pyro_multi_optimizer_equals_sgd_update():
    a, b, ta, tb, loss_fn = _problem()
    PyroMultiOptimizer(SGD({"lr": 0.1})).step(loss_fn(), {"a": a, "b": b})
    # one SGD step from zero: x <- 0 - lr * grad, grad = -2 * w * target
    assert torch.allclose(a.detach(), 0.1 * 4.0 * ta)
    assert torch.allclose(b.detach(), 0.1 * 2.0 * tb)


def test_torch_multi_optimizer_equals_torch_sgd():
    a, b, ta, tb, loss_fn = _problem()
    TorchMultiOptimizer(torch.optim.SGD, {"lr": 0.25}).step(loss_fn(), {"a": a})
    assert torch.allclose(a.detach(), 0.25 * 4.0 * ta)
    assert torch.equal(b.detach(), torch.zeros(3, 1, dtype=torch.float64))


def test_mixed_multi_optimizer():
    a, b, ta, tb, loss_fn = _problem()
    optim = MixedMultiOptimizer([(["a"], SGD({"lr": 0.1})), (["b"], Newton())])
    optim.step(loss_fn(), {"a": a, "b": b})
    assert torch.allclose(a.detach(), 0.4 * ta)
    assert torch.allclose(b.detach(), tb, atol=1e-12)
    # get_step over Newton-only parts returns every name
    optim2 = MixedMultiOptimizer([(["a"], Newton()), (["b"], Newton({"b": 10.0}))])
    a2, b2, ta2, tb2, loss2 = _problem()
    out = optim2.get_step(loss2(), {"a": a2, "b": b2})
    assert set(out) == {"a", "b"}
    assert torch.allclose(out["a"], ta2) and torch.allclose(out["b"], tb2)


def test_mixed_multi_optimizer_overlap_and_type_errors():
    with pytest.raises(ValueError, match="two different optimizers"):
        MixedMultiOptimizer([(["a", "b"], Newton()), (["b"], Adam({}))])
    with pytest.raises(TypeError, match="MultiOptimizer or PyroOptim"):
        MixedMultiOptimizer([(["a"], torch.optim.SGD)])
    with pytest.raises(TypeError, match="PyroOptim"):
        PyroMultiOptimizer(torch.optim.SGD)


def test_base_class_requires_get_step():
    with pytest.raises(NotImplementedError, match="get_step"):
        MultiOptimizer().step(torch.tensor(0.0), {})


def test_with_param_store_model():
    ember.clear_param_store()
    try:

        def model():
            loc = ember.param("loc", torch.zeros(4, 1))
            ember.factor("f", -0.5 * ((loc - 3.0) ** 2).sum() / 0.25)

        tr = ember.poutine.trace(model).get_trace()
        loss = -tr.log_prob_sum()
        params = {
            name: site["value"].unconstrained()
            for name, site in tr.nodes.items()
            if site["type"] == "param"
        }
        Newton().step(loss, params)
        assert torch.allclose(ember.param("loc").detach(), torch.full((4, 1), 3.0))
    finally:
        ember.clear_param_store()
