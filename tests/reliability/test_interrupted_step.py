"""A step interrupted between its backward pass and the optimizer leaves no gradients."""

import pytest
import torch

import ember
import ember.distributions as dist
from ember.infer import SVI, Trace_ELBO
from ember.optim import SGD


class InterruptOnce:
    """Wraps an optimizer; its first call raises KeyboardInterrupt (Ctrl-C after backward)."""

    def __init__(self, optim):
        self.optim, self.calls = optim, 0

    def __call__(self, params, *args, **kwargs):
        self.calls += 1
        if self.calls == 1:
            raise KeyboardInterrupt
        return self.optim(params, *args, **kwargs)


def model():
    a = ember.param("a", torch.tensor(0.5))
    ember.sample("x", dist.Normal(a, 1.0), obs=torch.tensor(2.0))


def test_ctrl_c_between_backward_and_step_leaves_no_gradient():
    ember.clear_param_store()
    svi = SVI(model, lambda: None, InterruptOnce(SGD({"lr": 0.1})), Trace_ELBO())
    with pytest.raises(KeyboardInterrupt):
        svi.step()
    a = ember.get_param_store().get_unconstrained("a")
    assert a.grad is None
    svi.step()  # a clean step: gradient of -log N(2; a, 1) at a = 0.5 is -(2 - 0.5) = -1.5
    assert ember.param("a").item() == pytest.approx(0.5 + 0.1 * 1.5)
    ember.clear_param_store()
