"""Goodness-of-fit tests: do a distribution's samples follow its density?

Each test returns a p-value: for samples drawn from the density it is (close
to) ``Uniform(0, 1)``-distributed, for samples that do not follow the density
it is close to zero. A test suite asserts ``gof > failure_rate`` with a
failure rate far below ``1 / (number of such tests)``.

How the tests work:

* discrete data: :func:`multinomial_goodness_of_fit`, Pearson's chi-squared
  test of counts against probabilities;
* continuous data on the line: :func:`density_goodness_of_fit`. Sorted
  samples ``x_(1) <= ... <= x_(n)`` leave gaps whose probability mass
  ``n * p(x) * gap`` is approximately ``Exponential(1)``-distributed, with the
  density ``p`` taken as the harmonic mean at the two ends of a gap;
* continuous data in ``R^d``: :func:`vector_density_goodness_of_fit`. The
  distance ``r`` from a query sample to its nearest one among ``m`` other
  samples leaves a ball whose probability mass ``m * p(x) * volume(r)`` is
  approximately ``Exponential(1)``-distributed;
* :func:`exp_goodness_of_fit` maps ``Exponential(1)`` values ``e`` to
  ``exp(-e)``, which is ``Uniform(0, 1)``, and :func:`unif01_goodness_of_fit`
  bins those and applies Pearson's test.

Example::

    >>> import torch, ember.distributions as dist
    >>> _ = torch.manual_seed(0)
    >>> d = dist.Gamma(2.0, 3.0)
    >>> x = d.sample((5000,))
    >>> auto_goodness_of_fit(x, d.log_prob(x).exp()) > 1e-3
    True
    >>> wrong = dist.Gamma(2.0, 2.5)  # a density the samples do not follow
    >>> auto_goodness_of_fit(x, wrong.log_prob(x).exp()) < 1e-3
    True
"""

from __future__ import annotations

import math

import torch

from ember.distributions.testing.special import chi2sf

__all__ = [
    "HISTOGRAM_WIDTH",
    "InvalidTest",
    "auto_goodness_of_fit",
    "density_goodness_of_fit",
    "exp_goodness_of_fit",
    "get_nearest_neighbor_distances",
    "kolmogorov_sf",
    "multinomial_goodness_of_fit",
    "print_histogram",
    "unif01_goodness_of_fit",
    "vector_density_goodness_of_fit",
    "volume_of_sphere",
]

#: Width in characters of the longest bar that :func:`print_histogram` draws.
HISTOGRAM_WIDTH = 60

#: Pearson's statistic is close to chi-squared only when each bucket expects
#: this many counts; smaller buckets are pooled.
MIN_EXPECTED_COUNT = 5.0


class InvalidTest(ValueError):
    """The test cannot give a reliable p-value for this input (usually: too few samples)."""


def print_histogram(probs, counts) -> None:
    """Print expected probabilities and observed counts as a text histogram, largest first.

    Example::

        >>> print_histogram([0.75, 0.25], [8, 2])
            prob    count
           0.750        8 ############################################################
           0.250        2 ###############
    """
    probs = [float(p) for p in probs]
    counts = [int(c) for c in counts]
    top = max(max(counts, default=0), 1)
    print(f"{'prob':>8} {'count':>8}")
    for p, c in sorted(zip(probs, counts), reverse=True):
        bar = "#" * int(round(HISTOGRAM_WIDTH * c / top))
        print(f"{p:>8.3f} {c:>8d} {bar}")


def _as_vector(name, x) -> torch.Tensor:
    x = torch.as_tensor(x).detach().cpu().to(torch.float64)
    if x.dim() != 1:
        raise ValueError(f"{name} must be a vector, got shape {tuple(x.shape)}")
    return x


