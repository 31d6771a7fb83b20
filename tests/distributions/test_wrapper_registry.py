"""The set of wrappers follows torch.distributions, and the wrappers' constructor and
``expand`` helpers of ember.distributions.validation behave as documented."""

import inspect

import pytest
import scipy.stats as st
import torch

import ember.distributions as dist
import ember.distributions.torch as ember_torch
from ember.distributions import inverse_gamma, von_mises
from ember.distributions.torch_distribution import TorchDistribution, TorchDistributionMixin
from ember.distributions.validation import (
    check_arguments,
    finish_wrapper,
    fresh_instance,
    quiet_init,
    wrapper_expand,
)

ABSTRACT = {torch.distributions.Distribution, torch.distributions.ExponentialFamily}


def torch_classes():
    """Every distribution class torch.distributions exports, found independently."""
    return {
        name: obj
        for name, obj in vars(torch.distributions).items()
        if isinstance(obj, type)
        and issubclass(obj, torch.distributions.Distribution)
        and obj not in ABSTRACT
    }


def test_every_torch_distribution_class_has_an_ember_wrapper():
    classes = torch_classes()
    assert len(classes) > 30
    assert sorted(classes) == ember_torch.__all__
    for name, torch_cls in classes.items():
        wrapper = getattr(ember_torch, name)
        assert issubclass(wrapper, torch_cls), name
        assert issubclass(wrapper, TorchDistributionMixin), name
        assert wrapper._ember_fast_validation, name
        assert getattr(dist, name) is wrapper, name
        assert name in dist.__all__, name


def test_a_wrapper_with_its_own_constructor_has_an_expand():
    for name, torch_cls in torch_classes().items():
        wrapper = getattr(ember_torch, name)
        if wrapper.__init__ is not torch_cls.__init__:
            assert "expand" in vars(wrapper), name


def test_one_inverse_gamma_and_one_von_mises():
    assert dist.InverseGamma is ember_torch.InverseGamma is inverse_gamma.InverseGamma
    assert dist.VonMises is ember_torch.VonMises is von_mises.VonMises
    assert "InverseGamma" in dist.__all__ and "VonMises" in dist.__all__
    assert issubclass(dist.InverseGamma, dist.TransformedDistribution)
    assert isinstance(dist.InverseGamma(2.0, 3.0).base_dist, dist.Gamma)


def test_inverse_gamma_kl_is_the_kl_of_its_gammas():
    # KL is invariant under the bijection y = 1 / x
    a1, b1, a2, b2 = (torch.tensor(v, dtype=torch.float64) for v in (2.0, 3.0, 4.5, 1.5))
    kl = dist.kl_divergence(dist.InverseGamma(a1, b1), dist.InverseGamma(a2, b2))
    expected = dist.kl_divergence(dist.Gamma(a1, b1), dist.Gamma(a2, b2))
    assert torch.allclose(kl, expected)
    assert kl.item() > 0


def test_inverse_gamma_density_from_the_one_class():
    d = ember_torch.InverseGamma(torch.tensor(3.0, dtype=torch.float64), 2.0)
    x = torch.tensor([0.3, 1.0, 4.0], dtype=torch.float64)
    expected = st.invgamma(3.0, scale=2.0).logpdf(x.numpy())
    assert torch.allclose(d.log_prob(x), torch.from_numpy(expected))
    e = d.expand((2, 3))
    assert type(e) is dist.InverseGamma and e.batch_shape == (2, 3)
    assert torch.allclose(e.log_prob(x), d.log_prob(x).expand(2, 3))


def test_von_mises_validates_and_expands_as_a_wrapper():
    with pytest.raises(ValueError, match="concentration.*VonMises"):
        dist.VonMises(torch.zeros(2), torch.tensor([1.0, -1.0]))
    d = dist.VonMises(torch.zeros(2, 1), torch.ones(3))
    e = d.expand((4, 2, 3))
    assert type(e) is dist.VonMises and e.sample().shape == (4, 2, 3)
    assert e._validate_args == d._validate_args


class _Exp(torch.distributions.Exponential, TorchDistributionMixin):
    def __init__(self, rate, label="x", validate_args=None):
        self.label = label
        super().__init__(rate, validate_args=validate_args)


def test_finish_wrapper_installs_the_expand_torch_refuses():
    cls = type("Exp", (_Exp,), {})
    with pytest.raises(NotImplementedError):
        cls(torch.ones(2)).expand((3, 2))
    assert finish_wrapper(cls, torch.distributions.Exponential) is cls
    assert finish_wrapper(cls, torch.distributions.Exponential) is cls  # twice: no change
    e = cls(torch.ones(2)).expand((3, 2))
    assert type(e) is cls and e.batch_shape == (3, 2)
    with pytest.raises(ValueError, match="rate"):
        cls(torch.tensor([1.0, -1.0]))


def test_wrapper_expand_keeps_named_state():
    cls = type(
        "Exp", (_Exp,), {"expand": wrapper_expand(torch.distributions.Exponential, ["label"])}
    )
    e = cls(torch.ones(2), label="kept").expand((3, 2))
    assert e.label == "kept" and type(e) is cls
    assert dist.Poisson(torch.ones(2), is_sparse=True).expand((3, 2)).is_sparse


def test_fresh_instance_refuses_a_subclass_with_its_own_constructor():
    class Shifted(dist.Delta):
        def __init__(self, v, shift):
            super().__init__(v + shift)

    d = dist.Delta(torch.zeros(2))
    assert type(fresh_instance(d, dist.Delta)) is dist.Delta
    given = object.__new__(dist.Delta)
    assert fresh_instance(d, dist.Delta, given) is given
    with pytest.raises(NotImplementedError, match="Shifted defines its own __init__"):
        Shifted(torch.zeros(2), 1.0).expand((3, 2))


def test_quiet_init_turns_number_arguments_into_tensors_like_the_others():
    probs = torch.full((2,), 0.3, dtype=torch.float64)
    d = dist.RelaxedBernoulli(0.5, probs=probs)
    assert isinstance(d.temperature, torch.Tensor) and d.temperature.dtype == torch.float64
    with pytest.raises(ValueError, match="temperature"):
        dist.RelaxedOneHotCategorical(-1.0, probs=torch.ones(3) / 3)
    with pytest.raises(TypeError, match="takes 4 positional arguments"):
        dist.RelaxedBernoulli(0.5, probs, None, None, None)


def test_quiet_init_keeps_torch_signature():
    init = quiet_init(torch.distributions.StudentT)
    assert inspect.signature(init) == inspect.signature(torch.distributions.StudentT.__init__)


def test_check_arguments_needs_static_constraints():
    class Dependent(TorchDistribution):
        @property
        def arg_constraints(self):
            return {}

    with pytest.raises(TypeError, match="depends on the instance"):
        check_arguments(Dependent, {})
    check_arguments(dist.Normal, {"loc": 0.0, "scale": None})  # None: skipped
