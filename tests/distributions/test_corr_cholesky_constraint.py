"""lenient_corr_cholesky, the support of LKJCholesky: Cholesky factors of correlation
matrices, rows of unit norm up to 1e-4."""

import torch

import ember.distributions as dist
from ember.distributions import constraints

# Cholesky factors of correlation matrices written with eight digits.
TYPED = torch.tensor(
    [
        [[1.0, 0.0, 0.0], [-0.17332135, 0.98486533, 0.0], [0.43106407, -0.54767312, 0.71710384]],
        [[1.0, 0.0, 0.0], [-0.31391555, 0.94945091, 0.0], [-0.31391296, -0.297675, 0.90158097]],
    ],
    dtype=torch.float64,
)


def test_typed_factors_pass_in_double_precision():
    assert constraints.lenient_corr_cholesky.check(TYPED).tolist() == [True, True]
    # torch's own check (constraints.corr_cholesky) demands a few machine epsilons
    assert not constraints.corr_cholesky.check(TYPED).any()


def test_corr_cholesky_rejects_what_is_not_a_factor():
    bad_norm = TYPED.clone()
    bad_norm[0, 2] *= 1.001  # row norm off by 1e-3
    upper = TYPED.clone()
    upper[1, 0, 1] = 0.1  # not lower triangular
    negative = TYPED.clone()
    negative[0, 1] *= -1  # negative diagonal
    checks = [
        constraints.lenient_corr_cholesky.check(x).tolist() for x in (bad_norm, upper, negative)
    ]
    assert checks == [[False, True], [True, False], [False, True]]


def test_lkj_cholesky_uses_it_and_transforms_find_it():
    d = dist.LKJCholesky(3, torch.tensor([0.5, 2.0]))
    assert d.support is constraints.lenient_corr_cholesky
    assert d.log_prob(TYPED).shape == (2,)
    x = dist.biject_to(d.support)(torch.randn(5, 3))
    assert constraints.corr_cholesky.check(x).all()  # the strict check too
    corr = x @ x.mT
    assert torch.allclose(corr.diagonal(dim1=-2, dim2=-1), torch.ones(5, 3), atol=1e-6)
    assert dist.transform_to(d.support)(torch.zeros(3)).shape == (3, 3)
