"""Benchmark: seconds per SVI step with automatic guides, for ember, pyro-ppl and a
hand-written pure-torch version of the same guide and ELBO.

Workloads (validation on for both libraries, Trace_ELBO with one particle, Adam):
  (h) a hierarchical model with four latent sites in nested plates:
      mu ~ N(0, 10), tau ~ LogNormal(0, 1); 20 groups: theta_g ~ N(mu, tau);
      10 items in each group: z_ig ~ N(theta_g, 1); y_ig ~ N(z_ig, 0.5) observed;
  (r) Bayesian linear regression on the bundled diabetes data (442 x 10,
      standardized; b, w ~ N(0, 1), y ~ N(b + X w, 0.7));
each with AutoNormal (mean field) and AutoMultivariateNormal (one dense
Gaussian over all latents). The torch versions sample the same guide
(reparameterized), add the same log-Jacobian for tau, and step the same
fused Adam: the eager limit of a step.

Prints each time and the ratios ember/torch and pyro/ember.

Run: ``.venv/bin/python benchmarks/autoguide.py [--scale X] [--only hr]``
"""

from __future__ import annotations

import argparse

import _timing  # benchmarks/_timing.py (this script's folder is on sys.path)
import torch
import torch.distributions as td

import ember
from ember.demo.diabetes_regression import NOISE_SD, PRIOR_SD, regression_data

try:
    import pyro
except ImportError:  # pyro-ppl is optional
    pyro = None

torch.set_num_threads(1)

G, M = 20, 10  # groups, items per group
torch.manual_seed(0)
Y_H = torch.randn(M, G) + torch.linspace(-2, 2, G)
REG = regression_data(torch.float32)
X_R, Y_R = REG["X"], REG["y"]


# ------------------------------------------------------------------ models
def hier_model(lib):
    dist = lib.distributions

    def model(y):
        mu = lib.sample("mu", dist.Normal(0.0, 10.0))
        tau = lib.sample("tau", dist.LogNormal(0.0, 1.0))
        with lib.plate("groups", G, dim=-1):
            theta = lib.sample("theta", dist.Normal(mu, tau))
            with lib.plate("items", M, dim=-2):
                z = lib.sample("z", dist.Normal(theta, 1.0))
                lib.sample("y", dist.Normal(z, 0.5), obs=y)

    return model


def reg_model(lib):
    dist = lib.distributions

    def model(X, y):
        b = lib.sample("b", dist.Normal(0.0, PRIOR_SD))
        w = lib.sample("w", dist.Normal(0.0, PRIOR_SD).expand([X.shape[1]]).to_event(1))
        with lib.plate("data", X.shape[0]):
            lib.sample("y", dist.Normal(b + (X * w).sum(-1), NOISE_SD), obs=y)

    return model


def lib_step(lib, model_builder, guide_name, args):
    model = model_builder(lib)
    guide = getattr(lib.infer.autoguide, guide_name)(model)
    svi = lib.infer.SVI(model, guide, lib.optim.Adam({"lr": 0.01}), lib.infer.Trace_ELBO())
    return lambda: svi.step(*args)


# ------------------------------------------------------------------ hand-written torch
def hier_log_joint(mu, tau, theta, z):
    return (
        td.Normal(0.0, 10.0).log_prob(mu)
        + td.LogNormal(0.0, 1.0).log_prob(tau)
        + td.Normal(mu, tau).log_prob(theta).sum()
        + td.Normal(theta, 1.0).log_prob(z).sum()
        + td.Normal(z, 0.5).log_prob(Y_H).sum()
    )


def reg_log_joint(b, w):
    return (
        td.Normal(0.0, PRIOR_SD).log_prob(b)
        + td.Normal(0.0, PRIOR_SD).log_prob(w).sum()
        + td.Normal(b + X_R @ w, NOISE_SD).log_prob(Y_R).sum()
    )


def torch_step(latent_dim, split, log_joint, dense):
    """A step of a mean-field or dense Gaussian guide over an unconstrained vector
    of ``latent_dim`` values; ``split(u)`` maps it to the model's latents and the
    log-Jacobian of the constraining transforms."""
    loc = torch.zeros(latent_dim, requires_grad=True)
    log_scale = torch.full((latent_dim,), -2.3, requires_grad=True)
    params = [loc, log_scale]
    if dense:
        tril = torch.zeros(latent_dim, latent_dim, requires_grad=True)
        params.append(tril)
    opt = torch.optim.Adam(params, lr=0.01, fused=True)

    def step():
        scale = log_scale.exp()
        if dense:
            chol = torch.tril(tril, -1) + torch.eye(latent_dim)
            q = td.MultivariateNormal(loc, scale_tril=scale[:, None] * chol)
            u = q.rsample()
            log_q = q.log_prob(u)
        else:
            q = td.Normal(loc, scale)
            u = q.rsample()
            log_q = q.log_prob(u).sum()
        latents, log_jac = split(u)
        loss = -(log_joint(*latents) + log_jac - log_q)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step


def hier_split(u):
    tau = u[1].exp()
    return (u[0], tau, u[2 : 2 + G], u[2 + G :].reshape(M, G)), u[1]


def reg_split(u):
    return (u[0], u[1:]), 0.0


CASES = {
    "h": (
        "hierarchical, 4 sites, nested plates",
        hier_model,
        (Y_H,),
        lambda dense: torch_step(2 + G + G * M, hier_split, hier_log_joint, dense),
        300,
    ),
    "r": (
        "diabetes regression (442 x 10)",
        reg_model,
        (X_R, Y_R),
        lambda dense: torch_step(1 + X_R.shape[1], reg_split, reg_log_joint, dense),
        300,
    ),
}


def build_lib(lib, *builder):
    lib.clear_param_store()
    lib.set_rng_seed(0)
    lib.enable_validation(True)
    try:
        return lib_step(lib, *builder)
    except (AttributeError, ImportError) as e:
        print(f"    ({lib.__name__}: not available: {e})")
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="hr")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply step counts")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, pyro {pyro.__version__ if pyro else 'not installed'}")
    print("seconds per step (CPU time, best of 7 interleaved chunks)")
    print(
        f"{'case':<62}{'ember':>10}{'pyro':>10}{'torch':>10}{'ember/torch':>13}{'pyro/ember':>12}"
    )
    for key in args.only:
        title, model_builder, data, torch_builder, steps = CASES[key]
        steps = max(1, int(steps * args.scale))
        for guide_name, dense in (("AutoNormal", False), ("AutoMultivariateNormal", True)):
            fns = {"ember": build_lib(ember, model_builder, guide_name, data)}
            fns["pyro"] = build_lib(pyro, model_builder, guide_name, data) if pyro else None
            torch.manual_seed(0)
            fns["torch"] = torch_builder(dense)
            live = {k: f for k, f in fns.items() if f is not None}
            t = _timing.interleaved(live, steps, rounds=7, warmup=max(2, steps // 10))
            t_ember, t_pyro, t_torch = t.get("ember"), t.get("pyro"), t.get("torch")

            def fmt(x):
                return f"{x * 1e3:8.2f}ms" if x is not None else f"{'-':>10}"

            r1 = f"{t_ember / t_torch:12.2f}x" if t_ember else f"{'-':>13}"
            r2 = f"{t_pyro / t_ember:11.2f}x" if (t_ember and t_pyro) else f"{'-':>12}"
            label = f"({key}) {title}, {guide_name}"
            print(f"{label:<62}{fmt(t_ember)}{fmt(t_pyro)}{fmt(t_torch)}{r1}{r2}", flush=True)


if __name__ == "__main__":
    main()
