"""Benchmark: SVI with exact enumeration on a 3-component Gaussian mixture.

1,000 points; the assignments are enumerated in parallel by TraceEnum_ELBO,
the mixture weights, locations and scale are parameters. Prints seconds per
SVI step (CPU time of this process, best of interleaved blocks) for ember,
for pyro-ppl when importable, and for a hand-written pure-torch version of
the same loss and optimizer, and their ratios. Validation is on for both
libraries.

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
    lib.enable_validation(True)
    model, guide = build(lib)
    elbo = lib.infer.TraceEnum_ELBO(max_plate_nesting=1)
    svi = lib.infer.SVI(model, guide, lib.optim.Adam({"lr": 0.05}), elbo)
    for _ in range(WARMUP):
        svi.step(data)
    return svi


class TorchStepper:
    """The same marginal likelihood and Adam updates, written directly in torch."""

    def __init__(self):
        self.weights = torch.ones(K) / K
        self.locs = torch.tensor([-1.0, 0.0, 1.0])
        self.scale = torch.tensor(2.0)
        simplex = torch.distributions.transform_to(torch.distributions.constraints.simplex)
        positive = torch.distributions.transform_to(torch.distributions.constraints.positive)
        self.to_simplex, self.to_positive = simplex, positive
        self.unconstrained = [
            simplex.inv(self.weights).requires_grad_(),
            self.locs.clone().requires_grad_(),
            positive.inv(self.scale).requires_grad_(),
        ]
        self.optim = torch.optim.Adam(self.unconstrained, lr=0.05)
        for _ in range(WARMUP):
            self.step(None)

    def step(self, data):
        data = make_data.cached if data is None else data
        w_u, locs, s_u = self.unconstrained
        weights, scale = self.to_simplex(w_u), self.to_positive(s_u)
        log_joint = torch.distributions.Normal(locs, scale).log_prob(data.unsqueeze(-1))
        loss = -(log_joint + weights.log()).logsumexp(-1).sum()
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        return loss.item()


def time_block(svi, data):
    start = time.process_time()
    for _ in range(STEPS):
        loss = svi.step(data)
    return (time.process_time() - start) / STEPS, loss


def main():
    torch.set_num_threads(1)
    data = make_data()
    make_data.cached = data
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
    names = list(libs) + ["torch"]
    best = {name: float("inf") for name in names}
    losses = {}
    for _ in range(REPEATS):  # interleave the libraries so machine load hits all alike
        for name in names:
            # fresh parameters each block
            svi = TorchStepper() if name == "torch" else make_stepper(libs[name], data)
            seconds, losses[name] = time_block(svi, data)
            best[name] = min(best[name], seconds)
    for name in names:
        print(
            f"{name if name != 'torch' else 'hand-written torch'} mixture (K={K}, N={N}): "
            f"{best[name] * 1e3:.3f} ms/step "
            f"(best of {REPEATS} x {STEPS} steps), final loss {losses[name]:.2f}"
        )
    print(f"ember / hand-written torch: {best['ember'] / best['torch']:.2f}x")
    if len(libs) == 2:
        other = [n for n in libs if n != "ember"][0]
        print(f"speed-up ember vs {other}: {best[other] / best['ember']:.2f}x")


if __name__ == "__main__":
    main()
