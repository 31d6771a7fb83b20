"""Shared pieces of the demo: run settings, summary tables, checks, plots.

Every demo model is a module with a ``run(config) -> DemoResult`` function; it
prints its own section (what is fitted, the progress of the fit, a table and
the checks of its figures against published or exact values).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence

import torch

__all__ = [
    "Check",
    "DemoConfig",
    "DemoResult",
    "format_table",
    "gaussian_log_likelihood",
    "posterior_rows",
    "pyplot",
    "section",
    "Timer",
]


@dataclass
class DemoConfig:
    """How a demo runs: its size, its output folder, its progress display.

    :param quick: a run of seconds (fewer steps, smaller samples).
    :param out_dir: where PNG plots go (``None``: no plots).
    :param seed: the random seed every model starts from.
    :param progress: ``None`` (a bar on a terminal, plain lines otherwise) or
        ``False`` (no progress output), as ``progress_loop``'s ``disable``
        inverted.

    Example::

        >>> from ember.demo.common import DemoConfig
        >>> DemoConfig(quick=True).steps(1000, 100)
        100
    """

    quick: bool = False
    out_dir: Path | None = None
    seed: int = 0
    progress: bool | None = None

    def steps(self, full: int, quick: int) -> int:
        """The number of steps for this run: ``quick`` in a quick run, else ``full``."""
        return quick if self.quick else full

    @property
    def disable_progress(self) -> bool | None:
        """The ``disable`` argument for :func:`~ember.infer.progress.progress_loop`."""
        return None if self.progress is None else not self.progress


@dataclass
class Check:
    """A figure compared with a stated target; printed as ``[ok]`` or ``[FAILED]``.

    Example::

        >>> from ember.demo.common import Check
        >>> print(Check("mu mean 4.4 in [2.9, 5.9]", True))
        [ok] mu mean 4.4 in [2.9, 5.9]
    """

    description: str
    passed: bool

    def __str__(self) -> str:
        return f"[{'ok' if self.passed else 'FAILED'}] {self.description}"


@dataclass
class DemoResult:
    """What a demo reports back to the driver: its name, wall time, checks and plot files.

    Example::

        >>> from ember.demo.common import Check, DemoResult
        >>> r = DemoResult("toy", 0.5, [Check("1 + 1 == 2", 1 + 1 == 2)])
        >>> r.name, [str(c) for c in r.checks], r.figures
        ('toy', ['[ok] 1 + 1 == 2'], [])
    """

    name: str
    seconds: float
    checks: List[Check] = field(default_factory=list)
    figures: List[Path] = field(default_factory=list)


class Timer:
    """Wall time of a block, in seconds.

    Example::

        >>> from ember.demo.common import Timer
        >>> with Timer() as t:
        ...     pass
        >>> t.seconds >= 0
        True
    """

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start


def _fmt(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "nan"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3e}"
    return f"{value:.3f}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]], indent: int = 2) -> str:
    """Format rows as a plain-text table: first column left-aligned, numbers right-aligned.

    Example::

        >>> from ember.demo.common import format_table
        >>> print(format_table(["latent", "mean"], [["mu", 4.4], ["tau", 3.61]]))
          latent   mean
          mu      4.400
          tau     3.610
    """
    cells = [list(header)] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for r in cells:
        parts = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append(" " * indent + "  ".join(parts).rstrip())
    return "\n".join(lines)


def posterior_rows(samples: Dict[str, torch.Tensor]) -> List[List[object]]:
    """Rows ``[name, mean, sd, 5%, 95%]`` from posterior draws (first dim = draws).

    A site with more than one value per draw gives one row per value, named
    ``name[i]`` (or with the labels in ``samples["<name>.labels"]`` if given).

    Example::

        >>> import torch
        >>> from ember.demo.common import posterior_rows
        >>> rows = posterior_rows({"x": torch.arange(101.0)})
        >>> [round(v, 2) if isinstance(v, float) else v for v in rows[0]]
        ['x', 50.0, 29.3, 5.0, 95.0]
    """
    rows = []
    for name, value in samples.items():
        if name.endswith(".labels"):
            continue
        draws = value.detach().reshape(value.shape[0], -1).to(torch.float64)
        labels = samples.get(name + ".labels")
        q = torch.quantile(draws, torch.tensor([0.05, 0.95], dtype=draws.dtype), dim=0)
        mean, sd = draws.mean(0), draws.std(0)
        for i in range(draws.shape[1]):
            if draws.shape[1] == 1:
                label = name
            elif labels is not None:
                label = f"{name}[{labels[i]}]"
            else:
                label = f"{name}[{i}]"
            rows.append([label, float(mean[i]), float(sd[i]), float(q[0, i]), float(q[1, i])])
    return rows


def gaussian_log_likelihood(train: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
    """Per-point log-likelihood of ``test`` under the maximum-likelihood Gaussian of ``train``.

    The closed-form baseline the density demos compare their fits with.

    Example::

        >>> import torch
        >>> from ember.demo.common import gaussian_log_likelihood
        >>> x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
        >>> round(float(gaussian_log_likelihood(x, x.mean(0, keepdim=True))[0]), 4)  # -log(2 pi)
        -1.8379
    """
    mean = train.mean(0)
    cov = (train - mean).T @ (train - mean) / train.shape[0]
    return torch.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob(test)


def section(title: str, lines: Sequence[str] = ()) -> None:
    """Print a demo section header with a few lines of explanation.

    Example::

        >>> from ember.demo.common import section
        >>> section("Toy model", ["data: none"])
        <BLANKLINE>
        == Toy model
           data: none
    """
    print()
    print(f"== {title}")
    for line in lines:
        print(f"   {line}")


_PYPLOT = None


def pyplot():
    """matplotlib's pyplot with the file-only Agg backend, or ``None`` without matplotlib.

    Example::

        >>> from ember.demo.common import pyplot
        >>> plt = pyplot()
        >>> plt is None or plt.get_backend().lower() == "agg"
        True
    """
    global _PYPLOT
    if _PYPLOT is None:
        try:
            import matplotlib
        except ImportError:
            return None
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        _PYPLOT = plt
    return _PYPLOT


def save_figure(fig, config: DemoConfig, filename: str, figures: List[Path]) -> None:
    """Save ``fig`` as ``filename`` in the output folder and close it."""
    plt = pyplot()
    path = Path(config.out_dir) / filename
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    figures.append(path)


def loss_curve(
    config: DemoConfig,
    losses: Sequence[float],
    title: str,
    filename: str,
    figures: List[Path],
    ylabel: str = "loss (negative ELBO)",
) -> None:
    """Plot a loss history (raw and smoothed) to ``filename`` when plotting is on."""
    plt = pyplot()
    if plt is None or config.out_dir is None or not losses:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(losses) + 1), losses, lw=0.6, alpha=0.5, label="per step")
    window = max(1, len(losses) // 25)
    if window > 1:
        kernel = torch.ones(window) / window
        smooth = torch.nn.functional.conv1d(
            torch.tensor(losses, dtype=torch.float32).view(1, 1, -1), kernel.view(1, 1, -1)
        ).view(-1)
        ax.plot(range(window, len(losses) + 1), smooth.tolist(), lw=1.5, label="moving average")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    save_figure(fig, config, filename, figures)
