"""DiscreteCosineReparam and HaarReparam: the model's density is unchanged and the
site's value is the inverse transform of the new latent."""

import pytest
import torch

import ember
import ember.distributions as dist
from ember.distributions.transforms import DiscreteCosineTransform, HaarTransform
from ember.infer.reparam import DiscreteCosineReparam, HaarReparam

CASES = [
    (lambda: DiscreteCosineReparam(), DiscreteCosineTransform(), "x_dct"),
    (lambda: DiscreteCosineReparam(smooth=1.0), DiscreteCosineTransform(smooth=1.0), "x_dct"),
    (lambda: HaarReparam(), HaarTransform(), "x_haar"),
    (lambda: HaarReparam(flip=True), HaarTransform(flip=True), "x_haar"),
]


def model():
    loc = torch.linspace(-1.0, 2.0, 6)
    scale = torch.linspace(0.5, 1.5, 6)
    with ember.plate("batch", 3):
        return ember.sample("x", dist.Normal(loc, scale).to_event(1))


@pytest.mark.parametrize("make, transform, new_name", CASES)
def test_joint_density_is_unchanged(make, transform, new_name):
    ember.set_rng_seed(0)
    tr = ember.poutine.trace(ember.poutine.reparam(model, {"x": make()})).get_trace()
    x, y = tr.nodes["x"]["value"], tr.nodes[new_name]["value"]
    assert x.shape == y.shape == (3, 6)
    # the new latent is the transform of the site's value
    assert torch.allclose(transform(x), y, atol=1e-5)
    # the reparameterized model scores the new latent as the original scores x
    original = ember.poutine.trace(ember.poutine.condition(model, data={"x": x})).get_trace()
    assert torch.allclose(tr.log_prob_sum(), original.log_prob_sum(), atol=1e-4)


@pytest.mark.parametrize("make, transform, new_name", CASES)
def test_unit_jacobian(make, transform, new_name):
    x = torch.randn(6, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(transform, x)
    assert torch.linalg.slogdet(jac).logabsdet.abs() < 1e-9


def test_svi_and_predictive_run_through_the_reparameterized_model():
    ember.clear_param_store()
    rep = ember.poutine.reparam(model, {"x": HaarReparam()})
    guide = ember.infer.autoguide.AutoNormal(rep)
    svi = ember.infer.SVI(rep, guide, ember.optim.Adam({"lr": 0.01}), ember.infer.Trace_ELBO())
    for _ in range(3):
        assert torch.isfinite(torch.tensor(svi.step()))
    out = ember.infer.Predictive(rep, guide=guide, num_samples=5)()
    assert out["x"].shape == (5, 3, 6)
    ember.clear_param_store()


def test_a_batch_dim_is_refused():
    def batched():
        with ember.plate("t", 4):
            ember.sample("x", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="batch dimension"):
        ember.poutine.trace(ember.poutine.reparam(batched, {"x": HaarReparam()})).get_trace()