@torch.no_grad()
def multinomial_goodness_of_fit(probs, counts, *, total_count=None, plot: bool = False) -> float:
    """Pearson's chi-squared test of observed ``counts`` against category ``probs``.

    The data may be truncated: when the counts list only some categories (the
    probabilities then sum to less than one), ``total_count`` gives the total
    number of draws, and the unlisted categories form one more bucket holding
    the rest of the probability and of the draws. Buckets expecting fewer than
    :data:`MIN_EXPECTED_COUNT` draws are pooled, smallest first, so that the
    statistic is close to chi-squared.

    :param probs: vector of category probabilities (tensor or sequence).
    :param counts: vector of observed counts, same length.
    :param int total_count: total number of draws, if the counts are
        truncated; defaults to ``counts.sum()``.
    :param bool plot: print a histogram of probabilities and counts.
    :returns: the p-value (a float in [0, 1]).
    :raises InvalidTest: if too few draws are left to test after pooling.

    Example::

        >>> import torch
        >>> probs = torch.tensor([0.5, 0.3, 0.2])
        >>> round(multinomial_goodness_of_fit(probs, torch.tensor([500, 300, 200])), 6)
        1.0
        >>> multinomial_goodness_of_fit(probs, torch.tensor([400, 400, 200])) < 1e-6
        True
    """
    probs = _as_vector("probs", probs)
    counts = _as_vector("counts", counts)
    if probs.shape != counts.shape:
        raise ValueError(
            f"probs and counts must have the same shape, got {tuple(probs.shape)} "
            f"and {tuple(counts.shape)}"
        )
    if (probs < 0).any() or (counts < 0).any() or probs.isnan().any() or counts.isnan().any():
        raise ValueError("probs and counts must be nonnegative numbers")
    observed_total = float(counts.sum())
    total = observed_total if total_count is None else float(total_count)
    if total < observed_total:
        raise ValueError(
            f"total_count={total_count} is less than the sum of the counts ({observed_total:g})"
        )
    rest_prob = 1.0 - float(probs.sum())
    if rest_prob < -1e-5:
        raise ValueError(
            f"probs sum to {1 - rest_prob:.6g} > 1; pass probabilities of distinct categories"
        )
    if plot:
        print_histogram(probs.tolist(), counts.tolist())
    expected = (probs * total).tolist()
    observed = counts.tolist()
    rest_count = total - observed_total
    if rest_prob > 1e-12 or rest_count > 0:  # the categories not listed
        expected.append(max(rest_prob, 0.0) * total)
        observed.append(rest_count)
    buckets = []
    for e, o in zip(expected, observed):
        if e <= 0:
            if o > 0:
                return 0.0  # a draw of a category with probability zero
            continue
        buckets.append((e, o))
    if len(buckets) == 1:  # one category holds all the probability
        return 1.0 if buckets[0][1] == total else 0.0
    # Pool the smallest buckets until each expects enough draws.
    buckets.sort()
    pooled_e = pooled_o = 0.0
    while buckets and buckets[0][0] < MIN_EXPECTED_COUNT:
        e, o = buckets.pop(0)
        pooled_e += e
        pooled_o += o
    if pooled_e > 0:
        if pooled_e < MIN_EXPECTED_COUNT and buckets:  # too small on its own: join the next
            e, o = buckets.pop(0)
            pooled_e += e
            pooled_o += o
        buckets.append((pooled_e, pooled_o))
    if len(buckets) < 2 or min(e for e, _ in buckets) < MIN_EXPECTED_COUNT:
        raise InvalidTest(
            f"multinomial_goodness_of_fit: {total:g} draws are too few to test these "
            f"probabilities (each bucket should expect >= {MIN_EXPECTED_COUNT:g} draws); "
            "use more samples"
        )
    chi2 = sum((o - e) ** 2 / e for e, o in buckets)
    return chi2sf(chi2, len(buckets) - 1)


@torch.no_grad()
def unif01_goodness_of_fit(samples, *, plot: bool = False) -> float:
    """Test that ``samples`` are ``Uniform(0, 1)``: Pearson's test on equal-width bins.

    About ``n ** (1/3)`` bins are used for ``n`` samples; at least 7 are
    needed (so ``n >= 343``).

    :param samples: vector of values in [0, 1].
    :param bool plot: print a histogram of the bins.
    :returns: the p-value.
    :raises InvalidTest: if there are too few samples.

    Example::

        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> unif01_goodness_of_fit(torch.rand(10000)) > 1e-3
        True
        >>> unif01_goodness_of_fit(torch.rand(10000) ** 1.1) < 1e-3
        True
    """
    samples = _as_vector("samples", samples)
    if samples.isnan().any() or (samples < 0).any() or (samples > 1).any():
        raise ValueError("unif01_goodness_of_fit needs samples in [0, 1] (and no NaN)")
    n = samples.numel()
    bins = int(round(n ** (1.0 / 3.0)))
    if bins < 7:
        raise InvalidTest(
            f"unif01_goodness_of_fit: {n} samples give only {bins} bins (need 7); use more samples"
        )
    index = (samples * bins).long().clamp_(0, bins - 1)
    counts = torch.bincount(index, minlength=bins)
    probs = torch.full((bins,), 1.0 / bins, dtype=torch.float64)
    return multinomial_goodness_of_fit(probs, counts, plot=plot)


