"""Eight schools (Rubin 1981): a hierarchical normal model fitted with SVI.

Each school ``j`` reports an estimated coaching effect ``y_j`` with a known
standard error ``sigma_j``. The non-centered hierarchical model is::

    mu ~ Normal(0, 5)          tau ~ HalfCauchy(5)
    theta_tilde_j ~ Normal(0, 1)       theta_j = mu + tau * theta_tilde_j
    y_j ~ Normal(theta_j, sigma_j)

The guide is a structured Gaussian: ``mu`` is normal, ``log tau`` is normal
with a mean linear in ``mu``, and each ``theta_tilde_j`` is normal with a mean
linear in ``mu`` and ``log tau``, so the guide follows the funnel-shaped
dependence between the group scale and the school effects that a mean-field
guide misses.
"""

from __future__ import annotations

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
    loss_curve,
    posterior_rows,
    pyplot,
    save_figure,
    section,
)
from ember.demo.datasets import load_eight_schools
from ember.distributions import constraints
from ember.infer import SVI, Predictive, Trace_ELBO
from ember.infer.progress import progress_loop
from ember.optim import ClippedAdam

__all__ = ["model", "guide", "fit", "posterior_samples", "run", "PUBLISHED"]

#: Posterior means of the standard (non-centered, HMC) analysis of this model
#: (mu ~ N(0, 5), tau ~ HalfCauchy(5)): mu 4.4, tau 3.6, school effects 3.6..6.4.
PUBLISHED = {"mu": 4.4, "tau": 3.6, "theta_low": 3.6, "theta_high": 6.4}


def model(sigma: torch.Tensor, y: torch.Tensor = None) -> None:
    """The non-centered eight-schools model (``y=None`` samples effects)."""
    mu = ember.sample("mu", dist.Normal(sigma.new_tensor(0.0), 5.0))
    tau = ember.sample("tau", dist.HalfCauchy(sigma.new_tensor(5.0)))
    with ember.plate("schools", sigma.shape[-1]):
        theta_tilde = ember.sample("theta_tilde", dist.Normal(sigma.new_tensor(0.0), 1.0))
        theta = ember.deterministic("theta", mu + tau * theta_tilde)
        ember.sample("y", dist.Normal(theta, sigma), obs=y)


def guide(sigma: torch.Tensor, y: torch.Tensor = None) -> None:
    """A structured Gaussian guide (see the module docstring)."""
    n = sigma.shape[-1]
    mu_loc = ember.param("mu_loc", sigma.new_tensor(0.0))
    mu_scale = ember.param("mu_scale", sigma.new_tensor(1.0), constraint=constraints.positive)
    mu = ember.sample("mu", dist.Normal(mu_loc, mu_scale))
    log_tau_loc = ember.param("log_tau_loc", sigma.new_tensor(0.0))
    log_tau_scale = ember.param(
        "log_tau_scale", sigma.new_tensor(1.0), constraint=constraints.positive
    )
    log_tau_on_mu = ember.param("log_tau_on_mu", sigma.new_tensor(0.0))
    tau = ember.sample(
        "tau", dist.LogNormal(log_tau_loc + log_tau_on_mu * (mu - mu_loc), log_tau_scale)
    )
    loc = ember.param("theta_tilde_loc", sigma.new_zeros(n))
    on_mu = ember.param("theta_tilde_on_mu", sigma.new_zeros(n))
    on_tau = ember.param("theta_tilde_on_log_tau", sigma.new_zeros(n))
    scale = ember.param("theta_tilde_scale", sigma.new_ones(n), constraint=constraints.positive)
    with ember.plate("schools", n):
        mean = loc + on_mu * (mu - mu_loc) + on_tau * (tau.log() - log_tau_loc)
        ember.sample("theta_tilde", dist.Normal(mean, scale))


def fit(
    num_steps: int, seed: int = 0, num_particles: int = 4, disable_progress=None
) -> List[float]:
    """Fit the guide by SVI (ClippedAdam, learning rate decaying tenfold); return the losses."""
    data = load_eight_schools()
    ember.set_rng_seed(seed)
    ember.clear_param_store()
    lr, final_lr = 0.05, 0.005
    optim = ClippedAdam({"lr": lr, "lrd": (final_lr / lr) ** (1.0 / max(1, num_steps))})
    elbo = Trace_ELBO(num_particles=num_particles, vectorize_particles=True, max_plate_nesting=1)
    svi = SVI(model, guide, optim, elbo)
    sigma, y = data["stderr"], data["effect"]
    return progress_loop(
        lambda: svi.step(sigma, y), num_steps, desc="eight schools", disable=disable_progress
    )


