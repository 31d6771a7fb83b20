"""The primitives: sample with obs/obs_mask/infer, param, factor, deterministic, module,
random_module, barrier and the deprecated aliases."""

import math
import warnings

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.util import _WARNED


@pytest.fixture(autouse=True)
def _clean():
    ember.clear_param_store()
    yield
    ember.clear_param_store()


def normal_lp(x, loc=0.0, scale=1.0):
    return -0.5 * ((x - loc) / scale) ** 2 - math.log(scale) - 0.5 * math.log(2 * math.pi)


def test_sample_with_obs_and_infer():
    def model():
        return ember.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.5), infer={"tag": "t"})

    tr = poutine.trace(model).get_trace()
    site = tr.nodes["x"]
    assert site["is_observed"] and site["value"].item() == 0.5
    assert site["infer"] == {"tag": "t"}
    assert tr.log_prob_sum().item() == pytest.approx(normal_lp(0.5))


def test_sample_with_obs_mask_splits_the_site():
    ember.set_rng_seed(0)
    obs = torch.tensor([1.0, float("nan"), 3.0])
    mask = torch.tensor([True, False, True])

    def model():
        with ember.plate("d", 3):
            return ember.sample("x", dist.Normal(0.0, 1.0), obs=obs, obs_mask=mask)

    tr = poutine.trace(model).get_trace()
    value = tr.nodes["_RETURN"]["value"]
    assert value[0] == 1.0 and value[2] == 3.0 and torch.isfinite(value[1])
    assert tr.nodes["x_observed"]["is_observed"]
    assert not tr.nodes["x_unobserved"]["is_observed"]
    assert torch.equal(tr.nodes["x"]["value"], value)
    tr.compute_log_prob()
    lp_obs = tr.nodes["x_observed"]["log_prob"]
    assert lp_obs[1] == 0 and lp_obs[0].item() == pytest.approx(normal_lp(1.0))
    lp_unobs = tr.nodes["x_unobserved"]["log_prob"]
    assert lp_unobs[0] == 0 and lp_unobs[2] == 0
    assert tr.nodes["x"]["log_prob_sum"].item() == 0.0
    with pytest.raises(TypeError, match="obs_mask"):
        ember.sample("y", dist.Normal(0.0, 1.0), obs=obs, obs_mask=torch.ones(3))


def test_obs_mask_with_event_dims_is_refused_naming_the_shapes():
    data = torch.zeros(3, 2)
    mask = torch.tensor([[False, False], [False, True], [True, False]])

    def model():
        with ember.plate("p", 3):
            ember.sample(
                "y", dist.MultivariateNormal(torch.zeros(2), torch.eye(2)), obs=data, obs_mask=mask
            )

    with pytest.raises(ValueError, match=r"'y': Invalid obs_mask shape \(3, 2\).*\(3,\)"):
        ember.poutine.trace(model).get_trace()


def test_factor_adds_log_density_and_broadcasts_in_plate():
    def model():
        ember.factor("f", torch.tensor(-1.5))
        with ember.plate("d", 3):
            ember.factor("g", torch.tensor(0.5))

    tr = poutine.trace(model).get_trace()
    assert tr.nodes["f"]["is_observed"]
    assert tr.nodes["g"]["fn"].batch_shape == (3,)
    assert tr.log_prob_sum().item() == pytest.approx(-1.5 + 3 * 0.5)


