"""Tensor utilities: block diagonals, periodic series helpers, FFT-based
convolution and cosine transforms, Haar wavelets, and small linear-algebra
helpers that treat 1 x 1 matrices as numbers."""

from __future__ import annotations

import functools
import math
import numbers
from typing import List, Sequence

import torch

from ember import settings

__all__ = [
    "CHOLESKY_RELATIVE_JITTER",
    "as_complex",
    "block_diag_embed",
    "block_diagonal",
    "broadcast_tensors_without_dim",
    "cholesky_solve",
    "convolve",
    "dct",
    "haar_transform",
    "idct",
    "inverse_haar_transform",
    "matmul",
    "matvecmul",
    "next_fast_len",
    "periodic_cumsum",
    "periodic_features",
    "periodic_repeat",
    "precision_to_scale_tril",
    "repeated_matmul",
    "safe_cholesky",
    "safe_normalize",
    "triangular_solve",
]

#: Jitter :func:`safe_cholesky` adds to the diagonal, in units of the dtype's
#: machine epsilon times the largest absolute entry of each row (the
#: ``cholesky_relative_jitter`` setting; 0 disables it).
CHOLESKY_RELATIVE_JITTER = 4.0


@settings.register("cholesky_relative_jitter", __name__, "CHOLESKY_RELATIVE_JITTER")
def _check_jitter(value):
    if (
        not isinstance(value, numbers.Real)
        or isinstance(value, bool)
        or not value >= 0
        or math.isinf(value)
    ):
        raise ValueError(
            f"cholesky_relative_jitter must be a finite number >= 0 (0 disables it), got {value!r}"
        )


def _check_int(name: str, value, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def _negative_dim(dim: int, ndim: int, name: str = "dim") -> int:
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"{name} must be an int, got {dim!r}")
    if not -ndim <= dim < ndim:
        raise ValueError(f"{name}={dim} is out of range for a tensor with {ndim} dims")
    return dim - ndim if dim >= 0 else dim


def as_complex(x: torch.Tensor) -> torch.Tensor:
    """:func:`torch.view_as_complex` of ``x`` (last dim of size 2: real, imaginary),
    copying first when the strides do not allow a view.

    Example::

        >>> as_complex(torch.tensor([[1.0, 2.0], [3.0, -1.0]]))
        tensor([1.+2.j, 3.-1.j])
    """
    if x.size(-1) != 2:
        raise ValueError(f"as_complex needs a last dim of size 2, got shape {tuple(x.shape)}")
    if x.stride(-1) != 1 or any(s % 2 for s in x.stride()[:-1]):
        x = x.contiguous()
    return torch.view_as_complex(x)


def block_diag_embed(mat: torch.Tensor) -> torch.Tensor:
    """The block-diagonal matrix ``(..., B*M, B*N)`` with the ``B`` blocks of ``mat``
    (``(..., B, M, N)``) on its diagonal, zeros elsewhere.

    Example::

        >>> block_diag_embed(torch.ones(2, 1, 2))
        tensor([[1., 1., 0., 0.],
                [0., 0., 1., 1.]])
    """
    if mat.dim() < 3:
        raise ValueError(
            f"block_diag_embed needs a tensor (..., B, M, N) with 3 or more dims, got shape "
            f"{tuple(mat.shape)}"
        )
    b, m, n = mat.shape[-3:]
    # entry (i, r, j, c) is mat[i, r, c] when i == j, else 0
    eye = torch.eye(b, dtype=mat.dtype, device=mat.device)
    full = mat.unsqueeze(-2) * eye.reshape(b, 1, b, 1)
    return full.reshape(mat.shape[:-3] + (b * m, b * n))


