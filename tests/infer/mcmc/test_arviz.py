"""ArviZ export from small fake MCMC objects (the contract in ember.infer.mcmc.arviz)."""

import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import ember
import ember.distributions as dist
from ember.infer.mcmc.arviz import to_arviz


def make_samples():
    g = torch.Generator().manual_seed(0)
    return {"mu": torch.randn(2, 5, generator=g), "theta": torch.randn(2, 5, 3, generator=g)}


class StatsMCMC:
    """Exposes per-draw statistics directly."""

    def __init__(self):
        self.samples = make_samples()
        self.sample_stats = {
            "diverging": torch.tensor([[0, 1, 0, 0, 0], [0, 0, 0, 0, 1]], dtype=torch.bool),
            "step_size": torch.full((2, 5), 0.25),
            "accept_prob": torch.linspace(0.5, 0.9, 10).reshape(2, 5),
        }
        self.observed_data = {"y": torch.arange(4.0)}

    def get_samples(self, group_by_chain=False):
        assert group_by_chain
        return self.samples


def model(data):
    mu = ember.sample("mu", dist.Normal(0.0, 1.0))
    with ember.plate("N", len(data)):
        ember.sample("y", dist.Normal(mu, 1.0), obs=data)


class PyroStyleMCMC:
    """Exposes what Pyro's MCMC does: diagnostics() with divergences, kernel.step_size,
    and the model with its arguments."""

    def __init__(self, data):
        self.samples = {"mu": make_samples()["mu"]}
        self.kernel = SimpleNamespace(model=model, step_size=0.125)
        self.model_args = (data,)

    def get_samples(self, group_by_chain=False):
        return self.samples

    def diagnostics(self):
        return {"divergences": {"chain 0": [3], "chain 1": []}, "mu": {}}


def test_missing_arviz_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "arviz", None)  # makes `import arviz` fail
    with pytest.raises(ImportError, match=r"pip install ember\[arviz\]"):
        to_arviz(StatsMCMC())


def test_export_with_sample_stats():
    pytest.importorskip("arviz", reason="the optional arviz package is not installed")
    mcmc = StatsMCMC()
    idata = to_arviz(mcmc)
    post = idata.posterior
    assert post["theta"].shape == (2, 5, 3)
    np.testing.assert_array_equal(post["mu"].values, mcmc.samples["mu"].numpy())
    stats = idata.sample_stats
    np.testing.assert_array_equal(stats["diverging"].values, mcmc.sample_stats["diverging"])
    np.testing.assert_allclose(stats["step_size"].values, 0.25)
    np.testing.assert_allclose(
        stats["acceptance_rate"].values, mcmc.sample_stats["accept_prob"].numpy()
    )
    np.testing.assert_array_equal(idata.observed_data["y"].values, np.arange(4.0))


def test_export_pyro_style_object():
    pytest.importorskip("arviz", reason="the optional arviz package is not installed")
    data = torch.tensor([0.5, -1.0, 2.0])
    idata = to_arviz(PyroStyleMCMC(data))
    diverging = idata.sample_stats["diverging"].values
    assert diverging.shape == (2, 5)
    assert diverging.sum() == 1 and diverging[0, 3]
    np.testing.assert_allclose(idata.sample_stats["step_size"].values, 0.125)
    np.testing.assert_array_equal(idata.observed_data["y"].values, data.numpy())
    assert list(idata.observed_data.data_vars) == ["y"]


def test_bad_objects():
    pytest.importorskip("arviz", reason="the optional arviz package is not installed")
    with pytest.raises(TypeError, match="get_samples"):
        to_arviz(object())
    empty = SimpleNamespace(get_samples=lambda group_by_chain: {})
    with pytest.raises(ValueError, match="call mcmc.run"):
        to_arviz(empty)
    flat = SimpleNamespace(get_samples=lambda group_by_chain: {"x": torch.zeros(5)})
    with pytest.raises(ValueError, match=r"site 'x' have shape \(5,\)"):
        to_arviz(flat)
