"""Tensor utilities against numpy, scipy and direct definitions."""

import math

import numpy as np
import pytest
import torch
from scipy import fftpack

from ember import settings
from ember.ops import tensor_utils
from ember.ops.tensor_utils import (
    block_diag_embed,
    block_diagonal,
    broadcast_tensors_without_dim,
    convolve,
    dct,
    haar_transform,
    idct,
    inverse_haar_transform,
    matvecmul,
    next_fast_len,
    periodic_cumsum,
    periodic_features,
    periodic_repeat,
    precision_to_scale_tril,
    repeated_matmul,
    safe_cholesky,
    safe_normalize,
    triangular_solve,
)

F64 = torch.float64


def test_block_diag_embed_places_blocks_and_block_diagonal_takes_them_back():
    torch.manual_seed(0)
    mat = torch.randn(5, 3, 2, 4)
    big = block_diag_embed(mat)
    assert big.shape == (5, 6, 12)
    for b in range(3):
        assert torch.equal(big[:, 2 * b : 2 * b + 2, 4 * b : 4 * b + 4], mat[:, b])
    assert big.abs().sum() == pytest.approx(mat.abs().sum().item(), rel=1e-6)
    assert torch.equal(block_diagonal(big, 3), mat)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_periodic_repeat_and_cumsum_follow_their_definitions(dim):
    torch.manual_seed(1)
    x = torch.randn(4, 3, dtype=F64)
    rep = periodic_repeat(x, 7, dim)
    d = dim % 2
    assert rep.size(d) == 7
    for t in range(7):
        assert torch.equal(rep.select(d, t), x.select(d, t % x.size(d)))
    y = torch.randn(7, 5, dtype=F64)
    cum = periodic_cumsum(y, 3, dim)
    d = dim % 2
    for t in range(y.size(d)):
        expected = y.select(d, t) + (cum.select(d, t - 3) if t >= 3 else 0)
        assert torch.allclose(cum.select(d, t), expected)


@pytest.mark.parametrize("duration,max_period,min_period", [(10, None, None), (30, 12.5, 3.0)])
def test_periodic_features_are_cosines_and_sines_of_the_periods(duration, max_period, min_period):
    features = periodic_features(duration, max_period, min_period, dtype=F64)
    mp = duration if max_period is None else max_period
    lo = 2 if min_period is None else min_period
    ks = [k for k in range(1, math.ceil(mp / lo))]
    assert features.shape == (duration, 2 * math.ceil(mp / lo) - 2)
    for t in range(duration):
        for j, k in enumerate(ks):
            angle = 2 * math.pi * k * t / mp
            assert features[t, j].item() == pytest.approx(math.cos(angle), abs=1e-9)
            assert features[t, len(ks) + j].item() == pytest.approx(-math.sin(angle), abs=1e-9)


def test_next_fast_len_matches_scipy():
    for size in range(1, 600):
        assert next_fast_len(size) == fftpack.next_fast_len(size)


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("m,n", [(2, 5), (6, 3), (10, 10), (1, 4)])
def test_convolve_matches_numpy(m, n, mode):
    torch.manual_seed(m * 10 + n)
    signal = torch.randn(3, m, dtype=F64)
    kernel = torch.randn(3, n, dtype=F64)
    actual = convolve(signal, kernel, mode)
    expected = torch.stack(
        [torch.from_numpy(np.convolve(s.numpy(), k.numpy(), mode)) for s, k in zip(signal, kernel)]
    )
    assert torch.allclose(actual, expected)


def test_repeated_matmul_gives_the_powers():
    torch.manual_seed(2)
    m = torch.randn(2, 3, 3, dtype=F64)
    powers = repeated_matmul(m, 6)
    p = m
    for i in range(6):
        assert torch.allclose(powers[i], p)
        p = p @ m


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 1, 6), (7,)])
def test_dct_and_idct_match_scipy(shape):
    torch.manual_seed(3)
    x = torch.randn(shape, dtype=F64)
    assert torch.allclose(dct(x), torch.from_numpy(fftpack.dct(x.numpy(), norm="ortho")))
    assert torch.allclose(idct(x), torch.from_numpy(fftpack.idct(x.numpy(), norm="ortho")))
    assert torch.allclose(idct(dct(x)), x)


@pytest.mark.parametrize("dim", [-4, -2, 0, 2, 3])
def test_dct_along_other_dims(dim):
    x = torch.randn(2, 3, 4, 5, dtype=F64)
    for fn in (dct, idct):
        assert torch.allclose(fn(x, dim=dim), fn(x.transpose(dim, -1)).transpose(dim, -1))


@pytest.mark.parametrize("n", [1, 2, 5, 8, 11])
def test_haar_transform_is_orthonormal_and_inverted(n):
    torch.manual_seed(n)
    x = torch.randn(3, n, dtype=F64)
    y = haar_transform(x)
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1))
    assert torch.allclose(inverse_haar_transform(y), x)
    if n == 8:  # the coarsest coefficient is the scaled mean
        assert torch.allclose(y[..., 0], x.sum(-1) / math.sqrt(8))


def test_precision_to_scale_tril_is_the_cholesky_factor_of_the_inverse():
    torch.manual_seed(4)
    a = torch.randn(3, 4, 4, dtype=F64)
    precision = a @ a.transpose(-1, -2) + torch.eye(4, dtype=F64)
    actual = precision_to_scale_tril(precision)
    assert torch.allclose(actual, torch.linalg.cholesky(torch.linalg.inv(precision)))


def test_safe_cholesky_uses_the_jitter_setting():
    x = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=F64)  # singular
    with settings.context(cholesky_relative_jitter=1e6):
        assert tensor_utils.CHOLESKY_RELATIVE_JITTER == 1e6
        lower = safe_cholesky(x)
    assert torch.isfinite(lower).all()
    with settings.context(cholesky_relative_jitter=0.0), pytest.raises(RuntimeError):
        safe_cholesky(x)
    with pytest.raises(ValueError, match="cholesky_relative_jitter"):
        settings.set(cholesky_relative_jitter=-1.0)


def test_small_linear_algebra_helpers():
    torch.manual_seed(5)
    lower = torch.tril(torch.randn(3, 3, dtype=F64)) + 3 * torch.eye(3, dtype=F64)
    b = torch.randn(3, 2, dtype=F64)
    assert torch.allclose(lower @ triangular_solve(b, lower), b)
    assert torch.allclose(lower.T @ triangular_solve(b, lower, transpose=True), b)
    v = torch.randn(3, dtype=F64)
    assert torch.allclose(matvecmul(lower, v), lower @ v)


def test_safe_normalize_maps_zero_to_the_first_axis():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]])
    y = safe_normalize(x)
    assert torch.allclose(y, torch.tensor([[0.6, 0.8], [1.0, 0.0], [0.0, -1.0]]))
    assert torch.allclose(safe_normalize(x, p=1)[0], torch.tensor([3 / 7, 4 / 7]))


def test_broadcast_tensors_without_dim_keeps_that_dim():
    a, b = broadcast_tensors_without_dim([torch.zeros(2, 1, 3), torch.zeros(4, 5)], -1)
    assert a.shape == (2, 4, 3) and b.shape == (2, 4, 5)
    assert torch.cat([a, b], -1).shape == (2, 4, 8)
    with pytest.raises(ValueError, match="dim must be negative"):
        broadcast_tensors_without_dim([torch.zeros(2, 1, 3), torch.zeros(4, 5)], 1)
