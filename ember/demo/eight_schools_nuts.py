"""Eight schools by NUTS: four chains on the non-centered model, against the exact posterior.

The model is :func:`ember.demo.eight_schools.model` (``mu ~ N(0, 5)``,
``tau ~ HalfCauchy(5)``, ``theta_j = mu + tau * theta_tilde_j``). NUTS runs
four chains (one after another on a small machine) with step-size and
diagonal mass-matrix adaptation; the summary (mean, sd, n_eff, split r_hat)
is printed beside the exact posterior by quadrature over tau
(:func:`ember.demo.eight_schools.exact_posterior`).

The checks are Monte Carlo honest: a posterior mean passes when it lies within
four Monte Carlo standard errors (exact sd / sqrt(n_eff)) of the exact mean;
every r_hat must be below 1.05; the number of divergent transitions is reported
and may be at most 1% of the draws.
"""

from __future__ import annotations

import math
from typing import Dict

import torch

import ember
from ember.demo.common import (
    Check,
    DemoConfig,
    DemoResult,
    Timer,
    format_table,
    pyplot,
    save_figure,
    section,
)
from ember.demo.datasets import load_eight_schools
from ember.demo.eight_schools import exact_posterior, model
from ember.infer.mcmc import MCMC, NUTS
from ember.infer.mcmc.summary import summary as mcmc_summary

__all__ = ["run", "sample", "NUM_CHAINS", "MC_SE_TOLERANCE", "RHAT_MAX"]

#: Chains run by the demo.
NUM_CHAINS = 4
#: A mean passes within this many Monte Carlo standard errors of the exact mean.
MC_SE_TOLERANCE = 4.0
#: Every split r_hat must be below this.
RHAT_MAX = 1.05


def sample(num_warmup: int, num_samples: int, seed: int = 0) -> MCMC:
    """Run NUTS with :data:`NUM_CHAINS` chains on eight schools and return the MCMC object."""
    data = load_eight_schools()
    ember.set_rng_seed(seed)
    kernel = NUTS(model, target_accept_prob=0.8, max_plate_nesting=1)
    # the chains advance together: one batched evaluation of the potential per step
    mcmc = MCMC(
        kernel,
        num_samples=num_samples,
        warmup_steps=num_warmup,
        num_chains=NUM_CHAINS,
        chain_method="vectorized",
        disable_progbar=True,
    )
    mcmc.run(data["stderr"], data["effect"])
    return mcmc


def _theta(mcmc: MCMC) -> torch.Tensor:
    s = mcmc.get_samples(group_by_chain=True)
    return s["mu"].unsqueeze(-1) + s["tau"].unsqueeze(-1) * s["theta_tilde"]


def run(config: DemoConfig) -> DemoResult:
    """Sample, print the summary beside the exact posterior and the checks, and plot."""
    data = load_eight_schools()
    warmup, draws = (150, 150) if config.quick else (500, 500)
    section(
        "Eight schools by NUTS: 4 chains against the exact posterior",
        [
            "model: the non-centered eight-schools model above (mu, tau, theta_tilde)",
            f"inference: NUTS (dual-averaging step size, diagonal mass matrix), "
            f"{NUM_CHAINS} chains x ({warmup} warm-up + {draws} draws)",
        ],
    )
    with Timer() as timer:
        mcmc = sample(warmup, draws, seed=config.seed)
    grouped = mcmc.get_samples(group_by_chain=True)
    stats: Dict[str, torch.Tensor] = {
        "mu": grouped["mu"],
        "tau": grouped["tau"],
        "theta": _theta(mcmc),
    }
    summ = mcmc_summary(stats, prob=0.9, group_by_chain=True)
    exact = exact_posterior(data["stderr"], data["effect"])
    diag = mcmc.diagnostics()
    divergences = sum(len(v) for v in diag.get("divergences", {}).values())
    print(f"   wall time {timer.seconds:.1f} s; divergent transitions: {divergences}")
    rows, results = [], []
    labels = ["mu", "tau"] + [f"theta[{s}]" for s in data["schools"]]
    means = [summ["mu"]["mean"], summ["tau"]["mean"], *summ["theta"]["mean"]]
    sds = [summ["mu"]["std"], summ["tau"]["std"], *summ["theta"]["std"]]
    neffs = [summ["mu"]["n_eff"], summ["tau"]["n_eff"], *summ["theta"]["n_eff"]]
    rhats = [summ["mu"]["r_hat"], summ["tau"]["r_hat"], *summ["theta"]["r_hat"]]
    ex_mean = [exact["mu"][0], exact["tau"][0], *exact["theta"][0]]
    ex_sd = [exact["mu"][1], exact["tau"][1], *exact["theta"][1]]
    for name, m, sd, n, r, em, esd in zip(labels, means, sds, neffs, rhats, ex_mean, ex_sd):
        m, sd, n, r, em, esd = (float(v) for v in (m, sd, n, r, em, esd))
        mcse = esd / math.sqrt(max(n, 1.0))
        z = (m - em) / mcse
        results.append((name, m, em, z, r))
        rows.append([name, m, sd, n, r, em, esd, mcse, z])
    print("   NUTS summary (pooled over chains) and the exact posterior (quadrature over tau):")
    header = ["latent", "mean", "sd", "n_eff", "r_hat", "exact mean", "exact sd", "MC se", "z"]
    print(format_table(header, rows, indent=5))
    worst_z = max(results, key=lambda t: abs(t[3]))
    worst_r = max(results, key=lambda t: t[4])
    checks = [
        Check(
            f"every mean within {MC_SE_TOLERANCE:g} MC standard errors of the exact mean "
            f"(worst {worst_z[0]}: {worst_z[1]:.2f} vs {worst_z[2]:.2f}, z = {worst_z[3]:.2f})",
            all(abs(t[3]) <= MC_SE_TOLERANCE for t in results),
        ),
        Check(
            f"every r_hat < {RHAT_MAX} (largest {worst_r[0]}: {worst_r[4]:.3f})",
            all(t[4] < RHAT_MAX for t in results),
        ),
        Check(
            f"divergent transitions: {divergences} of {NUM_CHAINS * draws} draws "
            "(at most 1% allowed)",
            divergences <= 0.01 * NUM_CHAINS * draws,
        ),
    ]
    result = DemoResult("eight_schools_nuts", timer.seconds, checks)
    _plot(config, stats, exact, result)
    return result


def _plot(config: DemoConfig, stats, exact, result: DemoResult) -> None:
    plt = pyplot()
    if plt is None or config.out_dir is None:
        return
    fig, axes = plt.subplots(2, 2, figsize=(10, 6))
    for col, name in enumerate(("mu", "tau")):
        chains = stats[name]
        ax = axes[0, col]
        for c in range(chains.shape[0]):
            ax.plot(chains[c].tolist(), lw=0.5, alpha=0.8, label=f"chain {c}")
        ax.set_title(f"trace of {name}")
        ax.set_xlabel("draw")
        ax.legend(fontsize=6)
        ax = axes[1, col]
        flat = chains.reshape(-1)
        if name == "tau":
            flat = flat[flat < 20]
        ax.hist(flat.tolist(), bins=50, color=f"C{col}", density=True)
        ax.axvline(float(exact[name][0]), color="k", ls="--", lw=1, label="exact mean")
        ax.set_title(f"posterior of {name}" + (" (draws below 20)" if name == "tau" else ""))
        ax.legend(fontsize=7)
    save_figure(fig, config, "eight_schools_nuts.png", result.figures)
