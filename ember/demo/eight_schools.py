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

The fitted posterior means are checked against the exact posterior of the
same model, computed by one-dimensional quadrature over tau
(:func:`exact_posterior`), which reproduces the published means (mu 4.4,
tau 3.6, school effects 3.6 to 6.3).
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

__all__ = ["model", "guide", "fit", "posterior_samples", "exact_posterior", "run", "PUBLISHED"]

#: Posterior means published for this model (mu ~ N(0, 5), tau ~ HalfCauchy(5);
#: the HMC analyses in the Stan and PyMC case studies): mu 4.4, tau 3.6.
PUBLISHED = {"mu": 4.4, "tau": 3.6}

#: A fitted mean passes when it is within this many exact posterior standard
#: deviations of the exact mean. The Monte Carlo error of 4000 draws is about
#: 0.02 sd; the rest is the guide's bias and the optimizer's noise. A Gaussian
#: guide fits the bulk of the posterior, not its heavy tail in tau, so it
#: shrinks tau by 0.1 to 0.3 sd (seeds 0-2, 600 and 1000 steps), hence a wider
#: band for tau.
TOLERANCE_SD = {"mu": 0.25, "tau": 0.4, "theta": 0.25}


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


def exact_posterior(
    sigma: torch.Tensor, y: torch.Tensor, num_grid: int = 4000
) -> Dict[str, torch.Tensor]:
    """Exact posterior means and sds of ``mu``, ``tau`` and ``theta``, by quadrature over tau.

    Given ``tau`` the model is Gaussian: ``y_j ~ N(mu, sigma_j^2 + tau^2)``
    after integrating ``theta_j``, so ``p(tau | y)`` is known up to a constant
    and ``mu``, ``theta`` have Gaussian conditionals (Gelman et al., *Bayesian
    Data Analysis*, section 5.4). The remaining one-dimensional integral over
    ``tau`` is a midpoint rule in ``u = (2/pi) atan(tau/5)``, the HalfCauchy(5)
    prior's CDF, under which the prior is uniform on (0, 1). Computed in
    float64; the result has the dtype of ``sigma``.

    :return: a dict with ``"mu"``, ``"tau"``, ``"theta"``, each a tensor
        ``[mean, sd]`` (``theta``: shape ``(2, 8)``).

    Example::

        >>> from ember.demo.datasets import load_eight_schools
        >>> from ember.demo.eight_schools import exact_posterior
        >>> d = load_eight_schools()
        >>> post = exact_posterior(d["stderr"], d["effect"])
        >>> round(float(post["mu"][0]), 1), round(float(post["tau"][0]), 1)
        (4.4, 3.6)
    """
    if sigma.shape != y.shape or sigma.dim() != 1:
        raise ValueError(
            f"exact_posterior: sigma and y must be vectors of the same length, got shapes "
            f"{tuple(sigma.shape)} and {tuple(y.shape)}"
        )
    s2, y64 = sigma.double() ** 2, y.double()
    u = (torch.arange(num_grid, dtype=torch.float64, device=y.device) + 0.5) / num_grid
    tau = 5.0 * torch.tan(u * (math.pi / 2))
    var_y = s2 + tau.unsqueeze(-1) ** 2  # (grid, schools): var of y_j given mu, tau
    # mu | tau, y: prior N(0, 5^2), and each y_j ~ N(mu, var_y_j)
    mu_prec = 1.0 / 25.0 + (1.0 / var_y).sum(-1)
    mu_mean = (y64 / var_y).sum(-1) / mu_prec
    mu_var = 1.0 / mu_prec
    # p(y | tau): y ~ N(0, diag(var_y) + 25 * ones); tau's prior is uniform in u
    cov = torch.diag_embed(var_y) + 25.0
    log_lik = torch.distributions.MultivariateNormal(torch.zeros_like(y64), cov).log_prob(y64)
    w = torch.softmax(log_lik, 0).unsqueeze(-1)
    # theta_j | mu, tau, y: precision-weighted mean of y_j and mu
    shrink = s2 / var_y
    th_mean = (1.0 - shrink) * y64 + shrink * mu_mean.unsqueeze(-1)
    th_var = s2 * (1.0 - shrink) + shrink**2 * mu_var.unsqueeze(-1)

    def mean_sd(cond_mean: torch.Tensor, cond_var: torch.Tensor) -> torch.Tensor:
        if cond_mean.dim() == 1:
            cond_mean, cond_var = cond_mean.unsqueeze(-1), cond_var.unsqueeze(-1)
        m = (w * cond_mean).sum(0)
        v = (w * (cond_var + cond_mean**2)).sum(0) - m**2
        return torch.stack([m, v.clamp(min=0).sqrt()]).squeeze(-1).to(sigma.dtype)

    return {
        "mu": mean_sd(mu_mean, mu_var),
        "tau": mean_sd(tau, torch.zeros_like(tau)),
        "theta": mean_sd(th_mean, th_var),
    }


