"""Automatic guides against a closed-form posterior: Bayesian linear regression.

The diabetes data (442 patients, ten baseline measurements, disease progression
one year later; bundled in ``ember/data``) with standardized features and
target, a Normal(0, 1) prior on the intercept and the ten weights and a known
noise sd: the posterior is Gaussian with precision ``P = X'X / sigma^2 + I``
and mean ``P^-1 X'y / sigma^2``. ``AutoMultivariateNormal`` can equal it;
``AutoNormal`` (mean field) can reach the exact means and the variances
``1 / P_ii`` but not the correlations; both are fitted by SVI and printed
against the closed form.
"""

from __future__ import annotations

from typing import Dict

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
    section,
)
from ember.demo.datasets import load_diabetes
from ember.infer import SVI, Trace_ELBO
from ember.infer.autoguide import AutoMultivariateNormal, AutoNormal
from ember.infer.progress import progress_loop
from ember.optim import ClippedAdam

__all__ = ["NOISE_SD", "PRIOR_SD", "exact_posterior", "model", "regression_data", "run"]

#: The noise sd of the standardized target (the least-squares residual sd is 0.69).
NOISE_SD = 0.7
#: The prior sd of the intercept and of each weight.
PRIOR_SD = 1.0


def regression_data(dtype: torch.dtype = torch.float64) -> Dict[str, object]:
    """The diabetes features and target, each standardized (mean 0, sd 1)."""
    d = load_diabetes(dtype)
    X = d["data"]
    y = d["target"]
    return {
        "X": (X - X.mean(0)) / X.std(0),
        "y": (y - y.mean()) / y.std(),
        "names": ["intercept"] + list(d["features"]),
    }


