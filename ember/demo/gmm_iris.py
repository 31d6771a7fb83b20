"""A Gaussian mixture on Fisher's iris data, assignments summed out by TraceEnum_ELBO.

Three full-covariance Gaussian components on the four (standardized)
measurements. Each flower's component is a discrete latent marked for
parallel enumeration, so TraceEnum_ELBO sums it out exactly: the loss is the
negative log-likelihood of the data, and SVI fits the weights, means and
Cholesky factors by maximum likelihood. The fit is judged on 30 held-out
flowers against a single full-covariance Gaussian fitted in closed form.
"""

from __future__ import annotations

import math
from typing import Dict, List

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
from ember.demo.datasets import load_iris, train_test_split
from ember.distributions import constraints
from ember.infer import SVI, TraceEnum_ELBO, config_enumerate
from ember.infer.progress import progress_loop
from ember.optim import Adam

__all__ = ["model", "guide", "fit", "mixture_log_likelihood", "gaussian_log_likelihood", "run"]

NUM_COMPONENTS = 3


@config_enumerate
def model(x: torch.Tensor, init_locs: torch.Tensor = None) -> None:
    """Mixture of full-covariance Gaussians; the assignment is enumerated."""
    k, d = NUM_COMPONENTS, x.shape[-1]
    weights = ember.param("weights", x.new_ones(k) / k, constraint=constraints.simplex)
    locs = ember.param("locs", init_locs if init_locs is not None else x[:k].clone())
    scale_tril = ember.param(
        "scale_tril",
        torch.eye(d, dtype=x.dtype, device=x.device).expand(k, d, d).clone(),
        constraint=constraints.lower_cholesky,
    )
    with ember.plate("flowers", x.shape[0]):
        a = ember.sample("assignment", dist.Categorical(weights))
        ember.sample("x", dist.MultivariateNormal(locs[a], scale_tril=scale_tril[a]), obs=x)


def guide(x: torch.Tensor, init_locs: torch.Tensor = None) -> None:
    """Nothing to guess: the assignments are summed out, the rest are parameters."""


def fit(x: torch.Tensor, num_steps: int, seed: int = 0, disable_progress=None):
    """Fit the mixture by SVI with TraceEnum_ELBO; return ``(losses, elbo)``."""
    ember.set_rng_seed(seed)
    ember.clear_param_store()
    # start the component means at distinct data points
    init_locs = x[torch.randperm(x.shape[0])[:NUM_COMPONENTS]].clone()
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    svi = SVI(model, guide, Adam({"lr": 0.05}), elbo)
    losses = progress_loop(
        lambda: svi.step(x, init_locs) / x.shape[0],
        num_steps,
        desc="iris mixture",
        disable=disable_progress,
    )
    return losses, elbo


def _component_log_probs(x: torch.Tensor, params: Dict[str, torch.Tensor]) -> torch.Tensor:
    """``log weight_k + log N(x; loc_k, cov_k)`` for every point and component: shape ``(n, k)``."""
    comp = torch.distributions.MultivariateNormal(params["locs"], scale_tril=params["scale_tril"])
    return comp.log_prob(x.unsqueeze(-2)) + params["weights"].log()


