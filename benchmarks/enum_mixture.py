"""Benchmark: SVI with exact enumeration on a 3-component Gaussian mixture.

1,000 points; the assignments are enumerated in parallel by TraceEnum_ELBO,
the mixture weights, locations and scale are parameters. Prints seconds per
SVI step (CPU time of this process, best of interleaved blocks) for ember and,
when importable, for pyro-ppl, and their ratio.

Run: ``.venv/bin/python benchmarks/enum_mixture.py`` (put pyro-ppl on PYTHONPATH to compare).
"""

from __future__ import annotations

import time

import torch

K, N = 3, 1000
STEPS, WARMUP, REPEATS = 100, 20, 5


def make_data():
    g = torch.Generator().manual_seed(0)
    z = torch.randint(0, K, (N,), generator=g)
    return torch.tensor([-3.0, 0.0, 4.0])[z] + torch.randn(N, generator=g)


def build(lib):
    pyro = lib
    dist = lib.distributions
    constraints = dist.constraints

    @lib.infer.config_enumerate
    def model(data):
        weights = pyro.param("weights", torch.ones(K) / K, constraint=constraints.simplex)
        locs = pyro.param("locs", torch.tensor([-1.0, 0.0, 1.0]))
        scale = pyro.param("scale", torch.tensor(2.0), constraint=constraints.positive)
        with pyro.plate("data", len(data)):
            z = pyro.sample("z", dist.Categorical(weights))
            pyro.sample("obs", dist.Normal(locs[z], scale), obs=data)

    def guide(data):
        pass

    return model, guide


def make_stepper(lib, data):
    lib.clear_param_store()
    lib.set_rng_seed(0)
    model, guide = build(lib)
    elbo = lib.infer.TraceEnum_ELBO(max_plate_nesting=1)
    svi = lib.infer.SVI(model, guide, lib.optim.Adam({"lr": 0.05}), elbo)
    for _ in range(WARMUP):
        svi.step(data)
    return svi


def time_block(svi, data):
    start = time.process_time()
    for _ in range(STEPS):
        loss = svi.step(data)
    return (time.process_time() - start) / STEPS, loss


def main():
    torch.set_num_threads(1)
    data = make_data()
    import ember
    import ember.infer  # noqa: F401
    import ember.optim  # noqa: F401

    libs = {"ember": ember}
    try:
        import pyro
        import pyro.infer  # noqa: F401
        import pyro.optim  # noqa: F401

        libs["pyro " + pyro.__version__] = pyro
    except ImportError:
        print("pyro-ppl not importable: no comparison")
    best = {name: float("inf") for name in libs}
    losses = {}
    for _ in range(REPEATS):  # interleave the libraries so machine load hits both alike
        for name, lib in libs.items():
            svi = make_stepper(lib, data)  # fresh parameters each block
            seconds, losses[name] = time_block(svi, data)
            best[name] = min(best[name], seconds)
    for name in libs:
        print(
            f"{name} TraceEnum_ELBO mixture (K={K}, N={N}): {best[name] * 1e3:.3f} ms/step "
            f"(best of {REPEATS} x {STEPS} steps), final loss {losses[name]:.2f}"
        )
    if len(libs) == 2:
        other = [n for n in libs if n != "ember"][0]
        print(f"speed-up ember vs {other}: {best[other] / best['ember']:.2f}x")


if __name__ == "__main__":
    main()
