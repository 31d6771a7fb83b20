"""A normalizing flow fitted to the two-moons density, by SVI on its likelihood.

The two-moons density (two interleaved noisy half circles) is the classic 2-D
test of density estimators: a single Gaussian cannot follow its curved,
two-piece shape. The flow is a stack of deep sigmoidal flows (Huang et al.
2018) with the coordinates swapped between them, applied in the density
direction: ``log p(x) = log N(f(x); 0, I) + log|det df/dx|``. The model
observes the data under the flow's distribution; the guide is empty, so SVI
maximizes the likelihood of the flow's parameters.
"""

from __future__ import annotations

import math
from typing import List

import torch

import ember
import ember.distributions as dist
from ember.demo.common import (
    Check,
    DemoConfig,
    DemoResult,
    Timer,
    format_table,
    gaussian_log_likelihood,
    loss_curve,
    pyplot,
    save_figure,
    section,
)
from ember.distributions import transforms as T
from ember.infer import SVI, Trace_ELBO
from ember.infer.progress import progress_loop
from ember.optim import Adam

__all__ = ["two_moons", "Flow", "run"]


def two_moons(n: int, noise: float = 0.1, seed: int = 0) -> torch.Tensor:
    """``n`` points from the two-moons density (seeded; shape ``(n, 2)``).

    Example::

        >>> from ember.demo.flow_moons import two_moons
        >>> two_moons(5).shape
        torch.Size([5, 2])
    """
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g) * math.pi
    upper = torch.rand(n, generator=g) < 0.5
    x = torch.where(upper, t.cos(), 1.0 - t.cos())
    y = torch.where(upper, t.sin(), 0.5 - t.sin())
    return torch.stack([x, y], -1) + noise * torch.randn(n, 2, generator=g)


