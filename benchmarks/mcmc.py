"""Benchmark: NUTS wall time and minimum effective sample size per second, ember vs
pyro-ppl (and NumPyro when installed), on

  (e) eight schools, non-centered: 500 warm-up + 500 draws, 1 chain and 4 chains;
  (l) Bayesian logistic regression on the bundled digits data ("is it a 3"; the 64
      pixels standardized, an intercept and 64 weights with Normal(0, 1) priors):
      300 warm-up + 300 draws, 1 chain.

Both libraries use their defaults (diagonal mass matrix adaptation, target acceptance
0.8, max tree depth 10, init to uniform). The ESS is ``ember.ops.stats``'s
``effective_sample_size``, applied to every backend's draws alike (chains grouped),
minimized over every scalar latent component. Wall time covers ``mcmc.run`` only
(setup and, for ember, recording the potential included).

Run: ``.venv/bin/python benchmarks/mcmc.py [--only el] [--backends ember,pyro]
[--chains 1,4]``
"""

from __future__ import annotations

import argparse
import time

import torch

from ember.demo.datasets import load_digits, load_eight_schools
from ember.ops.stats import effective_sample_size


def eight_schools(lib):
    pyro, dist = lib

    def model(sigma, y):
        mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
        tau = pyro.sample("tau", dist.HalfCauchy(5.0))
        with pyro.plate("schools", sigma.shape[-1]):
            theta_tilde = pyro.sample("theta_tilde", dist.Normal(0.0, 1.0))
            pyro.sample("y", dist.Normal(mu + tau * theta_tilde, sigma), obs=y)

    d = load_eight_schools()
    return model, (d["stderr"], d["effect"])


def logistic_regression(lib):
    pyro, dist = lib
    d = load_digits()
    x = d["images"]
    x = (x - x.mean(0)) / x.std(0).clamp(min=1e-6)
    y = (d["labels"] == 3).float()

    def model(x, y):
        b = pyro.sample("b", dist.Normal(0.0, 1.0))
        w = pyro.sample("w", dist.Normal(torch.zeros(x.shape[-1]), 1.0).to_event(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Bernoulli(logits=b + x @ w), obs=y)

    return model, (x, y)


def _min_ess(samples):
    out = float("inf")
    for v in samples.values():
        v = torch.as_tensor(v).double()
        v = v.reshape(v.shape[0], v.shape[1], -1)
        out = min(out, float(effective_sample_size(v).min()))
    return out


def run_backend(backend, workload, warmup, num_samples, num_chains, seed=0):
    if backend == "ember":
        import ember as pyro
        import ember.distributions as dist
        from ember.infer.mcmc import MCMC, NUTS
    elif backend == "pyro":
        import pyro
        import pyro.distributions as dist
        from pyro.infer.mcmc import MCMC, NUTS
    else:
        raise ValueError(backend)
    model, args = workload((pyro, dist))
    pyro.set_rng_seed(seed)
    mcmc = MCMC(
        NUTS(model),
        num_samples,
        warmup_steps=warmup,
        num_chains=num_chains,
        disable_progbar=True,
        mp_context="spawn" if num_chains > 1 else None,
    )
    t0 = time.perf_counter()
    mcmc.run(*args)
    wall = time.perf_counter() - t0
    samples = mcmc.get_samples(group_by_chain=True)
    return wall, _min_ess(samples)


def run_numpyro(name, warmup, num_samples, num_chains):  # pragma: no cover - optional
    try:
        import jax
        import numpyro
        import numpyro.distributions as ndist
        from numpyro.infer import MCMC as NMCMC
        from numpyro.infer import NUTS as NNUTS
    except ImportError:
        return None
    import numpy as np

    if name == "eight schools":
        d = load_eight_schools()
        args = (np.asarray(d["stderr"]), np.asarray(d["effect"]))

        def model(sigma, y):
            mu = numpyro.sample("mu", ndist.Normal(0.0, 5.0))
            tau = numpyro.sample("tau", ndist.HalfCauchy(5.0))
            with numpyro.plate("schools", sigma.shape[-1]):
                tt = numpyro.sample("theta_tilde", ndist.Normal(0.0, 1.0))
                numpyro.sample("y", ndist.Normal(mu + tau * tt, sigma), obs=y)
    else:
        d = load_digits()
        x = d["images"]
        x = ((x - x.mean(0)) / x.std(0).clamp(min=1e-6)).numpy()
        y = (d["labels"] == 3).float().numpy()
        args = (x, y)

        def model(x, y):
            b = numpyro.sample("b", ndist.Normal(0.0, 1.0))
            w = numpyro.sample("w", ndist.Normal(np.zeros(x.shape[-1]), 1.0).to_event(1))
            with numpyro.plate("data", x.shape[0]):
                numpyro.sample("y", ndist.Bernoulli(logits=b + x @ w), obs=y)

    mcmc = NMCMC(NNUTS(model), num_warmup=warmup, num_samples=num_samples,
                 num_chains=num_chains, progress_bar=False)  # fmt: skip
    t0 = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(0), *args)
    wall = time.perf_counter() - t0
    samples = {k: torch.as_tensor(np.asarray(v)) for k, v in
               mcmc.get_samples(group_by_chain=True).items()}  # fmt: skip
    return wall, _min_ess(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="el", help="e: eight schools, l: logistic")
    parser.add_argument("--backends", default="ember,pyro,numpyro")
    parser.add_argument("--chains", default="1,4", help="chain counts for eight schools")
    opts = parser.parse_args()
    torch.set_num_threads(1)
    backends = opts.backends.split(",")
    jobs = []
    if "e" in opts.only:
        for c in [int(c) for c in opts.chains.split(",")]:
            jobs.append(("eight schools", eight_schools, 500, 500, c))
    if "l" in opts.only:
        jobs.append(("logistic regression", logistic_regression, 300, 300, 1))
    for name, workload, warmup, num_samples, chains in jobs:
        results = {}
        for backend in backends:
            if backend == "numpyro":
                res = run_numpyro(name, warmup, num_samples, chains)
                if res is None:
                    continue
            else:
                res = run_backend(backend, workload, warmup, num_samples, chains)
            results[backend] = res
            wall, ess = res
            print(
                f"{name:20s} {chains} chain(s) {backend:8s} wall {wall:7.2f} s  "
                f"min ESS {ess:7.1f}  min ESS/s {ess / wall:7.2f}",
                flush=True,
            )
        if "ember" in results:
            e_wall, e_ess = results["ember"]
            for other, (wall, ess) in results.items():
                if other != "ember":
                    print(
                        f"{'':20s} ember vs {other}: wall x{wall / e_wall:.2f} faster, "
                        f"min ESS/s x{(e_ess / e_wall) / (ess / wall):.2f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
