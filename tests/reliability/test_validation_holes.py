"""Validation that writes behind a tensor's back cannot bypass, parameter reuse, and
degenerate parameter shapes (each reproduction as reported)."""

import warnings

import pytest
import torch

import ember
import ember.distributions as dist
from ember.distributions import constraints


def test_an_own_sample_changed_through_data_is_checked_again():
    d = dist.Gamma(2.0, 1.0)
    x = d.sample((3,))
    x.data.fill_(-1.0)  # does not bump the version counter
    with pytest.raises(ValueError, match="Gamma.log_prob"):
        d.log_prob(x)


def test_an_own_sample_changed_through_numpy_is_checked_again():
    d = dist.Beta(2.0, 2.0)
    x = d.sample((4,))
    x.numpy()[:] = 1.5
    with pytest.raises(ValueError, match="Beta.log_prob"):
        d.log_prob(x)


def test_an_unchanged_own_sample_scores_exactly():
    d = dist.Gamma(torch.tensor([2.0, 3.0]), 1.0)
    x = d.sample((5,))
    expected = torch.distributions.Gamma(torch.tensor([2.0, 3.0]), 1.0).log_prob(x)
    assert torch.equal(d.log_prob(x), expected)


def test_an_enumerated_support_edited_in_place_scores_its_new_values():
    probs = torch.tensor([0.2, 0.8])
    d = dist.Categorical(probs)
    support = d.enumerate_support()
    support.data[:] = torch.tensor([1, 0])
    assert torch.allclose(d.log_prob(support), probs.log()[[1, 0]])


@pytest.mark.parametrize(
    "make",
    [
        lambda: dist.Categorical(probs=torch.zeros(0)),
        lambda: dist.Categorical(logits=torch.zeros(2, 0)),
        lambda: dist.Dirichlet(torch.ones(0)),
        lambda: dist.OneHotCategorical(probs=torch.zeros(0)),
    ],
)
def test_parameters_with_no_categories_are_refused_at_construction(make):
    with pytest.raises(ValueError, match="size 0 in its event dim"):
        make()


def test_an_empty_batch_is_allowed():
    d = dist.Categorical(probs=torch.ones(0, 3) / 3)
    assert d.batch_shape == (0,) and d.sample().shape == (0,)


def test_reusing_a_parameter_name_with_another_shape_warns_and_keeps_the_value():
    ember.clear_param_store()
    first = ember.param("a", torch.arange(3.0))
    with pytest.warns(UserWarning, match=r"shape \(5,\)\) is ignored.*shape \(3,\)"):
        again = ember.param("a", torch.zeros(5))
    assert torch.equal(again, first)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same shape, or no init: silent, as in Pyro
        ember.param("a", torch.zeros(3))
        ember.param("a")


def test_reusing_a_parameter_name_with_another_constraint_is_refused():
    ember.clear_param_store()
    ember.param("b", torch.ones(2))
    with pytest.raises(ValueError, match="constraint is fixed when the parameter is created"):
        ember.param("b", torch.ones(2), constraint=constraints.positive)
