"""Pyro's module paths under ember.distributions.transforms give the package's objects."""

import importlib

import pytest

from ember.distributions import transforms as T

PATHS = {
    "basic": ["ELUTransform", "LeakyReLUTransform", "elu", "leaky_relu"],
    "cholesky": [
        "CholeskyTransform",
        "CorrCholeskyTransform",
        "CorrLCholeskyTransform",
        "CorrMatrixCholeskyTransform",
    ],
    "discrete_cosine": ["DiscreteCosineTransform"],
    "generalized_channel_permute": [
        "ConditionalGeneralizedChannelPermute",
        "GeneralizedChannelPermute",
        "conditional_generalized_channel_permute",
        "generalized_channel_permute",
    ],
    "haar": ["HaarTransform"],
    "householder": [
        "ConditionalHouseholder",
        "Householder",
        "conditional_householder",
        "householder",
    ],
    "lower_cholesky_affine": ["LowerCholeskyAffine"],
    "matrix_exponential": [
        "ConditionalMatrixExponential",
        "MatrixExponential",
        "conditional_matrix_exponential",
        "matrix_exponential",
    ],
    "normalize": ["Normalize"],
    "ordered": ["OrderedTransform"],
    "power": ["PositivePowerTransform"],
    "simplex_to_ordered": ["SimplexToOrderedTransform"],
    "softplus": ["SoftplusLowerCholeskyTransform", "SoftplusTransform"],
    "unit_cholesky": ["UnitLowerCholeskyTransform"],
}


@pytest.mark.parametrize("module", sorted(PATHS))
def test_module_path_exports_the_package_object(module):
    mod = importlib.import_module(f"ember.distributions.transforms.{module}")
    for name in PATHS[module]:
        assert getattr(mod, name) is getattr(T, name)
        assert name in T.__all__