@torch.no_grad()
def exp_goodness_of_fit(samples, plot: bool = False) -> float:
    """Test that ``samples`` are ``Exponential(1)``: ``exp(-x)`` must be ``Uniform(0, 1)``.

    :param samples: vector of nonnegative values.
    :param bool plot: print a histogram of the bins.
    :returns: the p-value.

    Example::

        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> x = torch.distributions.Exponential(1.0).sample((10000,))
        >>> exp_goodness_of_fit(x) > 1e-3, exp_goodness_of_fit(0.9 * x) < 1e-3
        (True, True)
    """
    samples = _as_vector("samples", samples)
    if samples.isnan().any() or (samples < 0).any():
        raise ValueError("exp_goodness_of_fit needs nonnegative samples (and no NaN)")
    return unif01_goodness_of_fit(torch.exp(-samples), plot=plot)


def _check_probs(samples, probs):
    if probs.shape != samples.shape[:1]:
        raise ValueError(
            f"probs must hold one density per sample: expected shape {tuple(samples.shape[:1])}, "
            f"got {tuple(probs.shape)}"
        )
    if probs.isnan().any():
        raise ValueError(
            f"{int(probs.isnan().sum())} densities are NaN; evaluate the density at the samples "
            "with log_prob(samples).exp()"
        )
    if (probs < 0).any():
        raise ValueError("densities must be nonnegative")


@torch.no_grad()
def density_goodness_of_fit(samples, probs, plot: bool = False) -> float:
    """Test that real-valued ``samples`` follow the density whose values at them are ``probs``.

    The samples are sorted; each gap between neighbours, times ``n`` and the
    density there (harmonic mean of its two ends), is approximately
    ``Exponential(1)``; :func:`exp_goodness_of_fit` tests those.

    :param samples: vector of samples.
    :param probs: vector of the density at each sample (``log_prob(x).exp()``).
    :param bool plot: print a histogram of the bins.
    :returns: the p-value.
    :raises InvalidTest: with 100 samples or fewer.

    Example::

        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> x = torch.randn(10000)
        >>> normal = torch.distributions.Normal(0.0, 1.0)
        >>> density_goodness_of_fit(x, normal.log_prob(x).exp()) > 1e-3
        True
    """
    samples = _as_vector("samples", samples)
    probs = _as_vector("probs", probs)
    _check_probs(samples, probs)
    n = samples.numel()
    if n <= 100:
        raise InvalidTest(f"density_goodness_of_fit: {n} samples are too few; use more than 100")
    samples, order = samples.sort()
    probs = probs[order]
    gaps = samples[1:] - samples[:-1]
    mean_inverse_density = 0.5 * (1.0 / probs[1:] + 1.0 / probs[:-1])
    gap_masses = gaps / mean_inverse_density
    gap_masses = torch.where(gaps == 0, torch.zeros_like(gap_masses), gap_masses)  # ties
    local = exp_goodness_of_fit(n * gap_masses, plot=plot)
    # The gaps' masses add up to the distribution function: compare it with the
    # empirical one (Kolmogorov-Smirnov), which catches a wrong scale or location
    # that leaves the local test nearly blind. Bonferroni keeps the combined rate.
    cdf = torch.cat([gap_masses.new_zeros(1), gap_masses.cumsum(0)])
    steps = torch.arange(n, dtype=torch.float64)
    distance = float(torch.maximum((cdf - steps / n).abs(), (cdf - (steps + 1) / n).abs()).max())
    return min(1.0, 2.0 * min(local, kolmogorov_sf(distance, n)))


def kolmogorov_sf(distance: float, n: int) -> float:
    """P-value of the Kolmogorov-Smirnov distance ``distance`` between ``n`` samples and a CDF.

    Uses the asymptotic Kolmogorov distribution at ``(sqrt(n) + 0.12 +
    0.11 / sqrt(n)) * distance`` (Stephens' small-sample correction).

    Example::

        >>> round(kolmogorov_sf(1.358 / math.sqrt(10000), 10000), 2)  # the 5% point
        0.05
    """
    root = math.sqrt(n)
    t = (root + 0.12 + 0.11 / root) * distance
    if t <= 0:
        return 1.0
    if t < 1.0:  # the series in exp(-1/t^2) converges fast here
        cdf = (
            math.sqrt(2 * math.pi)
            / t
            * sum(math.exp(-((2 * k - 1) ** 2) * math.pi**2 / (8 * t * t)) for k in range(1, 8))
        )
        return min(1.0, max(0.0, 1.0 - cdf))
    sf = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * t * t) for k in range(1, 101))
    return min(1.0, max(0.0, sf))