def block_diagonal(mat: torch.Tensor, block_size: int) -> torch.Tensor:
    """The ``block_size`` diagonal blocks ``(..., B, M, N)`` of a block-diagonal
    matrix ``(..., B*M, B*N)`` (the inverse of :func:`block_diag_embed`).

    Example::

        >>> block_diagonal(block_diag_embed(torch.ones(2, 1, 2)), 2).shape
        torch.Size([2, 1, 2])
    """
    _check_int("block_size", block_size, 1)
    rows, cols = mat.shape[-2:]
    if rows % block_size or cols % block_size:
        raise ValueError(
            f"block_diagonal: a {rows} x {cols} matrix does not split into {block_size} "
            "blocks along both dims"
        )
    m, n = rows // block_size, cols // block_size
    blocks = mat.reshape(mat.shape[:-2] + (block_size, m, block_size, n))
    index = torch.arange(block_size, device=mat.device)
    # pick block (i, i): move the two block indices to the end, then the diagonal
    blocks = blocks.permute(*range(mat.dim() - 2), -4, -2, -3, -1)
    return blocks[..., index, index, :, :]


def periodic_repeat(tensor: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Repeat ``tensor`` (one period along ``dim``) until it has length ``size`` there.

    Example::

        >>> periodic_repeat(torch.tensor([1, 2, 3]), 7, 0)
        tensor([1, 2, 3, 1, 2, 3, 1])
    """
    _check_int("size", size, 0)
    dim = _negative_dim(dim, tensor.dim())
    period = tensor.size(dim)
    if period == 0:
        raise ValueError("periodic_repeat: the tensor has an empty period")
    repeats = [1] * tensor.dim()
    repeats[dim] = -(-size // period)
    return tensor.repeat(*repeats).narrow(dim, 0, size)


def periodic_cumsum(tensor: torch.Tensor, period: int, dim: int) -> torch.Tensor:
    """Cumulative sums along ``dim`` of the entries ``period`` apart:
    ``result[t] = tensor[t] + result[t - period]`` (and ``tensor[t]`` for ``t < period``).

    Example::

        >>> periodic_cumsum(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]), 2, 0)
        tensor([1., 2., 4., 6., 9.])
    """
    _check_int("period", period, 1)
    dim = _negative_dim(dim, tensor.dim())
    size = tensor.size(dim)
    cycles = -(-size // period)
    pad = cycles * period - size
    if pad:
        shape = list(tensor.shape)
        shape[dim] = pad
        tensor = torch.cat([tensor, tensor.new_zeros(shape)], dim)
    split = tensor.shape[:dim] + (cycles, period) + tensor.shape[tensor.dim() + dim + 1 :]
    result = tensor.reshape(split).cumsum(dim - 1).reshape(tensor.shape)
    return result.narrow(dim, 0, size) if pad else result


def periodic_features(
    duration: int, max_period: float | None = None, min_period: float | None = None, **options
) -> torch.Tensor:
    """Cosine and sine features of the time steps ``0 .. duration - 1`` for each period
    ``max_period / k`` longer than ``min_period`` (``k = 1, 2, ...``).

    Returns a ``(duration, 2 * ceil(max_period / min_period) - 2)`` tensor in
    ``[-1, 1]``: first ``cos(2 pi k t / max_period)`` for every ``k``, then
    ``-sin(2 pi k t / max_period)``. Useful for regressing long, uneven
    seasonality.

    :param max_period: the longest period (default ``duration``).
    :param min_period: the shortest period, exclusive (default 2, the Nyquist limit).
    :param options: tensor options such as ``dtype`` and ``device``.

    Example::

        >>> periodic_features(4, 4.0, 2.0).round(decimals=3).abs()  # cos(pi t / 2), -sin(...)
        tensor([[1., 0.],
                [0., 1.],
                [1., 0.],
                [0., 1.]])
    """
    _check_int("duration", duration, 0)
    max_period = duration if max_period is None else max_period
    min_period = 2 if min_period is None else min_period
    if min_period < 2:
        raise ValueError(f"periodic_features: min_period={min_period} is below the Nyquist limit 2")
    if max_period < min_period:
        raise ValueError(
            f"periodic_features: max_period={max_period} is less than min_period={min_period}"
        )
    k = torch.arange(1, max_period / min_period, **options)
    angle = torch.arange(float(duration), **options)[:, None] * (k * (2 * math.pi / max_period))
    # cos(a + pi / 2) = -sin(a)
    return torch.cat([angle.cos(), -angle.sin()], dim=-1)


@functools.lru_cache(maxsize=4096)
def next_fast_len(size: int) -> int:
    """The smallest ``n >= size`` whose prime factors are all 2, 3 or 5 (fast FFT sizes),
    as :func:`scipy.fftpack.next_fast_len`.

    Example::

        >>> next_fast_len(97), next_fast_len(128)
        (100, 128)
    """
    _check_int("size", size, 1)
    n = size
    while True:
        rest = n
        for p in (2, 3, 5):
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return n
        n += 1


def convolve(signal: torch.Tensor, kernel: torch.Tensor, mode: str = "full") -> torch.Tensor:
    """1-d convolution of ``signal`` with ``kernel`` along the last dim, by FFT.

    Other dims broadcast. With ``m = signal.size(-1)`` and ``n = kernel.size(-1)``
    the result has ``m + n - 1`` entries (``mode="full"``), ``max(m, n)``
    (``"same"``, the centre of the full result) or ``max(m, n) - min(m, n) + 1``
    (``"valid"``), as :func:`numpy.convolve`.

    Example::

        >>> convolve(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 1.0, 0.5])).round()
        tensor([0., 1., 2., 4., 2.])
    """
    m, n = signal.size(-1), kernel.size(-1)
    full = m + n - 1
    if mode == "full":
        keep = full
    elif mode == "same":
        keep = max(m, n)
    elif mode == "valid":
        keep = max(m, n) - min(m, n) + 1
    else:
        raise ValueError(f"convolve: mode must be 'full', 'same' or 'valid', got {mode!r}")
    size = next_fast_len(full)
    product = torch.fft.rfft(signal, n=size) * torch.fft.rfft(kernel, n=size)
    result = torch.fft.irfft(product, n=size)
    start = (full - keep) // 2
    return result[..., start : start + keep]


def repeated_matmul(M: torch.Tensor, n: int) -> torch.Tensor:
    """The powers ``M, M^2, ..., M^n`` of square matrices ``M`` (``(..., N, N)``),
    stacked as ``(n, ..., N, N)``, in about ``log2(n)`` rounds of batched products.

    Example::

        >>> repeated_matmul(torch.tensor([[2.0]]), 4).flatten()
        tensor([ 2.,  4.,  8., 16.])
    """
    if M.dim() < 2 or M.size(-1) != M.size(-2):
        raise ValueError(f"repeated_matmul needs square matrices (..., N, N), got {tuple(M.shape)}")
    _check_int("n", n, 1)
    powers = M.unsqueeze(0)  # M^1 .. M^k
    while powers.size(0) < n:
        top = powers[-1]  # M^k
        powers = torch.cat([powers, torch.matmul(top.unsqueeze(0), powers)])  # up to M^2k
    return powers[:n]


def _dct_last(x: torch.Tensor) -> torch.Tensor:
    n = x.size(-1)
    # the even extension [x, flip(x)] makes the DFT a cosine sum, up to a phase
    spectrum = torch.fft.fft(torch.cat([x, x.flip(-1)], dim=-1))[..., :n]
    k = torch.arange(n, dtype=x.dtype, device=x.device)
    phase = torch.polar(torch.ones_like(k), -math.pi * k / (2 * n))
    unnormalized = (spectrum * phase).real / 2
    scale = torch.full_like(k, math.sqrt(2.0 / n))
    scale[0] = math.sqrt(1.0 / n)
    return unnormalized * scale


def _idct_last(x: torch.Tensor) -> torch.Tensor:
    n = x.size(-1)
    k = torch.arange(n, dtype=x.dtype, device=x.device)
    scale = torch.full_like(k, math.sqrt(2.0 / n))
    scale[0] = math.sqrt(1.0 / n)
    coefficients = (x * scale) * torch.polar(torch.ones_like(k), math.pi * k / (2 * n))
    padded = torch.cat([coefficients, torch.zeros_like(coefficients)], dim=-1)
    return (torch.fft.ifft(padded)[..., :n] * (2 * n)).real


def _along(fn, x: torch.Tensor, dim: int) -> torch.Tensor:
    dim = _negative_dim(dim, x.dim())
    if dim == -1:
        return fn(x)
    return fn(x.transpose(dim, -1)).transpose(dim, -1)


def dct(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Orthonormal discrete cosine transform of type II along ``dim``
    (``scipy.fftpack.dct(x, norm="ortho")``); :func:`idct` inverts it.

    Example::

        >>> dct(torch.tensor([1.0, 1.0, 1.0, 1.0]))
        tensor([2., 0., 0., 0.])
    """
    return _along(_dct_last, x, dim)


