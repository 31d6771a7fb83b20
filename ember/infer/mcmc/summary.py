"""Summaries and convergence diagnostics of MCMC draws.

Draws come as a dict from site name to a tensor shaped ``(num_chains, num_samples) +
site_shape`` (``group_by_chain=True``) or ``(num_samples,) + site_shape`` (a single
chain, ``group_by_chain=False``). The effective sample size ``n_eff`` and split R-hat
``r_hat`` are those of :mod:`ember.ops.stats`.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Dict, Mapping, Optional

import torch

from ember.ops import stats

__all__ = [
    "diagnostics",
    "diagnostics_from_stats",
    "print_summary",
    "select_samples",
    "summary",
]


def _grouped(samples: Mapping[str, torch.Tensor], group_by_chain: bool) -> Dict[str, torch.Tensor]:
    if not isinstance(samples, Mapping):
        raise TypeError(
            f"samples must be a dict from site name to tensor, got {type(samples).__name__}"
        )
    out = {}
    for name, value in samples.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"samples[{name!r}] must be a tensor, got {type(value).__name__}")
        need = 2 if group_by_chain else 1
        if value.dim() < need:
            raise ValueError(
                f"samples[{name!r}] has shape {tuple(value.shape)}; with "
                f"group_by_chain={group_by_chain} it needs a leading "
                + ("(num_chains, num_samples)" if group_by_chain else "(num_samples,)")
                + " shape"
            )
        out[name] = value if group_by_chain else value.unsqueeze(0)
    return out


def _nan_on_failure(fn, name: str, value: torch.Tensor) -> torch.Tensor:
    """``fn(value)``, or NaNs shaped like a site value (with a warning naming the site)
    when the diagnostic cannot be computed, e.g. for a chain of a single draw."""
    try:
        return fn(value)
    except (ValueError, RuntimeError) as e:
        warnings.warn(f"{fn.__name__} of site {name!r} could not be computed: {e}", stacklevel=3)
        return torch.full(value.shape[2:], float("nan"), dtype=value.dtype, device=value.device)


def diagnostics(samples: Mapping[str, torch.Tensor], group_by_chain: bool = True) -> dict:
    """The effective sample size and split R-hat of every site.

    :param dict samples: draws by site name.
    :param bool group_by_chain: whether the draws have a leading chain dim.
    :return: ``{site: {"n_eff": tensor, "r_hat": tensor}}`` (shaped as a site value).
    """
    out = {}
    for name, value in _grouped(samples, group_by_chain).items():
        if not value.is_floating_point():
            value = value.double()
        out[name] = {
            "n_eff": _nan_on_failure(stats.effective_sample_size, name, value),
            "r_hat": _nan_on_failure(stats.split_gelman_rubin, name, value),
        }
    return out


def diagnostics_from_stats(statistics: Mapping, num_samples: int, num_chains: int) -> dict:
    """R-hat (not split) from streaming per-chain statistics.

    :param dict statistics: ``{(chain_id, site): {"mean": ..., "variance": ...}}``, as
        collected by :class:`~ember.ops.streaming.CountMeanVarianceStats` per chain and
        site (entries without mean and variance are ignored).
    :param int num_samples: draws per chain.
    :param int num_chains: number of chains.
    :return: ``{site: {"r_hat": tensor}}``.
    """
    means, variances = {}, {}
    for key, stat in statistics.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"statistics keys must be (chain_id, site) pairs, got {key!r}")
        if "mean" in stat and "variance" in stat:
            means.setdefault(key[1], []).append(stat["mean"])
            variances.setdefault(key[1], []).append(stat["variance"])
    out = {}
    n = num_samples
    for name in means:
        m, v = torch.stack(means[name]), torch.stack(variances[name])
        within = v.mean(0)
        pooled = within * ((n - 1) / n)
        if num_chains > 1:
            pooled = pooled + m.var(0)
        else:
            within = pooled
        out[name] = {"r_hat": (pooled / within).sqrt()}
    return out


def _interval_names(prob: float):
    return f"{50 * (1 - prob):.1f}%", f"{50 * (1 + prob):.1f}%"


def summary(
    samples: Mapping[str, torch.Tensor], prob: float = 0.9, group_by_chain: bool = True
) -> dict:
    """Per-site summary statistics of MCMC draws (pooled over chains): mean, standard
    deviation, median, the highest posterior density interval of mass ``prob``
    (keyed by its percent bounds, ``"5.0%"`` and ``"95.0%"`` for ``prob=0.9``), the
    effective sample size ``n_eff`` and split R-hat ``r_hat``.

    :param dict samples: draws by site name.
    :param float prob: mass of the interval.
    :param bool group_by_chain: whether the draws have a leading chain dim.
    :return: ``{site: {"mean", "std", "median", "5.0%", "95.0%", "n_eff", "r_hat"}}``,
        each value shaped as the site.

    Example::

        >>> draws = {"x": torch.arange(8.0).reshape(2, 4)}
        >>> s = summary(draws, prob=0.5)["x"]
        >>> list(s)
        ['mean', 'std', 'median', '25.0%', '75.0%', 'n_eff', 'r_hat']
        >>> s["mean"], s["25.0%"], s["75.0%"]
        (tensor(3.5000), tensor(0.), tensor(4.))
    """
    if not 0 < prob < 1:
        raise ValueError(f"summary: prob must be in (0, 1), got {prob}")
    lower, upper = _interval_names(prob)
    grouped = _grouped(samples, group_by_chain)
    diag = diagnostics(grouped, group_by_chain=True)
    out = {}
    for name, value in grouped.items():
        if not value.is_floating_point():
            value = value.double()
        flat = value.reshape((-1,) + value.shape[2:])
        interval = stats.hpdi(flat, prob=prob)
        out[name] = {
            "mean": flat.mean(0),
            "std": flat.std(0),
            "median": flat.median(0).values,
            lower: interval[0],
            upper: interval[1],
            "n_eff": diag[name]["n_eff"],
            "r_hat": diag[name]["r_hat"],
        }
    return out


def print_summary(
    samples: Mapping[str, torch.Tensor], prob: float = 0.9, group_by_chain: bool = True
) -> None:
    """Print :func:`summary` as a table, one row per scalar component (``name[i,j]``
    for a site with a shape), columns ``mean std median 5.0% 95.0% n_eff r_hat``.

    Example::

        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <...>
        >>> print_summary({"mu": torch.randn(2, 100)})  # doctest: +NORMALIZE_WHITESPACE
        <BLANKLINE>
                        mean       std    median      5.0%     95.0%     n_eff     r_hat
                mu     -0.02      0.97     -0.03     -1.70      1.39    172.07      1.00
        <BLANKLINE>
    """
    if not samples:
        return
    table = summary(samples, prob, group_by_chain)
    shapes = {k: v.shape[2 if group_by_chain else 1 :] for k, v in samples.items()}
    # the label column fits "name[i,j]" of the last component ("name[]" for scalars)
    longest_label = max(
        len(k) + len(",".join(str(s - 1) for s in shape)) + 2 for k, shape in shapes.items()
    )
    width = max(longest_label, 10)
    columns = list(next(iter(table.values())))
    print()
    print(f"{'':>{width}}" + "".join(f" {c:>9}" for c in columns))
    for name, row in table.items():
        shape = row["mean"].shape
        for idx in itertools.product(*(range(s) for s in shape)):
            label = name + (f"[{','.join(map(str, idx))}]" if shape else "")
            values = "".join(f" {float(row[c][idx]):>9.2f}" for c in columns)
            print(f"{label:>{width}}{values}")
    print()


def select_samples(
    samples: Mapping[str, torch.Tensor],
    num_samples: Optional[int] = None,
    group_by_chain: bool = False,
) -> Dict[str, torch.Tensor]:
    """Select draws from ``{site: (num_chains, num_draws, ...)}`` samples.

    :param int num_samples: if given, that many draws chosen uniformly at random with
        replacement (the same indices for every site, so joint draws stay joint);
        otherwise all draws in order.
    :param bool group_by_chain: keep the chain dim (indices then pick draws within
        every chain); otherwise chains are concatenated.
    """
    if not group_by_chain:
        samples = {k: v.reshape((-1,) + v.shape[2:]) for k, v in samples.items()}
    else:
        samples = dict(samples)
    if num_samples is None:
        return samples
    if not samples:
        raise ValueError("select_samples: no samples to select from (did the MCMC run?)")
    dim = 1 if group_by_chain else 0
    first = next(iter(samples.values()))
    idx = torch.randint(0, first.shape[dim], (num_samples,), device=first.device)
    return {k: v.index_select(dim, idx) for k, v in samples.items()}