class Flow(torch.nn.Module):
    """A density on R^2: flow layers with coordinate swaps, in density direction.

    ``kind`` is ``"deep_sigmoidal"`` (deep sigmoidal flows with ``hidden_units``
    sigmoids each) or ``"spline_coupling"`` (rational-spline coupling layers
    with ``count_bins`` bins); ``hidden`` is the width of the networks' two
    hidden layers.

    Example::

        >>> import torch
        >>> from ember.demo.flow_moons import Flow
        >>> Flow(kind="spline_coupling").log_prob(torch.zeros(4, 2)).shape
        torch.Size([4])
    """

    KINDS = ("deep_sigmoidal", "spline_coupling")

    def __init__(
        self,
        num_layers: int = 3,
        hidden: int = 32,
        hidden_units: int = 16,
        kind: str = "deep_sigmoidal",
        count_bins: int = 8,
    ):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"Flow: kind={kind!r} is not one of {self.KINDS}")
        if kind == "spline_coupling":
            layers = [
                T.spline_coupling(2, hidden_dims=[hidden, hidden], count_bins=count_bins)
                for _ in range(num_layers)
            ]
        else:
            layers = [
                T.deep_sigmoidal(2, [hidden, hidden], hidden_units=hidden_units)
                for _ in range(num_layers)
            ]
        self.layers = torch.nn.ModuleList(layers)
        self.swap = T.PermuteTransform(torch.tensor([1, 0]))

    def distribution(self, like: torch.Tensor) -> dist.TransformedDistribution:
        """The flow's distribution: base N(0, I) mapped by the inverse of the data->noise map."""
        base = dist.Normal(like.new_zeros(2), 1.0).to_event(1)
        data_to_noise = []
        for layer in self.layers:
            data_to_noise += [layer, self.swap]
        # TransformedDistribution maps base -> data, i.e. the inverse of data -> noise
        return dist.TransformedDistribution(base, [t.inv for t in reversed(data_to_noise)])

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density at ``x`` (shape ``(..., 2)``)."""
        # a fresh view of x: each flow caches its last input, and the data tensor
        # is the same object at every step
        return self.distribution(x).log_prob(x.view_as(x))

    def model(self, x: torch.Tensor, index: torch.Tensor, size: int) -> None:
        """Minibatch ``x`` (rows ``index`` of a data set of ``size`` points) under the flow."""
        ember.module("flow", self)
        with ember.plate("points", size, subsample=index):
            ember.sample("x", self.distribution(x), obs=x.view_as(x))

    def guide(self, x: torch.Tensor, index: torch.Tensor, size: int) -> None:
        """No latent variables: SVI maximizes the likelihood."""


def run(config: DemoConfig) -> DemoResult:
    """Fit, print held-out log-likelihoods and the check, and plot the density."""
    train, test = two_moons(2000, seed=config.seed), two_moons(1000, seed=config.seed + 1)
    mean, std = train.mean(0), train.std(0)
    train, test = (train - mean) / std, (test - mean) / std
    steps = config.steps(400, 100)
    section(
        "Normalizing flow on the two-moons density",
        [
            "data: 2000 points from two interleaved noisy half circles (standardized); "
            "1000 held out",
            "model: x ~ N(0, I) pushed through 3 deep sigmoidal flows with coordinate swaps",
            "inference: SVI with Trace_ELBO (no latents: maximum likelihood), minibatches of "
            f"500 from a subsampled plate, Adam, {steps} steps",
        ],
    )
    ember.set_rng_seed(config.seed)
    ember.clear_param_store()
    flow = Flow()
    svi = SVI(flow.model, flow.guide, Adam({"lr": 5e-3}), Trace_ELBO())
    n, batch = train.shape[0], 500

    def step() -> float:
        index = torch.randint(0, n, (batch,))
        return svi.step(train[index], index, n) / n

    with Timer() as timer:
        losses = progress_loop(
            step,
            steps,
            desc="two-moons flow",
            disable=config.disable_progress,
        )
        with torch.no_grad():
            flow_ll = float(flow.log_prob(test).mean())
    gauss_ll = float(gaussian_log_likelihood(train, test).mean())
    print(f"   wall time {timer.seconds:.1f} s")
    print("   held-out log-likelihood per point (standardized units):")
    print(
        format_table(
            ["model", "held-out"],
            [["flow (SVI)", flow_ll], ["single Gaussian (closed form)", gauss_ll]],
            indent=5,
        )
    )
    margin = 0.3 if config.quick else 0.6
    checks = [
        Check(
            f"flow held-out log-likelihood {flow_ll:.3f} above the single Gaussian's "
            f"{gauss_ll:.3f} by more than {margin} nats per point",
            flow_ll - gauss_ll > margin,
        )
    ]
    result = DemoResult("flow_moons", timer.seconds, checks)
    loss_curve(
        config,
        losses,
        "Two-moons flow: negative log-likelihood per point",
        "flow_moons_loss.png",
        result.figures,
        ylabel="loss per point",
    )
    _plot(config, flow, train, result.figures)
    return result


def _plot(config: DemoConfig, flow: Flow, train: torch.Tensor, figures: List) -> None:
    plt = pyplot()
    if plt is None or config.out_dir is None:
        return
    grid = torch.linspace(-2.5, 2.5, 120)
    xx, yy = torch.meshgrid(grid, grid, indexing="xy")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], -1)
    with torch.no_grad():
        dens = flow.log_prob(pts).exp().view(120, 120)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 4))
    ax1.scatter(train[:, 0], train[:, 1], s=2, alpha=0.5)
    ax1.set_title("training data (standardized)")
    ax2.imshow(dens.tolist(), origin="lower", extent=(-2.5, 2.5, -2.5, 2.5), cmap="viridis")
    ax2.set_title("fitted flow density")
    for ax in (ax1, ax2):
        ax.set_xlim(-2.5, 2.5)
        ax.set_ylim(-2.5, 2.5)
        ax.set_aspect("equal")
    save_figure(fig, config, "flow_moons_density.png", figures)
