"""ember.util: numeric checks, warnings with their location, RNG state, JIT helpers and
the validation switches."""

import math
import random
import sys
import warnings

import numpy as np
import pytest
import torch

import ember
import ember.distributions as dist
from ember import util


@pytest.fixture(autouse=True)
def _validation_on():
    ember.enable_validation(True)
    yield
    ember.enable_validation(True)


def record(fn):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fn()
    return [str(x.message) for x in w], w


# ------------------------------------------------------------- isnan / isinf
@pytest.mark.parametrize(
    "x, nan, inf",
    [
        (1.0, False, False),
        (float("nan"), True, False),
        (math.inf, False, True),
        (-math.inf, False, True),
        (3, False, False),
    ],
)
def test_isnan_isinf_on_numbers(x, nan, inf):
    assert util.torch_isnan(x) is nan
    assert util.torch_isinf(x) is inf


def test_isnan_isinf_on_tensors_reduce_over_all_entries():
    x = torch.zeros(2, 3)
    assert not util.torch_isnan(x) and not util.torch_isinf(x)
    x[1, 2] = float("nan")
    assert util.torch_isnan(x).dtype == torch.bool and util.torch_isnan(x).dim() == 0
    assert util.torch_isnan(x) and not util.torch_isinf(x)
    x[1, 2] = -math.inf
    assert not util.torch_isnan(x) and util.torch_isinf(x)


# ----------------------------------------------------------- warn_if_nan/inf
def test_warn_if_nan_returns_value_and_warns_only_on_nan():
    x = torch.tensor([1.0, 2.0])
    msgs, _ = record(lambda: util.warn_if_nan(x, "loss"))
    assert msgs == []
    assert util.warn_if_nan(x, "loss") is x
    x[0] = float("nan")
    msgs, w = record(lambda: util.warn_if_nan(x, "loss"))
    assert msgs == ["Encountered NaN: loss"] and w[0].category is UserWarning
    msgs, _ = record(lambda: util.warn_if_nan(float("nan")))
    assert msgs == ["Encountered NaN."]


def test_warning_points_at_the_caller():
    def caller():
        return util.warn_if_nan(float("nan"), "here")

    _, w = record(caller)
    assert w[0].filename == __file__
    assert w[0].lineno == caller.__code__.co_firstlineno + 1
    _, w = record(lambda: util.warn_if_nan(float("nan"), "x", filename="f.py", lineno=7))
    assert (w[0].filename, w[0].lineno) == ("f.py", 7)


def test_warn_if_nan_checks_the_gradient():
    x = torch.ones(3, requires_grad=True)
    util.warn_if_nan(x, "x")
    msgs, _ = record(lambda: (x * 2).sum().backward())
    assert msgs == []
    x.grad = None
    grad = torch.tensor([1.0, float("nan"), 1.0])
    msgs, _ = record(lambda: x.backward(grad))
    assert msgs == ["Encountered NaN: backward x"]


@pytest.mark.parametrize(
    "value, allow_posinf, allow_neginf, expected",
    [
        (math.inf, False, False, ["Encountered +inf: v"]),
        (math.inf, True, False, []),
        (-math.inf, True, False, ["Encountered -inf: v"]),
        (-math.inf, False, True, []),
        (2.0, False, False, []),
    ],
)
def test_warn_if_inf_respects_allowed_signs(value, allow_posinf, allow_neginf, expected):
    msgs, _ = record(lambda: util.warn_if_inf(value, "v", allow_posinf, allow_neginf))
    assert msgs == expected
    t = torch.tensor([0.0, value])
    msgs, _ = record(lambda: util.warn_if_inf(t, "v", allow_posinf, allow_neginf))
    assert msgs == expected


def test_warn_if_inf_on_both_signs_and_on_gradients():
    t = torch.tensor([math.inf, -math.inf])
    msgs, _ = record(lambda: util.warn_if_inf(t, "v"))
    assert msgs == ["Encountered +inf: v", "Encountered -inf: v"]
    x = torch.ones(2, requires_grad=True)
    util.warn_if_inf(x, "x", allow_posinf=True)
    msgs, _ = record(lambda: x.backward(torch.tensor([math.inf, 0.0])))
    assert msgs == []
    x.grad = None
    msgs, _ = record(lambda: x.backward(torch.tensor([-math.inf, 0.0])))
    assert msgs == ["Encountered -inf: backward x"]


def test_torch_float():
    assert util.torch_float(2) == 2.0 and isinstance(util.torch_float(2), float)
    assert util.torch_float(torch.tensor([1, 2])).dtype == torch.float32


