"""chi2sf and gammaincc against scipy."""

import itertools

import numpy as np
import pytest
import scipy.special
import scipy.stats

from ember.distributions.testing.special import chi2sf, gammaincc


def test_chi2sf_matches_scipy():
    for s, x in itertools.product(np.arange(1, 41, 1.5), np.linspace(0, 300, 301)):
        expected = scipy.stats.chi2.sf(x, s)
        assert chi2sf(x, s) == pytest.approx(expected, rel=1e-10, abs=1e-300)


def test_gammaincc_matches_scipy_and_edges():
    for a, x in itertools.product([0.1, 0.5, 1.0, 3.7, 50.0], [1e-3, 0.5, 2.0, 10.0, 80.0]):
        assert gammaincc(a, x) == pytest.approx(scipy.special.gammaincc(a, x), rel=1e-10)
    assert gammaincc(2.0, 0.0) == 1.0 and gammaincc(2.0, -1.0) == 1.0
    assert gammaincc(2.0, float("inf")) == 0.0
    with pytest.raises(ValueError, match="a > 0"):
        gammaincc(0.0, 1.0)
    with pytest.raises(ValueError, match="degrees of freedom"):
        chi2sf(1.0, 0)