def model(X: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """``y ~ Normal(b + X w, NOISE_SD)`` with Normal(0, PRIOR_SD) priors on ``b`` and ``w``."""
    b = ember.sample("b", dist.Normal(X.new_tensor(0.0), PRIOR_SD))
    w = ember.sample("w", dist.Normal(X.new_tensor(0.0), PRIOR_SD).expand([X.shape[1]]).to_event(1))
    with ember.plate("data", X.shape[0]):
        return ember.sample("y", dist.Normal(b + (X * w).sum(-1), NOISE_SD), obs=y)


def exact_posterior(X: torch.Tensor, y: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The closed-form posterior of ``(b, w)`` (intercept first): mean, covariance, precision.

    Example::

        >>> import torch
        >>> from ember.demo.diabetes_regression import exact_posterior
        >>> post = exact_posterior(torch.zeros(5, 2, dtype=torch.float64),
        ...                        torch.zeros(5, dtype=torch.float64))
        >>> post["mean"].tolist(), post["cov"].diagonal()[1:].tolist()  # no data on w: the prior
        ([0.0, 0.0, 0.0], [1.0, 1.0])
    """
    n, k = X.shape
    design = torch.cat([X.new_ones(n, 1), X], 1)
    precision = design.T @ design / NOISE_SD**2 + torch.eye(k + 1, dtype=X.dtype) / PRIOR_SD**2
    cov = torch.linalg.inv(precision)
    mean = cov @ design.T @ y / NOISE_SD**2
    return {"mean": mean, "cov": cov, "precision": precision}


def _fit(guide, data, steps: int, num_particles: int, config: DemoConfig, desc: str):
    ember.clear_param_store()
    ember.set_rng_seed(config.seed)
    # a short run takes bigger steps (and reaches a looser tolerance)
    lr = 0.1 if config.quick else 0.03
    optim = ClippedAdam({"lr": lr, "lrd": 0.01 ** (1 / steps)})
    elbo = Trace_ELBO(num_particles=num_particles, vectorize_particles=True)
    svi = SVI(model, guide, optim, elbo)
    return progress_loop(
        lambda: svi.step(data["X"], data["y"]), steps, desc=desc, disable=config.disable_progress
    )


def run(config: DemoConfig) -> DemoResult:
    """Fit AutoMultivariateNormal and AutoNormal by SVI, compare with the closed form, check."""
    # the correlated weights (s1, s2) converge slowly: the joint guide takes more steps
    mvn_steps, normal_steps = config.steps(6000, 1500), config.steps(3000, 800)
    num_particles = config.steps(64, 16)
    section(
        "Bayesian linear regression on the diabetes data: autoguides vs the exact posterior",
        [
            "model: y ~ Normal(b + X w, 0.7), b, w_j ~ Normal(0, 1) (442 patients, "
            "10 standardized features)",
            f"inference: SVI, Trace_ELBO ({num_particles} vectorized particles), ClippedAdam; "
            f"AutoMultivariateNormal ({mvn_steps} steps) and AutoNormal ({normal_steps} steps)",
        ],
    )
    data = regression_data()
    exact = exact_posterior(data["X"], data["y"])
    sd = exact["cov"].diagonal().sqrt()
    mean_field_sd = exact["precision"].diagonal().rsqrt()

    mvn = AutoMultivariateNormal(model)
    with Timer() as t_mvn:
        mvn_losses = _fit(mvn, data, mvn_steps, num_particles, config, "AutoMultivariateNormal")
    q = mvn.get_posterior()
    mvn_mean, mvn_cov = q.loc.detach(), q.covariance_matrix.detach()

    normal = AutoNormal(model)
    with Timer() as t_normal:
        normal_losses = _fit(normal, data, normal_steps, num_particles, config, "AutoNormal")
    normal_mean = torch.cat([normal.locs.b.detach().reshape(1), normal.locs.w.detach()])
    normal_sd = torch.cat([normal.scales.b.detach().reshape(1), normal.scales.w.detach()])

    print(
        f"   wall time: AutoMultivariateNormal {t_mvn.seconds:.1f} s, AutoNormal "
        f"{t_normal.seconds:.1f} s"
    )
    rows = [
        [
            name,
            exact["mean"][i].item(),
            mvn_mean[i].item(),
            normal_mean[i].item(),
            sd[i].item(),
            mvn_cov[i, i].sqrt().item(),
            mean_field_sd[i].item(),
            normal_sd[i].item(),
        ]
        for i, name in enumerate(data["names"])
    ]
    print(
        format_table(
            [
                "coefficient",
                "exact mean",
                "MVN mean",
                "AutoNormal",
                "exact sd",
                "MVN sd",
                "mean-field sd",
                "AutoNormal sd",
            ],
            rows,
            indent=5,
        )
    )
    mvn_mean_err = ((mvn_mean - exact["mean"]) / sd).abs().max().item()
    mvn_cov_err = ((mvn_cov - exact["cov"]).abs() / (sd[:, None] * sd[None, :])).max().item()
    normal_mean_err = ((normal_mean - exact["mean"]) / sd).abs().max().item()
    normal_sd_err = (normal_sd / mean_field_sd - 1).abs().max().item()
    # a short run is for speed, not accuracy: looser targets
    mean_tol, cov_tol = (0.25, 0.25) if config.quick else (0.05, 0.05)
    checks = [
        Check(
            f"AutoMultivariateNormal means within {mean_tol} posterior sd of the exact "
            f"means (largest {mvn_mean_err:.3f})",
            mvn_mean_err < mean_tol,
        ),
        Check(
            f"AutoMultivariateNormal covariance entries within {cov_tol:.0%} of sd_i sd_j "
            f"(largest {mvn_cov_err:.3f})",
            mvn_cov_err < cov_tol,
        ),
        Check(
            f"AutoNormal means within {mean_tol} posterior sd of the exact means "
            f"(largest {normal_mean_err:.3f})",
            normal_mean_err < mean_tol,
        ),
        Check(
            f"AutoNormal sds within {cov_tol:.0%} of the mean-field optimum 1/sqrt(P_ii) "
            f"(largest relative error {normal_sd_err:.3f})",
            normal_sd_err < cov_tol,
        ),
    ]
    result = DemoResult("diabetes", t_mvn.seconds + t_normal.seconds, checks)
    for name, losses in (("AutoMultivariateNormal", mvn_losses), ("AutoNormal", normal_losses)):
        loss_curve(
            config,
            losses,
            f"Diabetes regression, {name}: SVI loss",
            f"diabetes_{name}_loss.png",
            result.figures,
        )
    return result