# --------------------------------------------------------------- RNG state
def test_rng_state_round_trip_covers_torch_random_and_numpy():
    ember.set_rng_seed(123)
    state = util.get_rng_state()
    first = (torch.rand(3), random.random(), np.random.rand())
    util.set_rng_state(state)
    again = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(first[0], again[0])
    assert first[1] == again[1] and first[2] == again[2]


def test_set_rng_state_without_numpy_entry_leaves_numpy_alone():
    state = util.get_rng_state()
    del state["numpy"]
    np.random.seed(5)
    expected = np.random.rand()
    np.random.seed(5)
    util.set_rng_state(state)
    assert np.random.rand() == expected


# ------------------------------------------------------------ context helpers
def test_optional_enters_only_when_asked():
    for flag, expected in ((True, 1), (False, 0)):
        with util.optional(ember.plate("p", 3), flag):
            assert len(ember.poutine.runtime.get_plates()) == expected
    assert ember.poutine.runtime.get_plates() == ()


def test_timed_measures_elapsed_time_and_lets_errors_through():
    with util.timed() as t:
        sum(range(10000))
    assert t.elapsed >= 0 and t.end >= t.start
    with pytest.raises(KeyError):
        with util.timed():
            raise KeyError("x")


def test_ignore_experimental_warning():
    msgs, _ = record(lambda: warnings.warn("new", util.ExperimentalWarning, stacklevel=1))
    assert msgs == ["new"]

    def silenced():
        with util.ignore_experimental_warning():
            warnings.warn("new", util.ExperimentalWarning, stacklevel=1)

    assert record(silenced)[0] == []


@pytest.mark.filterwarnings("ignore:.*torch.jit.trace. is deprecated:DeprecationWarning")
def test_jit_helpers_inside_and_outside_tracing():
    assert [int(v) for v in util.jit_iter(torch.tensor([4, 5]))] == [4, 5]

    def f(x):
        with util.ignore_jit_warnings():
            if bool(x.sum() > 0):  # a TracerWarning when traced, silenced here
                return x * 2
        return x

    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        traced = torch.jit.trace(f, (torch.ones(2),))
    assert torch.equal(traced(torch.ones(2)), torch.full((2,), 2.0))

    @util.ignore_jit_warnings(["Converting a tensor to a Python boolean"])
    def g(x):
        return x * 3 if bool(x.sum() > 0) else x

    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        torch.jit.trace(g, (torch.ones(2),))
    assert torch.equal(g(torch.ones(1)), torch.full((1,), 3.0))  # no tracing: a no-op


# ------------------------------------------------------- validation switches
def test_enable_validation_sets_every_switch():
    ember.enable_validation(False)
    assert not util.is_validation_enabled()
    assert not util.is_poutine_validation_enabled()
    assert not util.is_infer_validation_enabled()
    assert not torch.distributions.Distribution._validate_args
    ember.enable_validation(True)
    assert util.is_validation_enabled() and util.is_poutine_validation_enabled()
    assert util.is_infer_validation_enabled() and torch.distributions.Distribution._validate_args


def test_validation_enabled_restores_each_switch_as_it_was():
    ember.settings.set(validate_poutine=False, validate_distributions_torch=False)
    try:
        with ember.validation_enabled(True):
            assert util.is_poutine_validation_enabled()
            assert torch.distributions.Distribution._validate_args
        assert not util.is_poutine_validation_enabled()
        assert not torch.distributions.Distribution._validate_args
        assert util.is_validation_enabled() and util.is_infer_validation_enabled()
    finally:
        ember.enable_validation(True)


def test_pyro_module_paths_reexport_the_one_switch():
    from ember.poutine import util as poutine_util

    assert ember.poutine.enable_validation is util.enable_validation
    assert ember.primitives.enable_validation is util.enable_validation
    assert poutine_util.enable_validation is util.enable_validation
    assert poutine_util.is_validation_enabled is util.is_poutine_validation_enabled
    assert ember.primitives.validation_enabled is util.validation_enabled


def test_numpy_is_optional_for_the_rng_helpers(monkeypatch):
    monkeypatch.setattr(util, "np", None)
    util.set_rng_seed(1)
    state = util.get_rng_state()
    assert "numpy" not in state
    util.set_rng_state(state)
    assert "numpy" in sys.modules  # (the test itself has numpy; ember did not need it)


def test_distribution_checks_follow_the_switch():
    with pytest.raises(ValueError):
        dist.Normal(0.0, 1.0).mask(torch.tensor([0.5]))
    with util.validation_enabled(False):
        dist.Normal(0.0, 1.0).mask(torch.tensor([0.5]))
