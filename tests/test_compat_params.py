"""Integration: the parameter store as Pyro users drive it
(``pyro.param`` with constraints, save/load, clear, optimizer state)."""

import pickle

import pytest
import torch

import ember as pyro
import ember.distributions as dist
from ember.distributions import constraints
from ember.infer import SVI, Trace_ELBO
from ember.optim import Adam


@pytest.fixture(autouse=True)
def _fresh_store():
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


def test_param_constraints_and_unconstrained_storage():
    scale = pyro.param("scale", torch.tensor([0.5, 2.0]), constraint=constraints.positive)
    assert torch.allclose(scale, torch.tensor([0.5, 2.0]))
    raw = scale.unconstrained()
    assert raw.requires_grad and raw.is_leaf
    assert torch.allclose(raw, torch.log(torch.tensor([0.5, 2.0])), atol=1e-6)

    probs = pyro.param("probs", torch.tensor([0.2, 0.3, 0.5]), constraint=constraints.simplex)
    assert torch.allclose(probs.sum(), torch.tensor(1.0))
    # like Pyro, params use transform_to (softmax for the simplex), not biject_to
    assert probs.unconstrained().shape == (3,)

    w = pyro.param("w", torch.tensor(0.7), constraint=constraints.interval(0.0, 1.0))
    assert 0 < w.item() < 1

    # a later call returns the stored value and ignores the init
    again = pyro.param("scale", torch.tensor([9.0, 9.0]))
    assert torch.allclose(again, torch.tensor([0.5, 2.0]))
    # retrieval by name only
    assert torch.allclose(pyro.param("probs"), torch.tensor([0.2, 0.3, 0.5]))

    store = pyro.get_param_store()
    assert set(store.keys()) == {"scale", "probs", "w"}
    assert "scale" in store and len(store) == 3
    assert store.get_param("scale") is not None
    named = dict(store.named_parameters())
    assert named["scale"] is raw
    assert sorted(store.get_all_param_names()) == ["probs", "scale", "w"]


def test_param_lazy_init_and_event_dim():
    calls = []

    def init():
        calls.append(1)
        return torch.ones(3)

    p = pyro.param("lazy", init)
    assert torch.equal(p, torch.ones(3)) and calls == [1]
    pyro.param("lazy", init)
    assert calls == [1]


def test_constrained_param_updates_stay_in_support():
    def model():
        pyro.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(3.0))

    def guide():
        s = pyro.param("s", torch.tensor(1.0), constraint=constraints.positive)
        assert s.item() > 0

    def model2():
        s = pyro.param("s", torch.tensor(1.0), constraint=constraints.positive)
        pyro.sample("x", dist.Normal(0.0, s), obs=torch.tensor(3.0))

    svi = SVI(model2, guide, Adam({"lr": 0.1}), loss=Trace_ELBO())
    for _ in range(200):
        svi.step()
    # MLE of the scale for one point at 3.0 is 3.0
    assert pyro.param("s").item() == pytest.approx(3.0, rel=0.05)


def test_save_load_round_trip(tmp_path):
    pyro.param("loc", torch.tensor([1.0, -2.0]))
    pyro.param("scale", torch.tensor([0.5, 3.0]), constraint=constraints.positive)
    pyro.param("probs", torch.tensor([0.1, 0.9]), constraint=constraints.simplex)
    path = tmp_path / "params.pt"
    pyro.get_param_store().save(str(path))

    pyro.clear_param_store()
    assert len(pyro.get_param_store()) == 0
    assert "loc" not in pyro.get_param_store()

    pyro.get_param_store().load(str(path))
    store = pyro.get_param_store()
    assert set(store.keys()) == {"loc", "scale", "probs"}
    assert torch.allclose(pyro.param("loc"), torch.tensor([1.0, -2.0]))
    assert torch.allclose(pyro.param("scale"), torch.tensor([0.5, 3.0]))
    assert torch.allclose(pyro.param("probs"), torch.tensor([0.1, 0.9]))
    # constraints survive the round trip
    assert torch.allclose(pyro.param("scale").unconstrained(), torch.log(torch.tensor([0.5, 3.0])))
    assert store.get_param("scale").unconstrained().requires_grad
    # loaded parameters are trainable
    loss = (pyro.param("scale") ** 2).sum()
    loss.backward()
    assert pyro.param("scale").unconstrained().grad is not None


def test_get_set_state_round_trip():
    pyro.param("a", torch.tensor(2.0), constraint=constraints.positive)
    state = pyro.get_param_store().get_state()
    pyro.clear_param_store()
    pyro.get_param_store().set_state(state)
    assert pyro.param("a").item() == pytest.approx(2.0)
    assert pyro.param("a").unconstrained().item() == pytest.approx(0.6931, abs=1e-4)


def test_optimizer_state_save_load(tmp_path):
    def model():
        loc = pyro.param("loc", torch.tensor(0.0))
        pyro.sample("x", dist.Normal(loc, 1.0), obs=torch.tensor(1.0))

    def guide():
        pass

    optim = Adam({"lr": 0.1})
    svi = SVI(model, guide, optim, loss=Trace_ELBO())
    for _ in range(5):
        svi.step()
    path = tmp_path / "optim.pt"
    optim.save(str(path))
    state = optim.get_state()
    assert state
    optim2 = Adam({"lr": 0.1})
    optim2.load(str(path))
    assert set(optim2.get_state()) == set(state)


def test_clear_param_store_resets_and_reinitialises():
    pyro.param("x", torch.tensor(1.0))
    pyro.clear_param_store()
    assert len(pyro.get_param_store()) == 0
    assert pyro.param("x", torch.tensor(5.0)).item() == 5.0


class Payload:
    """An arbitrary object: loading it would require executing pickle code."""


def test_load_rejects_non_parameter_files(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"params": Payload()}, str(path))
    with pytest.raises((ValueError, TypeError, RuntimeError, pickle.UnpicklingError)):
        pyro.get_param_store().load(str(path))
    assert len(pyro.get_param_store()) == 0