def volume_of_sphere(dim: int, radius):
    """Volume of the ``dim``-dimensional ball of radius ``radius``.

    It is ``pi^(d/2) r^d / Gamma(d/2 + 1)``.

    Example::

        >>> round(volume_of_sphere(3, 1.0), 6) == round(4 / 3 * math.pi, 6)
        True
    """
    return radius**dim * math.pi ** (0.5 * dim) / math.gamma(0.5 * dim + 1)


def get_nearest_neighbor_distances(samples: torch.Tensor, references=None) -> torch.Tensor:
    """Distance from each row of ``samples`` (shape ``(n, d)``) to its nearest neighbour.

    The neighbour is the nearest *other* row of ``samples``, or, if
    ``references`` (shape ``(m, d)``) is given, the nearest row of
    ``references``. Uses a k-d tree from scipy when scipy is installed
    (``O(n log n)``), else blocks of pairwise distances (``O(n m)`` time,
    bounded memory).

    Example::

        >>> x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [3.0, 5.0]])
        >>> get_nearest_neighbor_distances(x)
        tensor([5., 1., 1.], dtype=torch.float64)
        >>> get_nearest_neighbor_distances(x, torch.tensor([[0.0, 1.0]]))
        tensor([1.0000, 4.2426, 5.0000], dtype=torch.float64)
    """
    samples = torch.as_tensor(samples).detach().cpu().to(torch.float64)
    if samples.dim() != 2:
        raise ValueError(f"samples must have shape (n, d), got {tuple(samples.shape)}")
    if references is None:
        if samples.shape[0] < 2:
            raise ValueError("need at least 2 samples to find nearest neighbours")
        others, k = samples, 2  # each row's nearest is itself: take the second nearest
    else:
        others = torch.as_tensor(references).detach().cpu().to(torch.float64)
        if others.dim() != 2 or others.shape[-1] != samples.shape[-1] or not len(others):
            raise ValueError(
                f"references must have shape (m, {samples.shape[-1]}) with m >= 1, "
                f"got {tuple(others.shape)}"
            )
        k = 1
    try:
        from scipy.spatial import cKDTree  # optional: only for speed
    except ImportError:
        cKDTree = None
    if cKDTree is not None:
        distances, _ = cKDTree(others.numpy()).query(samples.numpy(), k=k)
        if k == 2:
            distances = distances[:, 1]
        return torch.from_numpy(distances.copy()).reshape(-1)
    out = []
    block = max(1, 2**24 // max(1, others.shape[0]))
    for start in range(0, samples.shape[0], block):
        rows = samples[start : start + block]
        d = torch.cdist(rows, others)
        if k == 2:
            d[torch.arange(rows.shape[0]), torch.arange(start, start + rows.shape[0])] = math.inf
        out.append(d.min(-1).values)
    return torch.cat(out)


@torch.no_grad()
def vector_density_goodness_of_fit(samples, probs, *, dim=None, plot: bool = False) -> float:
    """Test that vector ``samples`` (shape ``(n, d)``) follow the density given by ``probs``.

    Every fifth sample is a query, the other ``m`` are references. The
    ball around a query ``x`` reaching its nearest reference has probability
    mass about ``m * p(x) * volume(r)``, approximately
    ``Exponential(1)``-distributed. Three checks of those masses are combined
    (Bonferroni): their distribution (:func:`exp_goodness_of_fit`), and, with
    the queries grouped by density level and by each coordinate, that half of
    each group's masses lie below ``log(2)`` (the median of ``Exponential(1)``),
    which catches a density that is off by a scale or a shift.

    Only queries whose density lies between the 10% and 90% quantiles of the
    references' densities are used: in the densest places a ball may reach
    into a singularity of the density (a Dirichlet with a concentration below
    one has them on the simplex's edges), in the sparsest the density changes
    too much across a ball; either way ``p(x) * volume(r)`` misjudges its
    mass. For data on a ``dim``-dimensional submanifold of ``R^d`` (a sphere,
    a simplex written in ``d`` coordinates), pass ``dim`` and a density with
    respect to that manifold's volume.

    The p-value is approximate: nearest-neighbour balls are small but not
    infinitesimal, so in high dimension (``dim >= 4``) expect somewhat more
    small p-values than a uniform distribution gives.

    :param samples: tensor of shape ``(n, d)``.
    :param probs: vector of the density at each sample.
    :param int dim: dimension of the manifold the data lie on; defaults to ``d``.
    :param bool plot: print a histogram of the bins.
    :returns: the p-value.
    :raises InvalidTest: unless ``n > 1000 * dim``.

    Example::

        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> x = torch.randn(5000, 2)
        >>> d = torch.distributions.Normal(0.0, 1.0)
        >>> vector_density_goodness_of_fit(x, d.log_prob(x).sum(-1).exp()) > 1e-3
        True
        >>> wider = torch.distributions.Normal(0.0, 1.3)
        >>> vector_density_goodness_of_fit(x, wider.log_prob(x).sum(-1).exp()) < 1e-3
        True
    """
    samples = torch.as_tensor(samples).detach().cpu().to(torch.float64)
    if samples.dim() != 2:
        raise ValueError(f"samples must have shape (n, d), got {tuple(samples.shape)}")
    probs = _as_vector("probs", probs)
    _check_probs(samples, probs)
    if dim is None:
        dim = samples.shape[-1]
    if not (isinstance(dim, int) and dim >= 1):
        raise ValueError(f"dim must be a positive int, got {dim!r}")
    n = samples.shape[0]
    if n <= 1000 * dim:
        raise InvalidTest(
            f"vector_density_goodness_of_fit: {n} samples are too few in dimension {dim}; "
            f"use more than {1000 * dim}"
        )
    # Queries against many references give nearly independent masses (all
    # samples against each other would pair up mutual neighbours and share one
    # random layout, inflating the statistic).
    # Every fifth sample is a query (interleaved rather than a leading block, which
    # showed more dependence on samplers that fill the batch in blocks).
    is_query = torch.arange(n) % 5 == 0
    queries, references = samples[is_query], samples[~is_query]
    query_probs, reference_probs = probs[is_query], probs[~is_query]
    # The band of densities is judged by the references, so whether a query is
    # used depends on its own position only: the kept masses keep their law.
    levels = torch.tensor([0.1, 0.9], dtype=reference_probs.dtype)
    low, high = torch.quantile(reference_probs, levels).tolist()
    keep = (query_probs >= low) & (query_probs <= high)
    queries, query_probs = queries[keep], query_probs[keep]
    radii = get_nearest_neighbor_distances(queries, references)
    masses = references.shape[0] * query_probs * volume_of_sphere(dim, radii)
    p_values = [exp_goodness_of_fit(masses, plot=plot), _median_test(masses, query_probs)]
    p_values += [_median_test(masses, queries[:, j]) for j in range(queries.shape[1])]
    return min(1.0, len(p_values) * min(p_values))


_MEDIAN_GROUPS = 8


def _median_test(masses, key):
    """P-value that each of 8 groups of ``masses`` (split by ``key``) has median log(2)."""
    groups = key.argsort().chunk(_MEDIAN_GROUPS)
    below = masses < math.log(2.0)
    stat = sum(
        (float(below[g].sum()) - 0.5 * len(g)) ** 2 / (0.25 * len(g)) for g in groups if len(g)
    )
    return chi2sf(stat, sum(1 for g in groups if len(g)))


@torch.no_grad()
def auto_goodness_of_fit(samples, probs, *, dim=None, plot: bool = False) -> float:
    """Goodness of fit of ``samples`` (stacked on dim 0) to the densities ``probs`` at them.

    Samples of one real value go to :func:`density_goodness_of_fit`, samples
    with several values (flattened to vectors) to
    :func:`vector_density_goodness_of_fit`; samples with no values (an empty
    event shape that holds nothing) trivially fit (``1.0``).

    :param samples: tensor of shape ``(n,) + event_shape``.
    :param probs: vector of the density at each sample.
    :param int dim: dimension of the manifold the data lie on; defaults to the
        number of values in a sample.
    :param bool plot: print a histogram of the bins.
    :returns: the p-value.

    Example::

        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> d = torch.distributions.Dirichlet(torch.tensor([2.0, 3.0, 4.0]))
        >>> x = d.sample((5000,))
        >>> auto_goodness_of_fit(x[:, :2], d.log_prob(x).exp()) > 1e-3  # 2 free coordinates
        True
    """
    samples = torch.as_tensor(samples)
    probs = torch.as_tensor(probs)
    if samples.dim() == 0 or samples.shape[0] == 0:
        raise ValueError(f"samples must be stacked on dim 0, got shape {tuple(samples.shape)}")
    if probs.shape != samples.shape[:1]:
        raise ValueError(
            f"probs must hold one density per sample: expected shape {tuple(samples.shape[:1])}, "
            f"got {tuple(probs.shape)}"
        )
    samples = samples.reshape(samples.shape[0], -1)
    ambient_dim = samples.shape[1]
    if ambient_dim == 0:
        return 1.0
    if dim is None:
        dim = ambient_dim
    if ambient_dim == 1:
        return density_goodness_of_fit(samples.reshape(-1), probs, plot=plot)
    return vector_density_goodness_of_fit(samples, probs, dim=dim, plot=plot)
