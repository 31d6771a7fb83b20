"""Benchmark: NUTS wall time and minimum effective sample size per second, ember vs
pyro-ppl (and NumPyro when installed), on

  (e) eight schools, non-centered: 500 warm-up + 500 draws, 1 chain, 4 chains (in
      parallel processes) and 4 vectorized chains (ember's ``chain_method="vectorized"``,
      NumPyro's vectorized chains; pyro-ppl has no such mode); the vectorized row also
      reports its throughput (draws per second, and min ESS/s) against the same
      backend's 1-chain row;
  (l) Bayesian logistic regression on the bundled digits data ("is it a 3"; the 64
      pixels standardized, an intercept and 64 weights with Normal(0, 1) priors):
      300 warm-up + 300 draws, 1 chain.

Both libraries use their defaults (diagonal mass matrix adaptation, target acceptance
0.8, max tree depth 10, init to uniform). The ESS is ``ember.ops.stats``'s
``effective_sample_size``, applied to every backend's draws alike (chains grouped),
minimized over every scalar latent component. Wall time covers ``mcmc.run`` only
(setup and, for ember, recording the potential included; for NumPyro its JIT compile
time is included too; library imports, including the ``torch._dynamo`` that ember's
recording uses, are not). NumPyro is optional: its column appears when it is importable
(``pip install numpyro``); nothing else depends on it.

Run: ``.venv/bin/python benchmarks/mcmc.py [--only el] [--backends ember,pyro,numpyro]
[--chains 1,4,4v]`` (``4v``: 4 vectorized chains)
"""

from __future__ import annotations

import argparse
import importlib
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


def run_backend(backend, workload, warmup, num_samples, num_chains, seed=0, vectorized=False):
    if backend == "ember":
        import ember as pyro
        import ember.distributions as dist
        from ember.infer.mcmc import MCMC, NUTS
    elif backend == "pyro":
        if vectorized:
            return None
        import pyro
        import pyro.distributions as dist
        from pyro.infer.mcmc import MCMC, NUTS
    else:
        raise ValueError(backend)
    model, args = workload((pyro, dist))
    pyro.set_rng_seed(seed)
    options = {"chain_method": "vectorized"} if vectorized else {}
    mcmc = MCMC(
        NUTS(model),
        num_samples,
        warmup_steps=warmup,
        num_chains=num_chains,
        disable_progbar=True,
        mp_context="spawn" if num_chains > 1 and not vectorized else None,
        **options,
    )
    t0 = time.perf_counter()
    mcmc.run(*args)
    wall = time.perf_counter() - t0
    samples = mcmc.get_samples(group_by_chain=True)
    return wall, _min_ess(samples)


def run_numpyro(name, warmup, num_samples, num_chains, vectorized=False):  # pragma: no cover
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

    method = "vectorized" if vectorized else "parallel"
    if num_chains > 1 and not vectorized and jax.local_device_count() < num_chains:
        method = "sequential"
    mcmc = NMCMC(NNUTS(model), num_warmup=warmup, num_samples=num_samples,
                 num_chains=num_chains, chain_method=method, progress_bar=False)  # fmt: skip
    t0 = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(0), *args)
    wall = time.perf_counter() - t0
    samples = {k: torch.as_tensor(np.array(v)) for k, v in
               mcmc.get_samples(group_by_chain=True).items()}  # fmt: skip
    return wall, _min_ess(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="el", help="e: eight schools, l: logistic")
    parser.add_argument("--backends", default="ember,pyro,numpyro")
    parser.add_argument(
        "--chains", default="1,4,4v", help="chain counts for eight schools (4v: vectorized)"
    )
    opts = parser.parse_args()
    torch.set_num_threads(1)
    # ember records the potential's forward and backward pass with torch's make_fx, whose
    # first use imports torch._dynamo (about a second, once per process); imported here
    # up front, as jax is for NumPyro, so that no row pays a library import
    importlib.import_module("torch._dynamo")

    backends = opts.backends.split(",")
    if "numpyro" in backends:
        try:  # (before jax starts) one host device per parallel chain
            import numpyro

            numpyro.set_host_device_count(4)
        except ImportError:
            pass
    jobs = []
    if "e" in opts.only:
        for c in opts.chains.split(","):
            jobs.append(("eight schools", eight_schools, 500, 500, c))
    if "l" in opts.only:
        jobs.append(("logistic regression", logistic_regression, 300, 300, "1"))
    single = {}
    for name, workload, warmup, num_samples, chains_spec in jobs:
        vectorized = chains_spec.endswith("v")
        chains = int(chains_spec.rstrip("v"))
        label = f"{chains} {'vectorized' if vectorized else 'chain(s)':10s}"
        results = {}
        for backend in backends:
            if backend == "numpyro":
                res = run_numpyro(name, warmup, num_samples, chains, vectorized)
            else:
                res = run_backend(backend, workload, warmup, num_samples, chains,
                                  vectorized=vectorized)  # fmt: skip
            if res is None:
                continue
            results[backend] = res
            wall, ess = res
            print(
                f"{name:20s} {label} {backend:8s} wall {wall:7.2f} s  "
                f"min ESS {ess:7.1f}  min ESS/s {ess / wall:7.2f}",
                flush=True,
            )
            if chains == 1:
                single[(name, backend)] = res
            elif (name, backend) in single:
                wall1, ess1 = single[(name, backend)]
                print(
                    f"{'':20s} {backend} {label.strip()} vs 1 chain: throughput "
                    f"(draws/s) x{chains * wall1 / wall:.2f}, min ESS/s "
                    f"x{(ess / wall) / (ess1 / wall1):.2f}",
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
