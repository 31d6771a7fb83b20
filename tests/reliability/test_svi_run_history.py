"""SVI.run keeps the loss history up to a failure and on Ctrl-C: it is attached to the
exception (``err.losses``) and passed step by step to a callback."""

import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember.infer import SVI, Trace_ELBO
from ember.optim import SGD


def _model():
    ember.sample("z", dist.Normal(0.0, 1.0))


def _guide():
    loc = ember.param("loc", torch.tensor(1.0))
    ember.sample("z", dist.Normal(loc, 1.0))


def _reference(num_steps):
    """``(losses, loc)`` after ``num_steps`` uninterrupted steps from the same seed."""
    ember.clear_param_store()
    ember.set_rng_seed(0)
    losses = _svi().run(num_steps, progress=False)
    loc = ember.param("loc").item()
    ember.clear_param_store()
    ember.set_rng_seed(0)
    return losses, loc


@pytest.fixture(autouse=True)
def _fresh_params():
    ember.clear_param_store()
    ember.set_rng_seed(0)
    yield
    ember.clear_param_store()


def _svi():
    return SVI(_model, _guide, SGD({"lr": 0.1}), Trace_ELBO())


def test_run_returns_every_loss_and_calls_the_callback():
    seen = []
    losses = _svi().run(5, progress=False, callback=lambda step, loss: seen.append((step, loss)))
    assert len(losses) == 5
    assert seen == list(zip(range(1, 6), losses))
    assert all(isinstance(x, float) and math.isfinite(x) for x in losses)


def test_keyboard_interrupt_keeps_the_history_and_the_updates():
    def interrupt_at_3(step, loss):
        if step == 3:
            raise KeyboardInterrupt

    ref_losses, ref_loc = _reference(3)
    svi = _svi()
    with pytest.raises(KeyboardInterrupt) as info:
        svi.run(10, progress=False, callback=interrupt_at_3)
    assert info.value.losses == ref_losses
    assert svi.steps_taken == 3
    # the three completed updates are kept
    assert ember.param("loc").item() == ref_loc != 1.0


def test_an_interrupt_inside_a_step_keeps_the_completed_losses():
    calls = {"n": 0}

    def model():
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the fourth step
        _model()

    ref_losses, ref_loc = _reference(3)
    svi = SVI(model, _guide, SGD({"lr": 0.1}), Trace_ELBO())
    with pytest.raises(KeyboardInterrupt) as info:
        svi.run(10, progress=False)
    assert info.value.losses == ref_losses
    # the interrupted step did not update loc, and left no gradient behind
    assert ember.param("loc").item() == ref_loc
    loc = ember.get_param_store().get_param("loc").unconstrained()
    assert loc.grad is None or torch.all(loc.grad == 0)


def test_an_error_at_a_later_step_carries_the_history():
    calls = {"n": 0}

    def model():
        calls["n"] += 1
        if calls["n"] == 6:
            ember.sample("z", dist.Normal(0.0, -1.0))  # a bad scale, refused by validation
        _model()

    svi = SVI(model, _guide, SGD({"lr": 0.1}), Trace_ELBO())
    with pytest.raises(ValueError) as info:
        svi.run(8, progress=False)
    assert len(info.value.losses) == 5
    # the recorded losses are those run() would have returned
    ember.clear_param_store()
    ember.set_rng_seed(0)
    calls["n"] = 0
    again = SVI(model, _guide, SGD({"lr": 0.1}), Trace_ELBO()).run(5, progress=False)
    assert info.value.losses == again


def test_bad_callback_is_refused():
    with pytest.raises(TypeError, match="callback must be callable"):
        _svi().run(2, progress=False, callback=3)
