"""Pyro's module paths under ember.distributions give the same classes as the package."""

import importlib

import pytest

import ember.distributions as dist

PATHS = {
    "asymmetriclaplace": ["AsymmetricLaplace", "SoftAsymmetricLaplace"],
    "coalescent": ["CoalescentTimes", "CoalescentTimesWithRate", "CoalescentRateLikelihood"],
    "diag_normal_mixture_shared_cov": ["MixtureOfDiagNormalsSharedCovariance"],
    "grouped_normal_normal": ["GroupedNormalNormal"],
    "mixture": ["MaskedMixture"],
    "nanmasked": ["NanMaskedNormal", "NanMaskedMultivariateNormal"],
    "one_one_matching": ["OneOneMatching"],
    "one_two_matching": ["OneTwoMatching"],
    "polya_gamma": ["TruncatedPolyaGamma"],
    "softlaplace": ["SoftLaplace"],
}


@pytest.mark.parametrize("module", sorted(PATHS))
def test_module_path_exports_the_package_class(module):
    mod = importlib.import_module(f"ember.distributions.{module}")
    for name in PATHS[module]:
        assert getattr(mod, name) is getattr(dist, name)
