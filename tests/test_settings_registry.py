"""ember.settings: the settings Pyro registers, each with its effect, and the registry API."""

import sys

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine, settings
from ember.util import (
    is_infer_validation_enabled,
    is_poutine_validation_enabled,
    is_validation_enabled,
)

_MY_SETTING = 0.5
_OTHER = 1


@pytest.fixture(autouse=True)
def _restore():
    yield
    ember.enable_validation(True)
    settings.set(module_local_params=False)


def plate_model(obs):
    with ember.plate("data", 5):
        ember.sample("y", dist.Normal(torch.zeros(5), 1.0), obs=obs)


def test_pyro_settings_are_registered_with_pyro_defaults():
    values = settings.get()
    for alias in (
        "validate_distributions_pyro",
        "validate_distributions_torch",
        "validate_poutine",
        "validate_infer",
    ):
        assert values[alias] is True
    assert values["module_local_params"] is False


def test_validate_poutine_switches_the_plate_shape_check_only():
    with pytest.raises(ValueError, match="Shape mismatch at site 'y'"):
        poutine.trace(plate_model).get_trace(torch.zeros(4))
    with settings.context(validate_poutine=False):
        assert not is_poutine_validation_enabled()
        assert is_validation_enabled() and is_infer_validation_enabled()
        poutine.trace(plate_model).get_trace(torch.zeros(4))  # not checked
        assert not poutine.util.is_validation_enabled()
    assert is_poutine_validation_enabled()


def test_validate_poutine_switches_handler_argument_checks():
    with pytest.raises(ValueError, match="scale must be > 0"):
        poutine.scale(scale=torch.tensor(-1.0))
    with settings.context(validate_poutine=False):
        poutine.scale(scale=torch.tensor(-1.0))


def test_validate_distributions_pyro_switches_embers_own_checks():
    bad_mask = torch.tensor([0.5, 1.0])
    with pytest.raises(ValueError, match="mask must be boolean"):
        dist.Normal(0.0, 1.0).mask(bad_mask)
    with settings.context(validate_distributions_pyro=False):
        dist.Normal(0.0, 1.0).mask(bad_mask)
        assert is_poutine_validation_enabled()


def test_validate_distributions_torch_switches_torchs_argument_checks():
    with pytest.raises(ValueError):
        torch.distributions.Normal(0.0, -1.0)
    with settings.context(validate_distributions_torch=False):
        torch.distributions.Normal(0.0, -1.0)
        assert torch.distributions.Distribution._validate_args is False
    assert torch.distributions.Distribution._validate_args is True


def test_validate_infer_is_its_own_switch():
    with settings.context(validate_infer=False):
        assert not is_infer_validation_enabled()
        assert is_validation_enabled() and is_poutine_validation_enabled()
    assert is_infer_validation_enabled()


def test_enable_validation_moves_every_setting():
    ember.enable_validation(False)
    values = settings.get()
    assert not any(values[f"validate_{k}"] for k in ("distributions_pyro", "poutine", "infer"))
    assert values["validate_distributions_torch"] is False


@pytest.mark.parametrize(
    "alias", ["validate_poutine", "validate_infer", "validate_distributions_torch"]
)
def test_validation_settings_take_only_bools(alias):
    with pytest.raises(TypeError, match="True or False"):
        settings.set(**{alias: 1})
    assert settings.get(alias) is True


def test_module_local_params_is_stored_in_the_params_layer():
    from ember.params import param_store

    with settings.context(module_local_params=True):
        assert param_store.MODULE_LOCAL_PARAMS is True
    assert param_store.MODULE_LOCAL_PARAMS is False
    with pytest.raises(TypeError, match="module_local_params"):
        settings.set(module_local_params="yes")


# ------------------------------------------------------------------ registry
def test_register_with_a_validator_checks_now_and_on_every_set():
    seen = []

    def check(value):
        seen.append(value)
        if not 0 < value < 1:
            raise ValueError("must be in (0, 1)")

    returned = settings.register("test_registry_setting", __name__, "_MY_SETTING", check)
    assert returned is check and seen == [0.5]  # the current value was validated
    settings.set(test_registry_setting=0.25)
    assert sys.modules[__name__]._MY_SETTING == 0.25
    with pytest.raises(ValueError, match="0, 1"):
        settings.set(test_registry_setting=2.0)
    assert settings.get("test_registry_setting") == 0.25

    @settings.context(test_registry_setting=0.75)
    def inside():
        return settings.get("test_registry_setting")

    assert inside() == 0.75 and settings.get("test_registry_setting") == 0.25
    settings.set(test_registry_setting=0.5)


def test_register_as_decorator_and_without_validator():
    @settings.register("test_registry_other", __name__, "_OTHER")
    def _check(value):
        if not isinstance(value, int):
            raise TypeError("an int")

    with pytest.raises(TypeError, match="an int"):
        settings.set(test_registry_other="x")
    settings.register("test_registry_plain", __name__, "_OTHER")
    settings.set(test_registry_plain="anything")
    assert settings.get("test_registry_other") == "anything"
    settings.set(test_registry_plain=1)


def test_register_rejects_bad_aliases_and_moving_a_setting():
    with pytest.raises(ValueError, match="identifier"):
        settings.register("not an alias", __name__, "_OTHER")
    with pytest.raises(ValueError, match="already registered"):
        settings.register("validate_poutine", __name__, "_OTHER")
    with pytest.raises(KeyError, match="validate_poutine"):
        settings.get("no_such_setting_here")
