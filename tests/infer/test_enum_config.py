"""config_enumerate."""

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.infer import config_enumerate


def model():
    ember.sample("d", dist.Categorical(torch.ones(3) / 3))
    ember.sample("c", dist.Normal(0.0, 1.0))
    ember.sample("own", dist.Bernoulli(0.5), infer={"enumerate": "sequential"})
    ember.sample("o", dist.Bernoulli(0.5), obs=torch.tensor(1.0))


def infer_of(fn):
    trace = poutine.trace(fn).get_trace()
    return {name: trace.nodes[name]["infer"] for name in ["d", "c", "own", "o"]}


def test_config_enumerate_marks_discrete_latent_sites():
    infer = infer_of(config_enumerate(model))
    assert infer["d"] == {"enumerate": "parallel", "expand": False}
    assert infer["c"] == {}
    assert infer["own"]["enumerate"] == "sequential"
    assert "enumerate" not in infer["o"]


def test_config_enumerate_as_decorator_with_arguments():
    infer = infer_of(config_enumerate(default="sequential", expand=True)(model))
    assert infer["d"] == {"enumerate": "sequential", "expand": True}


def test_config_enumerate_num_samples_marks_every_latent_site():
    infer = infer_of(config_enumerate(model, num_samples=5))
    assert infer["d"]["num_samples"] == 5 and infer["c"]["num_samples"] == 5
    assert infer["c"]["enumerate"] == "parallel"


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"default": "bogus"}, ValueError, "default must be one of"),
        ({"expand": 1}, TypeError, "expand must be True or False"),
        ({"num_samples": 0}, ValueError, "positive int"),
        ({"num_samples": 3, "default": "sequential"}, ValueError, "default='parallel'"),
    ],
)
def test_config_enumerate_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        config_enumerate(model, **kwargs)


def test_config_enumerate_rejects_non_callables():
    with pytest.raises(TypeError, match="callable"):
        config_enumerate(3)