def test_deterministic_records_value_with_zero_log_prob():
    def model():
        x = ember.sample("x", dist.Normal(0.0, 1.0))
        return ember.deterministic("y", 2 * x)

    tr = poutine.trace(model).get_trace()
    assert torch.equal(tr.nodes["y"]["value"], 2 * tr.nodes["x"]["value"])
    tr.compute_log_prob()
    assert tr.nodes["y"]["log_prob"].item() == 0.0
    assert tr.nodes["y"]["infer"]["_deterministic"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ember.deterministic("z", torch.ones(2)).tolist() == [1.0, 1.0]


def test_param_callable_init_and_event_dim_kwargs():
    def model():
        return ember.param("p", lambda: torch.full((2,), 3.0), event_dim=1)

    tr = poutine.trace(model).get_trace()
    assert tr.nodes["p"]["kwargs"]["event_dim"] == 1
    assert tr.nodes["p"]["value"].tolist() == [3.0, 3.0]


def test_module_registers_prefixed_params_and_updates_from_store():
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    ember.module("net", net)
    names = sorted(ember.get_param_store().keys())
    assert names == ["net$$$0.bias", "net$$$0.weight", "net$$$1.bias", "net$$$1.weight"]
    # a fresh module picks up the stored values only when asked
    fresh = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    ember.module("net", fresh)
    assert not torch.equal(fresh[0].weight, net[0].weight)
    ember.module("net", fresh, update_module_params=True)
    assert fresh[0].weight is net[0].weight
    with pytest.raises(TypeError):
        ember.module("x", object())


def test_random_module_samples_parameters_from_prior():
    net = torch.nn.Linear(2, 1)
    prior = {
        "weight": dist.Normal(torch.full((1, 2), 5.0), 0.01).to_event(2),
        "bias": dist.Normal(torch.full((1,), -5.0), 0.01).to_event(1),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        draw = ember.random_module("net", net, prior)
    tr = poutine.trace(draw).get_trace()
    sampled = tr.nodes["_RETURN"]["value"]
    assert sampled is not net
    assert torch.allclose(sampled.weight, torch.full((1, 2), 5.0), atol=0.1)
    assert torch.allclose(sampled.bias, torch.full((1,), -5.0), atol=0.1)
    assert tr.stochastic_nodes == ["net$$$weight", "net$$$bias"]
    out = sampled(torch.ones(1, 2))
    assert out.item() == pytest.approx(5.0, abs=0.5)


def test_barrier_passes_through_handlers():
    seen = []

    class Spy(ember.poutine.Messenger):
        def _pyro_barrier(self, msg):
            seen.append(msg["type"])

    with Spy():
        assert ember.barrier(torch.ones(1)).item() == 1.0
    assert seen == ["barrier"]


@pytest.mark.parametrize("alias", ["iarange", "irange"])
def test_deprecated_plate_aliases_warn_once(alias):
    _WARNED.discard(alias)
    with pytest.warns(FutureWarning, match="deprecated"):
        with getattr(ember, alias)("a", 2) as idx:
            assert idx.tolist() == [0, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list(getattr(ember, alias)("b", 2))


def test_observe_alias_warns_once():
    _WARNED.discard("observe")
    model = lambda: ember.observe("y", dist.Normal(0.0, 1.0), torch.tensor(0.0))  # noqa: E731
    with pytest.warns(FutureWarning):
        tr = poutine.trace(model).get_trace()
    assert tr.observation_nodes == ["y"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        poutine.trace(model).get_trace()


def test_validation_toggle_and_exports():
    assert ember.get_param_store() is ember.primitives._PYRO_PARAM_STORE
    with ember.validation_enabled(False):
        assert not ember.util.is_validation_enabled()
    assert ember.util.is_validation_enabled()
    for name in (
        "sample",
        "param",
        "plate",
        "iarange",
        "irange",
        "module",
        "random_module",
        "factor",
        "deterministic",
        "barrier",
        "subsample",
        "clear_param_store",
        "get_param_store",
        "poutine",
        "enable_validation",
        "validation_enabled",
        "set_rng_seed",
    ):
        assert hasattr(ember, name), name


def test_module_warns_about_frozen_parameters_while_training():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.x = torch.nn.Parameter(torch.zeros(1))
            self.y = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

    with pytest.warns(UserWarning, match="'y' was not registered.*requires_grad=False"):
        ember.module("net", Net())
    assert sorted(ember.get_param_store().keys()) == ["net$$$x"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ember.module("net2", Net().train(False))
    assert "net2$$$y" not in ember.get_param_store()


def test_module_rejects_classes_and_names_with_the_separator():
    with pytest.raises(TypeError, match="a class: construct it first"):
        ember.module("net", torch.nn.Linear)
    with pytest.raises(ValueError, match=r"contains '\$\$\$'"):
        ember.module("a$$$b", torch.nn.Linear(1, 1))


def test_get_param_store_has_one_home():
    from ember.params import param_store

    assert ember.get_param_store is param_store.get_param_store
    assert ember.params.get_param_store is param_store.get_param_store
    assert ember.poutine.runtime._PYRO_PARAM_STORE is ember.get_param_store()
