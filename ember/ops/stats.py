"""Statistics of samples: MCMC convergence diagnostics (R-hat, effective sample size,
autocorrelation), summaries of draws (quantiles, percentile and highest-density
intervals), resampling, WAIC, the generalized Pareto fit behind PSIS, and the
empirical CRPS / energy score of forecasts.

Every function works along the named dims and broadcasts over the others: a tensor of
draws shaped ``(num_chains, num_samples) + sample_shape`` gives a diagnostic shaped
``sample_shape``.
"""

from __future__ import annotations

import math
import numbers
from typing import List, Optional, Tuple, Union

import torch
from torch.fft import irfft, rfft

from ember.ops.tensor_utils import next_fast_len

__all__ = [
    "autocorrelation",
    "autocovariance",
    "crps_empirical",
    "cummin",
    "effective_sample_size",
    "energy_score_empirical",
    "fit_generalized_pareto",
    "gelman_rubin",
    "hpdi",
    "pi",
    "quantile",
    "resample",
    "split_gelman_rubin",
    "waic",
    "weighed_quantile",
    "weighted_mean",
    "weighted_variance",
]


def _positive_dim(dim: int, ndim: int, name: str) -> int:
    if not -ndim <= dim < ndim:
        raise ValueError(f"{name}={dim} is out of range for a tensor with {ndim} dims")
    return dim % ndim


def _chains_samples_first(
    input: torch.Tensor, chain_dim: int, sample_dim: int, fn: str, min_samples: int
) -> Tuple[torch.Tensor, int, int]:
    """Move (sample_dim, chain_dim) to the front: result is ``(N, C) + rest``."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"{fn} expects a torch.Tensor, got {type(input).__name__}")
    if input.dim() < 2:
        raise ValueError(
            f"{fn} expects draws with a chain dim and a sample dim (at least 2 dims), "
            f"got shape {tuple(input.shape)}; for a single chain use x.unsqueeze(0)"
        )
    c = _positive_dim(chain_dim, input.dim(), "chain_dim")
    s = _positive_dim(sample_dim, input.dim(), "sample_dim")
    if c == s:
        raise ValueError(f"{fn}: chain_dim and sample_dim must differ, both are {c}")
    if input.size(s) < min_samples:
        raise ValueError(
            f"{fn} needs at least {min_samples} samples per chain, "
            f"got {input.size(s)} (shape {tuple(input.shape)}, sample_dim={sample_dim})"
        )
    rest = [d for d in range(input.dim()) if d not in (c, s)]
    return input.permute([s, c] + rest), c, s


def _within_and_pooled_variance(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """For draws ``x`` shaped ``(N, C) + rest``: the mean within-chain variance ``W``
    and the pooled estimate ``(N - 1) / N * W + B / N`` of the marginal variance
    (``B / N`` is the variance of the chain means). With one chain the pooled
    estimate is the biased within-chain variance and ``W`` is set equal to it."""
    n = x.size(0)
    within = x.var(dim=0).mean(dim=0)
    pooled = within * ((n - 1) / n)
    if x.size(1) > 1:
        return within, pooled + x.mean(dim=0).var(dim=0)
    return pooled, pooled


def gelman_rubin(input: torch.Tensor, chain_dim: int = 0, sample_dim: int = 1) -> torch.Tensor:
    """The potential scale reduction factor R-hat of Gelman and Rubin (1992):
    ``sqrt(pooled variance / mean within-chain variance)``; close to 1 when the chains
    have mixed.

    :param torch.Tensor input: draws with at least 2 chains and 2 samples per chain.
    :param int chain_dim: the dim indexing chains.
    :param int sample_dim: the dim indexing draws within a chain.
    :return: R-hat, shaped as ``input`` without the chain and sample dims.

    Example::

        >>> x = torch.stack([torch.arange(10.0), torch.arange(10.0) + 1])
        >>> round(gelman_rubin(x).item(), 2)
        0.98
    """
    x, _, _ = _chains_samples_first(input, chain_dim, sample_dim, "gelman_rubin", 2)
    if x.size(1) < 2:
        raise ValueError(
            f"gelman_rubin needs at least 2 chains, got {x.size(1)}; "
            "use split_gelman_rubin for a single chain"
        )
    within, pooled = _within_and_pooled_variance(x)
    return (pooled / within).sqrt()


def split_gelman_rubin(
    input: torch.Tensor, chain_dim: int = 0, sample_dim: int = 1
) -> torch.Tensor:
    """R-hat computed after splitting every chain into its first and last halves
    (dropping the middle draw of an odd-length chain), which also detects a chain
    that is still drifting. Works with a single chain.

    :return: split R-hat, shaped as ``input`` without the chain and sample dims.
    """
    x, _, _ = _chains_samples_first(input, chain_dim, sample_dim, "split_gelman_rubin", 4)
    half = x.size(0) // 2
    # chains in order c0-first, c0-last, c1-first, ...
    halves = torch.stack([x[:half], x[x.size(0) - half :]], dim=2)
    halves = halves.reshape((half, -1) + x.shape[2:])
    return gelman_rubin(halves, chain_dim=1, sample_dim=0)


def autocorrelation(input: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """The sample autocorrelation of ``input`` along ``dim`` at every lag
    ``0 .. N - 1``, computed with the FFT. Lag ``k`` is the mean of the ``N - k``
    lagged products of the centred series divided by the (biased) variance, so
    lag 0 is 1. A constant series has autocorrelation 1 at every lag.

    Example::

        >>> autocorrelation(torch.tensor([1.0, -1.0, 1.0, -1.0]))
        tensor([ 1.0000, -1.0000,  1.0000, -1.0000])
    """
    d = _positive_dim(dim, input.dim(), "dim")
    n = input.size(d)
    x = input.transpose(d, -1)
    x = x - x.mean(dim=-1, keepdim=True)
    m = 2 * next_fast_len(n)  # zero padding to at least 2n avoids circular wrap-around
    spectrum = rfft(x, n=m)
    power = spectrum.real.pow(2) + spectrum.imag.pow(2)
    lagged_sums = irfft(power, n=m)[..., :n]
    counts = torch.arange(n, 0, -1, dtype=lagged_sums.dtype, device=lagged_sums.device)
    acov = lagged_sums / counts
    var = acov[..., :1]
    constant = var == 0
    acorr = acov / torch.where(constant, torch.ones_like(var), var)
    acorr = torch.where(constant, torch.ones_like(acorr), acorr)
    return acorr.transpose(d, -1)


def autocovariance(input: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """The sample autocovariance along ``dim`` at every lag: :func:`autocorrelation`
    times the biased variance (lag 0 is the biased variance)."""
    return autocorrelation(input, dim) * input.var(dim, unbiased=False, keepdim=True)


def cummin(input: torch.Tensor) -> torch.Tensor:
    """The running minimum along dim 0: ``out[i] = min(input[:i + 1])``."""
    return torch.cummin(input, dim=0).values


def _cummin(input: torch.Tensor) -> torch.Tensor:
    """:func:`cummin` under the private name Pyro's own test-suite imports."""
    return cummin(input)


