"""A NaN or infinite loss or gradient stops an SVI step before the optimizer runs."""

import math

import pytest
import torch

import ember
import ember.distributions as dist
import ember.infer.elbo as elbo_module
import ember.infer.svi as svi_module
from ember.infer import SVI, Trace_ELBO, TraceEnum_ELBO, TraceGraph_ELBO, config_enumerate
from ember.infer.util import NonFiniteLossError, check_step_finite
from ember.optim import Adam


@pytest.fixture(autouse=True)
def _fresh():
    ember.clear_param_store()
    ember.set_rng_seed(0)
    ember.enable_validation(True)
    yield
    ember.enable_validation(True)


DATA = torch.randn(10)


def model(data, bad_at=None, step=None):
    mu = ember.sample("mu", dist.Normal(0.0, 1.0))
    if bad_at is not None and step[0] == bad_at:
        ember.factor("penalty", torch.tensor(float("nan")))
    with ember.plate("d", len(data)):
        ember.sample("obs", dist.Normal(mu, 1.0), obs=data)


def guide(data, bad_at=None, step=None):
    loc = ember.param("loc", torch.tensor(0.0))
    ember.sample("mu", dist.Normal(loc, 1.0))


def run_until_failure(elbo, bad_at):
    svi = SVI(model, guide, Adam({"lr": 0.1}), elbo)
    step = [0]
    last_loc = None
    with pytest.raises(NonFiniteLossError) as info:
        for i in range(1, 10):
            step[0] = i
            last_loc = ember.param("loc").detach().clone() if i > 1 else None
            svi.step(DATA, bad_at, step)
    return info.value, last_loc, svi


@pytest.mark.parametrize("elbo", [Trace_ELBO(), TraceGraph_ELBO(), Trace_ELBO(num_particles=3)])
def test_nan_factor_names_site_and_step_and_keeps_params(elbo):
    err, last_loc, svi = run_until_failure(elbo, bad_at=5)
    message = str(err)
    assert "SVI step 5" in message
    assert "'penalty'" in message and "factor" in message
    assert svi.steps_taken == 5
    # the optimizer did not run: the parameter is the one after step 4, gradients dropped
    assert torch.equal(ember.param("loc").detach(), last_loc)
    assert torch.isfinite(ember.param("loc")).all()
    assert ember.get_param_store().get_unconstrained("loc").grad is None
    # training goes on from there once the cause is gone
    svi.step(DATA, None, [0])
    assert torch.isfinite(ember.param("loc")).all()


def test_observed_inf_reported_with_count():
    data = DATA.clone()
    data[3] = math.inf
    data[7] = -math.inf
    svi = SVI(model, guide, Adam({"lr": 0.1}), Trace_ELBO())
    ember.settings.set(validate_distributions_pyro=False, validate_distributions_torch=False)
    try:
        with pytest.raises(NonFiniteLossError, match=r"site 'obs' \(observed, Normal\)") as info:
            svi.step(data)
        assert "at 2 of 10 entries" in str(info.value)
    finally:
        ember.enable_validation(True)


def test_non_finite_gradient_with_finite_loss_names_the_param():
    def sqrt_model():
        scale = ember.param("scale", torch.tensor(0.0))
        ember.factor("f", torch.sqrt(scale))  # sqrt(0) = 0 but d/dx sqrt(x) at 0 is inf

    def empty_guide():
        pass

    svi = SVI(sqrt_model, empty_guide, Adam({"lr": 0.1}), Trace_ELBO())
    with pytest.raises(NonFiniteLossError, match="gradient of param 'scale'") as info:
        svi.step()
    assert "the loss is" not in str(info.value)  # the loss itself was finite
    assert ember.param("scale").item() == 0.0


def test_enumerated_model_is_checked_too():
    @config_enumerate
    def mix_model(data):
        w = ember.param("w", torch.tensor([0.5, 0.5]))
        with ember.plate("d", len(data)):
            z = ember.sample("z", dist.Categorical(w))
            loc = torch.stack([torch.tensor(0.0), torch.tensor(float("nan"))])[z]
            ember.sample("obs", dist.Normal(loc, 1.0), obs=data)

    svi = SVI(mix_model, lambda data: None, Adam({"lr": 0.1}), TraceEnum_ELBO(max_plate_nesting=1))
    ember.settings.set(validate_distributions_pyro=False, validate_distributions_torch=False)
    try:
        with pytest.raises(NonFiniteLossError, match="SVI step 1"):
            svi.step(DATA)
    finally:
        ember.enable_validation(True)


def test_callable_loss_is_checked():
    def loss(model, guide):
        p = ember.param("p", torch.tensor(1.0))
        return p * float("inf")

    svi = SVI(lambda: None, lambda: None, Adam({"lr": 0.1}), loss)
    with pytest.raises(NonFiniteLossError, match="the loss is inf"):
        svi.step()
    assert ember.param("p").item() == 1.0


def test_validation_off_runs_no_check(monkeypatch):
    calls = []

    def spy(*args, **kwargs):
        calls.append(1)

    monkeypatch.setattr(elbo_module, "check_step_finite", spy)
    monkeypatch.setattr(svi_module, "check_step_finite", spy)
    svi = SVI(model, guide, Adam({"lr": 0.1}), Trace_ELBO())
    svi.step(DATA)
    assert calls == [1]
    ember.enable_validation(False)
    loss = svi.step(DATA, 2, [2])
    assert math.isnan(loss)  # nothing stops it: that is what turning validation off means
    assert calls == [1]


def test_check_step_finite_unit():
    p = torch.tensor([1.0, 2.0], requires_grad=True)
    q = torch.tensor(3.0, requires_grad=True)
    (p.sum() + q).backward()
    check_step_finite(torch.tensor(1.5), [p, q])  # all finite: no error
    check_step_finite(2.0, [])  # a float loss and no parameters
    q.grad = torch.tensor(float("-inf"))
    with pytest.raises(NonFiniteLossError, match="1 non-finite entry of 1"):
        check_step_finite(torch.tensor(1.5), [p, q])
    with pytest.raises(NonFiniteLossError, match="the loss is nan"):
        check_step_finite(torch.tensor(float("nan")), [p])


def test_check_step_finite_large_finite_gradients_pass():
    # their sum overflows float32, yet every gradient is finite: no error
    p = torch.tensor([3e38, 3e38], requires_grad=True)
    q = torch.tensor(3e38, dtype=torch.float64, requires_grad=True)
    p.grad = torch.tensor([3e38, 3e38])
    q.grad = torch.tensor(3e38, dtype=torch.float64)
    check_step_finite(torch.tensor(1e38), [p, q])
    q.grad = torch.tensor(float("nan"), dtype=torch.float64)
    with pytest.raises(NonFiniteLossError):
        check_step_finite(torch.tensor(1e38), [p, q])
    with pytest.raises(NonFiniteLossError, match="the loss is inf"):
        check_step_finite(float("inf"), [])