def run(config: DemoConfig) -> DemoResult:
    """Fit, print the posterior summary and the checks, and plot."""
    data = load_eight_schools()
    steps = config.steps(1000, 600)
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
    exact = exact_posterior(data["stderr"], data["effect"])
    rows = posterior_rows(draws)
    exact_mean = [exact["mu"][0], exact["tau"][0], *exact["theta"][0]]
    exact_sd = [exact["mu"][1], exact["tau"][1], *exact["theta"][1]]
    tol = [TOLERANCE_SD["mu"], TOLERANCE_SD["tau"]] + [TOLERANCE_SD["theta"]] * len(rows[2:])
    in_range = []
    for row, m, sd, k in zip(rows, exact_mean, exact_sd, tol):
        lo, hi = float(m - k * sd), float(m + k * sd)
        in_range.append((row[0], row[1], lo, hi, lo <= row[1] <= hi))
        row += [float(m), float(sd), f"[{lo:.2f}, {hi:.2f}]"]
    print(
        "   posterior (4000 draws from the fitted guide) and the exact posterior (quadrature "
        "over tau);"
    )
    print(
        f"   a fitted mean passes inside exact mean +- {TOLERANCE_SD['mu']} exact sd "
        f"(tau: +- {TOLERANCE_SD['tau']} sd, as a Gaussian guide shrinks tau):"
    )
    header = ["latent", "mean", "sd", "5%", "95%", "exact mean", "exact sd", "pass range"]
    print(format_table(header, rows, indent=5))

    def describe(items) -> str:
        return ", ".join(f"{name} {v:.2f} in [{lo:.2f}, {hi:.2f}]" for name, v, lo, hi, _ in items)

    mu_row, tau_row, theta_rows = in_range[0], in_range[1], in_range[2:]
    published_ok = all(
        abs(float(exact[name][0]) - PUBLISHED[name]) < 0.05 for name in ("mu", "tau")
    )
    checks = [
        Check(
            f"exact posterior means mu {float(exact['mu'][0]):.2f}, tau "
            f"{float(exact['tau'][0]):.2f} match the published {PUBLISHED['mu']}, "
            f"{PUBLISHED['tau']} (to 0.05)",
            published_ok,
        ),
        Check(f"mean {describe([mu_row])} (exact +- {TOLERANCE_SD['mu']} sd)", mu_row[-1]),
        Check(f"mean {describe([tau_row])} (exact +- {TOLERANCE_SD['tau']} sd)", tau_row[-1]),
        Check(
            f"every school's mean within exact +- {TOLERANCE_SD['theta']} sd: "
            f"{describe(theta_rows)}",
            all(r[-1] for r in theta_rows),
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
    ax2.axvline(PUBLISHED["tau"], color="k", ls="--", lw=1, label="published (exact) mean")
    ax2.set_xlabel("tau (draws below 20)")
    ax2.set_title("Between-school sd tau")
    ax2.legend(fontsize=7)
    save_figure(fig, config, "eight_schools_posterior.png", result.figures)