def idct(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Inverse of :func:`dct` (orthonormal DCT of type III) along ``dim``
    (``scipy.fftpack.idct(x, norm="ortho")``).

    Example::

        >>> x = torch.tensor([0.5, -1.0, 2.0])
        >>> torch.allclose(idct(dct(x)), x, atol=1e-6)
        True
    """
    return _along(_idct_last, x, dim)


_ROOT_HALF = math.sqrt(0.5)


def haar_transform(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal discrete Haar wavelet transform along the last dim.

    Pairs ``(x[2i], x[2i+1])`` become a sum ``(a + b) / sqrt 2`` and a
    difference ``(a - b) / sqrt 2``; the sums are transformed again. The result
    holds the coarsest coefficients first, then the differences of each level
    from coarse to fine, each level followed by the entry left over when its
    length was odd. :func:`inverse_haar_transform` inverts it.

    Example::

        >>> haar_transform(torch.tensor([1.0, 1.0, 3.0, 3.0])).round(decimals=4)
        tensor([ 4., -2.,  0.,  0.])
    """
    n = x.size(-1) // 2
    pairs = x[..., : 2 * n]
    rest = x[..., 2 * n :]
    even, odd = pairs[..., 0::2], pairs[..., 1::2]
    low = _ROOT_HALF * (even + odd)
    high = _ROOT_HALF * (even - odd)
    if n >= 2:
        low = haar_transform(low)
    return torch.cat([low, high, rest], dim=-1)


def inverse_haar_transform(x: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`haar_transform` along the last dim.

    Example::

        >>> x = torch.tensor([3.0, -1.0, 0.5, 2.0, 7.0])
        >>> torch.allclose(inverse_haar_transform(haar_transform(x)), x, atol=1e-6)
        True
    """
    n = x.size(-1) // 2
    low, high, rest = x[..., :n], x[..., n : 2 * n], x[..., 2 * n :]
    if n >= 2:
        low = inverse_haar_transform(low)
    even = _ROOT_HALF * (low + high)
    odd = _ROOT_HALF * (low - high)
    interleaved = torch.stack([even, odd], dim=-1).reshape(even.shape[:-1] + (2 * n,))
    return torch.cat([interleaved, rest], dim=-1)


def safe_cholesky(x: torch.Tensor) -> torch.Tensor:
    """Cholesky factor of positive definite ``x`` after adding a small relative jitter
    to its diagonal (``CHOLESKY_RELATIVE_JITTER`` machine epsilons of each row's
    largest absolute entry); a 1 x 1 matrix gets its (clamped) square root.

    Example::

        >>> safe_cholesky(torch.tensor([[4.0, 2.0], [2.0, 2.0]])).round()
        tensor([[2., 0.],
                [1., 1.]])
    """
    jitter = CHOLESKY_RELATIVE_JITTER
    if x.size(-1) == 1:
        if jitter:
            x = x.clamp(min=torch.finfo(x.dtype).tiny)
        return x.sqrt()
    if jitter:
        scale = x.detach().abs().amax(-1) * (jitter * torch.finfo(x.dtype).eps)
        x = x + torch.diag_embed(scale)
    return torch.linalg.cholesky(x)


def cholesky_solve(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``A^{-1} x`` for ``A = y y^T`` given its Cholesky factor ``y`` (1 x 1: ``x / y^2``)."""
    if y.size(-1) == 1:
        return x / (y * y)
    return torch.cholesky_solve(x, y)


def matmul(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x @ y``, an elementwise product when the inner size is 1."""
    if x.size(-1) == 1:
        return x * y
    return torch.matmul(x, y)


def matvecmul(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The matrix-vector product ``x @ y`` over batches (``(..., M, N)`` and ``(..., N)``)."""
    if x.size(-1) == 1:
        return x.squeeze(-1) * y
    return torch.matmul(x, y.unsqueeze(-1)).squeeze(-1)


def triangular_solve(
    x: torch.Tensor, y: torch.Tensor, upper: bool = False, transpose: bool = False
) -> torch.Tensor:
    """``y^{-1} x`` (``(y^T)^{-1} x`` with ``transpose``) for triangular ``y``."""
    if y.size(-1) == 1:
        return x / y
    if transpose:
        y, upper = y.transpose(-1, -2), not upper
    return torch.linalg.solve_triangular(y, x, upper=upper)


def precision_to_scale_tril(P: torch.Tensor) -> torch.Tensor:
    """The lower Cholesky factor of ``P^{-1}`` from a precision matrix ``P``,
    without forming the inverse.

    With ``J`` the reversal permutation, ``J P J = U U^T`` (``U`` lower) gives
    ``P = (J U J)(J U J)^T`` with ``J U J`` upper triangular, so
    ``P^{-1} = L L^T`` for the lower triangular ``L = (J U J)^{-T}``.

    Example::

        >>> P = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
        >>> L = precision_to_scale_tril(P)
        >>> torch.allclose(L @ L.T, torch.linalg.inv(P), atol=1e-6)
        True
    """
    flipped = torch.linalg.cholesky(P.flip(-2, -1))
    upper = flipped.flip(-2, -1)  # P = upper @ upper.T
    eye = torch.eye(P.size(-1), dtype=P.dtype, device=P.device)
    # L = upper^{-T}: solve upper^T L = I (upper^T is lower triangular)
    return torch.linalg.solve_triangular(upper.transpose(-2, -1), eye, upper=False)


def safe_normalize(x: torch.Tensor, *, p: float = 2) -> torch.Tensor:
    """``x / ||x||_p`` along the last dim, mapping the zero vector to ``(1, 0, ..., 0)``.

    Example::

        >>> safe_normalize(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
        tensor([[0.6000, 0.8000],
                [1.0000, 0.0000]])
    """
    if not isinstance(p, numbers.Real) or p < 0:
        raise ValueError(f"safe_normalize: p must be a number >= 0, got {p!r}")
    norm = torch.linalg.vector_norm(x, ord=p, dim=-1, keepdim=True)
    y = x / norm.clamp(min=torch.finfo(x.dtype).tiny)
    zero = (x == 0).all(dim=-1, keepdim=True)
    first = torch.zeros_like(y)
    first[..., 0] = 1
    return torch.where(zero, first, y)


def broadcast_tensors_without_dim(tensors: Sequence[torch.Tensor], dim: int) -> List[torch.Tensor]:
    """``tensors`` expanded to one shape except along ``dim``, which keeps each
    tensor's own size (so that they can be concatenated there).

    Example::

        >>> a, b = broadcast_tensors_without_dim([torch.zeros(2, 1), torch.zeros(1, 3)], -1)
        >>> a.shape, b.shape
        (torch.Size([2, 1]), torch.Size([2, 3]))
    """
    tensors = list(tensors)
    if dim >= 0 and len({t.dim() for t in tensors}) > 1:
        raise ValueError(
            "broadcast_tensors_without_dim: dim must be negative when the tensors have "
            f"different numbers of dims ({[t.dim() for t in tensors]})"
        )
    shapes = []
    for t in tensors:
        shape = list(t.shape)
        shape[dim] = 1
        shapes.append(shape)
    common = list(torch.broadcast_shapes(*shapes))
    out = []
    for t in tensors:
        shape = list(common)
        shape[dim] = t.shape[dim]
        out.append(t.expand(shape))
    return out