def mixture_log_likelihood(x: torch.Tensor, params: Dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-point log-likelihood of the fitted mixture, written out directly."""
    return torch.logsumexp(_component_log_probs(x, params), dim=-1)


def run(config: DemoConfig) -> DemoResult:
    """Fit, print held-out log-likelihoods, the components and the checks, and plot."""
    iris = load_iris()
    train_idx, test_idx = train_test_split(150, 30, seed=config.seed)
    raw = iris["data"]
    mean, std = raw[train_idx].mean(0), raw[train_idx].std(0)
    x = (raw - mean) / std
    train, test = x[train_idx], x[test_idx]
    steps = config.steps(300, 150)
    section(
        "Gaussian mixture on iris (Fisher 1936), assignments enumerated",
        [
            "data: 4 measurements of 150 flowers, standardized; 120 to fit, 30 held out",
            "model: 3 full-covariance Gaussian components, assignment ~ Categorical(weights)",
            f"inference: TraceEnum_ELBO sums out each flower's assignment exactly; Adam, "
            f"{steps} steps (maximum likelihood)",
        ],
    )
    with Timer() as timer:
        losses, elbo = fit(train, steps, seed=config.seed, disable_progress=config.disable_progress)
        params = {k: ember.param(k).detach() for k in ("weights", "locs", "scale_tril")}
        with torch.no_grad():
            heldout_mix = float(mixture_log_likelihood(test, params).mean())
            heldout_single = float(gaussian_log_likelihood(train, test).mean())
            train_mix = float(mixture_log_likelihood(train, params).mean())
            # the enumerated ELBO of the held-out flowers is their exact log-likelihood
            heldout_enum = -elbo.loss(model, guide, test) / test.shape[0]
    print(f"   wall time {timer.seconds:.1f} s")
    print("   log-likelihood per flower (standardized units):")
    print(
        format_table(
            ["model", "train", "held-out"],
            [
                ["3-component mixture (TraceEnum_ELBO)", train_mix, heldout_mix],
                [
                    "single Gaussian (closed form)",
                    float(gaussian_log_likelihood(train, train).mean()),
                    heldout_single,
                ],
            ],
            indent=5,
        )
    )
    # components in the original units, and how they line up with the species
    locs_cm = params["locs"] * std + mean
    with torch.no_grad():
        assigned = _component_log_probs(x, params).argmax(-1)
    rows = []
    for k in range(NUM_COMPONENTS):
        counts = [int(((assigned == k) & (iris["species"] == s)).sum()) for s in range(3)]
        rows.append([f"component {k}", float(params["weights"][k])] + locs_cm[k].tolist() + counts)
    header = (
        ["", "weight"]
        + [f.replace("_", " ") for f in iris["features"]]
        + [n[:4] for n in iris["species_names"]]
    )
    print("   fitted components (means in cm) and the species of the flowers they claim:")
    print(format_table(header, rows, indent=5))

    checks = [
        Check(
            f"mixture held-out log-likelihood {heldout_mix:.3f} per flower above the single "
            f"Gaussian's {heldout_single:.3f}",
            heldout_mix > heldout_single,
        ),
        Check(
            f"TraceEnum_ELBO on held-out flowers {heldout_enum:.4f} equals the summed-out "
            f"log-likelihood {heldout_mix:.4f} (|diff| < 1e-3)",
            math.isfinite(heldout_enum) and abs(heldout_enum - heldout_mix) < 1e-3,
        ),
    ]
    result = DemoResult("gmm_iris", timer.seconds, checks)
    loss_curve(
        config,
        losses,
        "Iris mixture: negative log-likelihood per flower",
        "gmm_iris_loss.png",
        result.figures,
        ylabel="loss per flower",
    )
    _plot(config, raw, iris, params, mean, std, assigned, result.figures)
    return result


def _plot(config, raw, iris, params, mean, std, assigned, figures: List) -> None:
    plt = pyplot()
    if plt is None or config.out_dir is None:
        return
    i, j = 2, 3  # petal length, petal width
    fig, ax = plt.subplots(figsize=(6, 4.5))
    markers = ["o", "s", "^"]
    for s in range(3):
        sel = iris["species"] == s
        ax.scatter(
            raw[sel, i],
            raw[sel, j],
            c=[f"C{int(a)}" for a in assigned[sel]],
            marker=markers[s],
            s=18,
            label=iris["species_names"][s],
        )
    cov = params["scale_tril"] @ params["scale_tril"].transpose(-1, -2)
    t = torch.linspace(0, 2 * math.pi, 100)
    circle = torch.stack([t.cos(), t.sin()])
    for k in range(NUM_COMPONENTS):
        sub = cov[k][[i, j]][:, [i, j]] * torch.outer(std[[i, j]], std[[i, j]])
        ell = torch.linalg.cholesky(sub) @ circle * 2.0
        center = params["locs"][k, [i, j]] * std[[i, j]] + mean[[i, j]]
        ax.plot(center[0] + ell[0], center[1] + ell[1], color=f"C{k}", lw=1.5)
    ax.set_xlabel("petal length (cm)")
    ax.set_ylabel("petal width (cm)")
    ax.set_title("Iris: mixture components (2-sd ellipses); colour = component")
    ax.legend(title="species (marker)", fontsize=7)
    save_figure(fig, config, "gmm_iris.png", figures)