def effective_sample_size(
    input: torch.Tensor, chain_dim: int = 0, sample_dim: int = 1
) -> torch.Tensor:
    """The effective sample size of MCMC draws across chains (Stan's estimator, as
    ArviZ's ``ess(method="mean")`` before rank normalisation was introduced):
    ``C * N / tau`` with the integrated autocorrelation time ``tau`` summed with
    Geyer's initial monotone sequence over the autocorrelations combined across
    chains. The per-chain autocovariance at lag ``k`` is that of
    :func:`autocovariance` (the mean of the ``N - k`` lagged products), matching
    Pyro and ArviZ's estimator.

    :param torch.Tensor input: draws with at least 2 samples per chain.
    :return: the ESS, shaped as ``input`` without the chain and sample dims.

    Example::

        >>> x = torch.arange(1000.0).reshape(100, 10)
        >>> round(effective_sample_size(x).item(), 2)
        52.64
    """
    x, _, _ = _chains_samples_first(input, chain_dim, sample_dim, "effective_sample_size", 2)
    n, c = x.size(0), x.size(1)
    acov = autocovariance(x, dim=0)  # (N, C) + rest
    within, pooled = _within_and_pooled_variance(x)
    rho = 1 - (within - acov.mean(dim=1)) / pooled
    rho[0] = 1
    pairs = rho[: 2 * (n // 2)].reshape((n // 2, 2) + rho.shape[1:]).sum(dim=1)
    tau = 2 * pairs[0] - 1
    if pairs.size(0) > 1:
        tau = tau + 2 * cummin(pairs[1:].clamp(min=0)).sum(dim=0)
    return c * n / tau


def resample(
    input: torch.Tensor, num_samples: int, dim: int = 0, replacement: bool = False
) -> torch.Tensor:
    """Draw ``num_samples`` entries of ``input`` along ``dim`` uniformly at random,
    with or without replacement."""
    size = input.size(dim)
    if not replacement and num_samples > size:
        raise ValueError(
            f"resample without replacement cannot draw {num_samples} from {size} "
            "entries; pass replacement=True"
        )
    weights = torch.ones(size, dtype=torch.float, device=input.device)
    idx = torch.multinomial(weights, num_samples, replacement)
    return input.index_select(dim, idx)


def _probs_tensor(probs, like: torch.Tensor) -> torch.Tensor:
    if isinstance(probs, torch.Tensor):
        p = probs.to(dtype=like.dtype, device=like.device)
    elif isinstance(probs, (numbers.Number, list, tuple)):
        p = torch.tensor(probs, dtype=like.dtype, device=like.device)
    else:
        raise TypeError(f"probs must be a number, list, tuple or tensor, got {type(probs)}")
    if p.dim() > 1 or bool(((p < 0) | (p > 1)).any()):
        raise ValueError(f"probs must be a scalar or 1-d with values in [0, 1], got {probs}")
    return p


def quantile(input: torch.Tensor, probs, dim: int = 0) -> torch.Tensor:
    """Sample quantiles along ``dim`` by linear interpolation between order statistics
    (the quantile at ``p`` sits at fractional rank ``p * (N - 1)``).

    :param probs: a number, or a list / 1-d tensor of probabilities in [0, 1].
    :return: for a scalar ``probs`` the ``dim`` is removed; otherwise ``dim`` has size
        ``len(probs)``.

    Example::

        >>> quantile(torch.tensor([0.0, 1.0, 2.0]), probs=[0.0, 0.4, 0.5, 1.0])
        tensor([0.0000, 0.8000, 1.0000, 2.0000])
    """
    d = _positive_dim(dim, input.dim(), "dim")
    p = _probs_tensor(probs, input)
    ordered = input.sort(d).values
    last = input.size(d) - 1
    pos = p.reshape(-1) * last
    lo = pos.floor().long().clamp(0, last)
    hi = (lo + 1).clamp(max=last)
    frac = (pos - lo.to(pos.dtype)).reshape([-1 if i == d else 1 for i in range(input.dim())])
    out = ordered.index_select(d, lo) * (1 - frac) + ordered.index_select(d, hi) * frac
    return out.squeeze(d) if p.dim() == 0 else out


def weighed_quantile(
    input: torch.Tensor,
    probs: Union[List[float], Tuple[float, ...], torch.Tensor],
    log_weights: torch.Tensor,
    dim: int = 0,
) -> torch.Tensor:
    """Quantiles of weighted samples along ``dim``. The samples are sorted, their
    normalised cumulative weights are rescaled to run from 0 (first sample) to 1
    (last sample), and each quantile is interpolated linearly between the two samples
    whose rescaled cumulative weights bracket the probability.

    :param probs: list or 1-d tensor of probabilities.
    :param torch.Tensor log_weights: unnormalised log weights, one per entry of
        ``input`` along ``dim``.
    :return: ``input``'s shape with ``dim`` of size ``len(probs)``.

    Example::

        >>> x = torch.tensor([[10.0, 50.0, 40.0], [20.0, 30.0, 0.0]])
        >>> weighed_quantile(x, [0.2, 0.8], torch.tensor([0.4, 0.5, 0.1]).log(), -1)
        tensor([[40.4000, 47.6000],
                [ 9.0000, 26.4000]])
    """
    d = _positive_dim(dim, input.dim(), "dim")
    if log_weights.dim() != 1 or log_weights.numel() != input.size(d):
        raise ValueError(
            f"weighed_quantile: log_weights must be 1-d with {input.size(d)} entries "
            f"(the size of dim {dim} of input {tuple(input.shape)}), "
            f"got shape {tuple(log_weights.shape)}"
        )
    p = _probs_tensor(probs, input).reshape(-1)
    x = input.movedim(d, -1)
    w = torch.softmax(log_weights.to(x.dtype), dim=0)
    ordered, order = x.sort(-1)
    cw = w[order].cumsum(-1)
    cw = cw - cw[..., :1]
    cw = cw / cw[..., -1:]
    n = x.size(-1)
    # first position whose rescaled cumulative weight exceeds p (clamped to the last)
    hi = (cw.unsqueeze(-2) <= p.unsqueeze(-1)).sum(-1).clamp(max=n - 1)
    lo = (hi - 1).clamp(min=0)
    q_lo, q_hi = ordered.gather(-1, lo), ordered.gather(-1, hi)
    w_lo, w_hi = cw.gather(-1, lo), cw.gather(-1, hi)
    t = (p - w_lo) / (w_hi - w_lo)
    out = q_lo + t * (q_hi - q_lo)
    return out.movedim(-1, d)


def pi(input: torch.Tensor, prob: float, dim: int = 0) -> torch.Tensor:
    """The central percentile interval holding probability ``prob``: the quantiles at
    ``(1 - prob) / 2`` and ``(1 + prob) / 2``, stacked along ``dim``."""
    return quantile(input, [(1 - prob) / 2, (1 + prob) / 2], dim)


def hpdi(input: torch.Tensor, prob: float, dim: int = 0) -> torch.Tensor:
    """The highest posterior density interval: the narrowest interval between two
    order statistics that spans ``floor(prob * N)`` steps of sorted samples. Returns
    its lower and upper ends stacked along ``dim``.

    Example::

        >>> hpdi(torch.tensor([0.0, 1.0, 2.0, 3.0, 10.0]), prob=0.6)
        tensor([0., 3.])
    """
    d = _positive_dim(dim, input.dim(), "dim")
    if not 0 < prob <= 1:
        raise ValueError(f"hpdi: prob must be in (0, 1], got {prob}")
    ordered = input.sort(d).values
    n = input.size(d)
    span = int(prob * n)
    if span >= n:
        span = n - 1
    widths = ordered.narrow(d, span, n - span) - ordered.narrow(d, 0, n - span)
    start = widths.argmin(d, keepdim=True)
    return torch.cat([ordered.gather(d, start), ordered.gather(d, start + span)], dim=d)


def weighted_mean(
    input: torch.Tensor, log_weights: torch.Tensor, dim: int = 0, keepdim: bool = False
) -> torch.Tensor:
    """The mean of ``input`` along ``dim`` with (unnormalised) ``log_weights``, one per
    entry along ``dim``."""
    d = _positive_dim(dim, input.dim(), "dim")
    w = torch.softmax(log_weights, dim=0).reshape((-1,) + (1,) * (input.dim() - d - 1))
    return (input * w).sum(dim=d, keepdim=keepdim)


def weighted_variance(
    input: torch.Tensor,
    log_weights: torch.Tensor,
    dim: int = 0,
    keepdim: bool = False,
    unbiased: bool = True,
) -> torch.Tensor:
    """The variance of ``input`` along ``dim`` with (unnormalised) ``log_weights``;
    ``unbiased`` multiplies by ``n / (n - 1)`` (``n`` the number of weighted entries)."""
    dev2 = (input - weighted_mean(input, log_weights, dim, keepdim=True)).pow(2)
    n = log_weights.size(0)
    factor = n / (n - 1.0) if unbiased else 1.0
    return weighted_mean(dev2, log_weights, dim, keepdim) * factor


def waic(
    input: torch.Tensor,
    log_weights: Optional[torch.Tensor] = None,
    pointwise: bool = False,
    dim: int = 0,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The widely applicable information criterion (Watanabe 2010) from pointwise
    log likelihoods ``input`` whose ``dim`` indexes posterior draws (with optional
    unnormalised ``log_weights`` for weighted draws).

    ``lpd`` is the log of the (weighted) mean likelihood per point, the effective
    number of parameters ``p_waic`` is the (weighted, unbiased) variance of the log
    likelihood over draws, and ``waic = -2 * (lpd - p_waic)``.

    :return: ``(waic, p_waic)``, summed over points unless ``pointwise``.
    """
    d = _positive_dim(dim, input.dim(), "dim")
    if log_weights is None:
        log_weights = input.new_zeros(input.size(d))
    lw = log_weights.reshape((-1,) + (1,) * (input.dim() - d - 1))
    lpd = torch.logsumexp(input + lw, dim=d) - torch.logsumexp(log_weights, dim=0)
    p_waic = weighted_variance(input, log_weights, d)
    w = -2 * (lpd - p_waic)
    if pointwise:
        return w, p_waic
    return w.sum(), p_waic.sum()


def fit_generalized_pareto(X: torch.Tensor) -> Tuple[float, float]:
    """Fit a generalized Pareto distribution (location 0) to positive samples by the
    empirical Bayes method of Zhang and Stephens (2009), with the weak prior on the
    shape used by Vehtari et al.'s Pareto-smoothed importance sampling.

    :param torch.Tensor X: 1-d tensor of samples.
    :return: ``(k, sigma)``: shape and scale (as floats).
    """
    if not isinstance(X, torch.Tensor) or X.dim() != 1:
        raise ValueError(
            "fit_generalized_pareto: X must be a 1-dimensional torch tensor, got "
            f"{type(X).__name__}{'' if not isinstance(X, torch.Tensor) else tuple(X.shape)}"
        )
    x = X.double().sort().values
    n = x.numel()
    if n < 2:
        raise ValueError(f"fit_generalized_pareto needs at least 2 samples, got {n}")
    m = 30 + int(math.sqrt(n))
    j = torch.arange(1, m + 1, dtype=torch.double)
    # candidate values of theta = -k / sigma spread around 1 / x_max
    first_quartile = x[int(n / 4 - 0.5)]
    theta = 1 / x[-1] + (1 - (m / (j - 0.5)).sqrt()) / (3 * first_quartile)
    k_hat = torch.log1p(-theta.unsqueeze(-1) * x).mean(-1)
    profile_ll = n * (torch.log(-theta / k_hat) - k_hat - 1)
    # posterior weights of the candidates, computed stably as 1 / sum exp(L_j - L_i)
    post = 1 / torch.exp(profile_ll.unsqueeze(0) - profile_ll.unsqueeze(1)).sum(-1)
    keep = post > 1e-30
    post = post[keep] / post[keep].sum()
    theta_hat = (theta[keep] * post).sum()
    k = torch.log1p(-theta_hat * x).mean().item()
    sigma = -k / theta_hat.item()
    k = (n * k + 5.0) / (n + 10.0)  # shrink towards 0.5
    return k, sigma


def crps_empirical(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """The continuous ranked probability score of an ensemble ``pred`` (samples along
    dim 0) against ``truth``, computed exactly for the empirical distribution:
    ``E|pred - truth| - 1/2 E|pred - pred'|``, in ``O(n log n)`` by sorting.

    :param torch.Tensor pred: samples, shaped ``(num_samples,) + truth.shape`` (extra
        singleton dims broadcast).
    :param torch.Tensor truth: the observation.
    :return: a tensor shaped ``truth.shape``.
    """
    expected = (1,) * (pred.dim() - truth.dim() - 1) + tuple(truth.shape)
    if tuple(pred.shape[1:]) != expected:
        raise ValueError(
            "crps_empirical expects pred to have one extra sample dim on the left of "
            f"truth's shape; got pred {tuple(pred.shape)} and truth {tuple(truth.shape)}"
        )
    n = pred.size(0)
    if n == 1:
        return (pred[0] - truth).abs()
    s = pred.sort(dim=0).values
    gaps = s[1:] - s[:-1]
    # the gap between order statistics i and i+1 separates i+1 samples below from
    # n-i-1 above: sum_{a,b}|x_a - x_b| = 2 * sum_i gap_i * (i+1) * (n-i-1)
    i = torch.arange(1, n, dtype=pred.dtype, device=pred.device)
    weight = (i * (n - i)).reshape((-1,) + (1,) * (gaps.dim() - 1))
    return (pred - truth).abs().mean(0) - (gaps * weight).sum(0) / n**2


def energy_score_empirical(
    pred: torch.Tensor, truth: torch.Tensor, pred_batch_size: Optional[int] = None
) -> torch.Tensor:
    """The (negatively oriented) energy score of multivariate samples ``pred``
    against ``truth``: ``E||pred - truth|| - 1/2 E||pred - pred'||`` with the
    Euclidean norm over the last dim. Reduces to the CRPS for 1-d vectors.

    :param torch.Tensor pred: samples shaped ``batch + (num_samples, dim)``.
    :param torch.Tensor truth: shaped ``batch + (dim,)`` or ``batch + (k, dim)``.
    :param int pred_batch_size: process the samples in chunks of this size to save
        memory (same result).
    :return: a tensor shaped ``batch`` (resp. ``batch + (k,)``).
    """
    if pred.dim() == truth.dim() + 1:
        squeeze = True
        truth = truth.unsqueeze(-2)
    elif pred.dim() == truth.dim():
        squeeze = False
    else:
        raise ValueError(
            "energy_score_empirical expects pred to have at most one extra dim versus "
            f"truth; got pred {pred.shape} and truth {truth.shape}"
        )
    n = pred.size(-2)
    if pred_batch_size is None:
        to_truth = torch.cdist(pred, truth).mean(dim=-2)
        spread = torch.cdist(pred, pred).mean(dim=[-1, -2])
    else:
        chunks = torch.split(pred, pred_batch_size, dim=-2)
        to_truth = torch.zeros_like(truth[..., 0])
        spread = torch.zeros_like(pred[..., 0, 0])
        for a in chunks:
            to_truth = to_truth + torch.cdist(a, truth).sum(dim=-2)
            for b in chunks:
                spread = spread + torch.cdist(a, b).sum(dim=[-1, -2])
        to_truth = to_truth / n
        spread = spread / (n * n)
    out = to_truth - 0.5 * spread.unsqueeze(-1)
    if squeeze:
        out = out.squeeze(-1)
    return out