def posterior_samples(num_samples: int) -> Dict[str, torch.Tensor]:
    """Draws of ``mu``, ``tau`` and ``theta`` from the fitted guide."""
    data = load_eight_schools()
    predictive = Predictive(
        model,
        guide=guide,
        num_samples=num_samples,
        return_sites=["mu", "tau", "theta"],
        parallel=True,
    )
    with torch.no_grad():
        draws = predictive(data["stderr"], data["effect"])
    return {
        "mu": draws["mu"].reshape(num_samples),
        "tau": draws["tau"].reshape(num_samples),
        "theta": draws["theta"].reshape(num_samples, -1),
        "theta.labels": data["schools"],
    }


def run(config: DemoConfig) -> DemoResult:
    """Fit, print the posterior summary and the checks, and plot."""
    data = load_eight_schools()
    steps = config.steps(1000, 300)
    section(
        "Eight schools (Rubin 1981): hierarchical normal model, SVI",
        [
            "data: SAT coaching effects y and standard errors sigma of 8 schools",
            "model: mu ~ N(0,5), tau ~ HalfCauchy(5), theta_j = mu + tau*N(0,1), "
            "y_j ~ N(theta_j, sigma_j)",
            f"inference: Trace_ELBO (4 particles, vectorized), structured Gaussian guide, "
            f"ClippedAdam, {steps} steps",
        ],
    )
    with Timer() as timer:
        losses = fit(steps, seed=config.seed, disable_progress=config.disable_progress)
        draws = posterior_samples(4000)
    tail = losses[-50:]
    print(
        f"   wall time {timer.seconds:.1f} s; loss over the last steps {sum(tail) / len(tail):.2f}"
    )
    print("   posterior (4000 draws from the fitted guide):")
    print(format_table(["latent", "mean", "sd", "5%", "95%"], posterior_rows(draws), indent=5))

    mu_mean = float(draws["mu"].mean())
    tau_mean = float(draws["tau"].mean())
    theta_means = draws["theta"].mean(0)
    lo, hi = float(theta_means.min()), float(theta_means.max())
    mu_tol = 1.5
    checks = [
        Check(
            f"mu posterior mean {mu_mean:.2f} within {mu_tol} of the published {PUBLISHED['mu']}",
            abs(mu_mean - PUBLISHED["mu"]) < mu_tol,
        ),
        Check(
            f"tau posterior mean {tau_mean:.2f} in [1.5, 5.5] (published {PUBLISHED['tau']})",
            1.5 <= tau_mean <= 5.5,
        ),
        Check(
            f"school effect means {lo:.2f}..{hi:.2f} within [2.5, 7.5] (published "
            f"{PUBLISHED['theta_low']}..{PUBLISHED['theta_high']}; raw estimates -3..28)",
            2.5 <= lo and hi <= 7.5,
        ),
    ]
    result = DemoResult("eight_schools", timer.seconds, checks)
    loss_curve(config, losses, "Eight schools: SVI loss", "eight_schools_loss.png", result.figures)
    _plot_posterior(config, data, draws, result)
    return result


def _plot_posterior(config: DemoConfig, data, draws, result: DemoResult) -> None:
    plt = pyplot()
    if plt is None or config.out_dir is None:
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    theta = draws["theta"]
    q = torch.quantile(theta, torch.tensor([0.05, 0.5, 0.95]), dim=0)
    ypos = torch.arange(theta.shape[1], dtype=torch.float32)
    ax1.hlines(ypos, q[0], q[2], color="C0", lw=2, label="posterior 90% interval")
    ax1.plot(theta.mean(0), ypos, "o", color="C0", label="posterior mean")
    ax1.plot(data["effect"], ypos + 0.2, "x", color="C3", label="raw estimate y")
    ax1.axvline(float(draws["mu"].mean()), color="gray", ls="--", lw=1, label="mu mean")
    ax1.set_yticks(ypos.tolist())
    ax1.set_yticklabels(data["schools"])
    ax1.invert_yaxis()
    ax1.set_xlabel("coaching effect")
    ax1.set_title("School effects theta: partial pooling")
    ax1.legend(fontsize=7)
    tau = draws["tau"]
    ax2.hist(tau[tau < 20].tolist(), bins=60, color="C1")
    ax2.axvline(PUBLISHED["tau"], color="k", ls="--", lw=1, label="published mean")
    ax2.set_xlabel("tau (draws below 20)")
    ax2.set_title("Between-school sd tau")
    ax2.legend(fontsize=7)
    save_figure(fig, config, "eight_schools_posterior.png", result.figures)
