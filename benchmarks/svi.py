"""Benchmark: seconds per SVI step (and per Importance run) for ember, pyro-ppl and
hand-written pure torch.

Workloads:
  (a) 2 global latents (loc, scale), 100 observations in a plate;
  (b) a local latent per data point in a plate of 10,000 subsampled to 100;
  (c) a VAE 784-400-20 on a batch of 128 random binary images;
  (d) a 3-component Gaussian mixture on 1,000 points, assignments enumerated
      (TraceEnum_ELBO), MAP guide;
  (e) TraceGraph_ELBO on a model with 200 non-reparameterized Bernoulli sites;
  (f) Importance sampling with 1,000 samples (Normal-Normal, 100 points).

The same model code runs on ember and on pyro (``lib`` is either module); the
hand-written version computes the same ELBO and gradient with
torch.distributions and one torch optimizer. Validation is on for both
libraries. Prints each time and the ratios ember/torch and pyro/ember.

Run: ``.venv/bin/python benchmarks/svi.py [--scale X] [--only abcdef] [--syncs]``
(``--syncs`` counts the host syncs of one ember step, validation on and off.)
"""

from __future__ import annotations

import argparse

import _timing  # benchmarks/_timing.py (this script's folder is on sys.path)
import torch
import torch.distributions as td

import ember

try:
    import pyro
except ImportError:  # pyro-ppl is optional
    pyro = None

torch.set_num_threads(1)

# The hand-written versions use torch's fused CPU Adam kernel, as ember.optim.Adam
# does by default: the eager limit, not a slower optimizer than ember's.
FUSED = True


def timeit(fns, steps, warmup, repeats=7):
    """Seconds per call of each function in ``fns`` (a dict; None entries skipped).

    The functions are timed in turns (round robin), ``repeats`` chunks of
    ``steps`` calls each, and the best chunk counts: on a shared machine this
    keeps load changes from favouring one library. CPU time of this process
    (``time.process_time``) is used, with torch on one thread.
    """
    live = {k: f for k, f in fns.items() if f is not None}
    best = _timing.interleaved(live, steps, rounds=repeats, warmup=warmup)
    return {k: best.get(k) for k in fns}


# ------------------------------------------------------------------ (a)
DATA_A = torch.randn(100) * 2.0 + 1.0


def lib_a(lib):
    dist, constraints = lib.distributions, lib.distributions.constraints

    def model(data):
        loc = lib.sample("loc", dist.Normal(0.0, 10.0))
        scale = lib.sample("scale", dist.LogNormal(0.0, 1.0))
        with lib.plate("data", len(data)):
            lib.sample("obs", dist.Normal(loc, scale), obs=data)

    def guide(data):
        m1 = lib.param("m1", torch.tensor(0.0))
        s1 = lib.param("s1", torch.tensor(1.0), constraint=constraints.positive)
        m2 = lib.param("m2", torch.tensor(0.0))
        s2 = lib.param("s2", torch.tensor(1.0), constraint=constraints.positive)
        lib.sample("loc", dist.Normal(m1, s1))
        lib.sample("scale", dist.LogNormal(m2, s2))

    svi = lib.infer.SVI(model, guide, lib.optim.Adam({"lr": 0.01}), lib.infer.Trace_ELBO())
    return lambda: svi.step(DATA_A)


def torch_a():
    m1 = torch.tensor(0.0, requires_grad=True)
    s1 = torch.tensor(0.0, requires_grad=True)  # log of 1.0
    m2 = torch.tensor(0.0, requires_grad=True)
    s2 = torch.tensor(0.0, requires_grad=True)
    opt = torch.optim.Adam([m1, s1, m2, s2], lr=0.01, fused=FUSED)
    data = DATA_A

    def step():
        q_loc = td.Normal(m1, s1.exp())
        q_scale = td.LogNormal(m2, s2.exp())
        loc = q_loc.rsample()
        scale = q_scale.rsample()
        log_p = (
            td.Normal(0.0, 10.0).log_prob(loc)
            + td.LogNormal(0.0, 1.0).log_prob(scale)
            + td.Normal(loc, scale).log_prob(data).sum()
        )
        loss = -(log_p - q_loc.log_prob(loc) - q_scale.log_prob(scale))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step


# ------------------------------------------------------------------ (b)
N_B, B_B = 10_000, 100
DATA_B = torch.randn(N_B) + 0.5


def lib_b(lib):
    dist, constraints = lib.distributions, lib.distributions.constraints

    def model(data):
        mu = lib.sample("mu", dist.Normal(0.0, 1.0))
        with lib.plate("data", N_B, subsample_size=B_B) as idx:
            z = lib.sample("z", dist.Normal(mu, 1.0))
            lib.sample("obs", dist.Normal(z, 1.0), obs=data[idx])

    def guide(data):
        m = lib.param("m", torch.tensor(0.0))
        s = lib.param("s", torch.tensor(1.0), constraint=constraints.positive)
        z_loc = lib.param("z_loc", torch.zeros(N_B))
        z_scale = lib.param("z_scale", torch.ones(N_B), constraint=constraints.positive)
        lib.sample("mu", dist.Normal(m, s))
        with lib.plate("data", N_B, subsample_size=B_B) as idx:
            lib.sample("z", dist.Normal(z_loc[idx], z_scale[idx]))

    svi = lib.infer.SVI(model, guide, lib.optim.Adam({"lr": 0.01}), lib.infer.Trace_ELBO())
    return lambda: svi.step(DATA_B)


def torch_b():
    m = torch.tensor(0.0, requires_grad=True)
    s = torch.tensor(0.0, requires_grad=True)
    z_loc = torch.zeros(N_B, requires_grad=True)
    z_scale = torch.zeros(N_B, requires_grad=True)
    opt = torch.optim.Adam([m, s, z_loc, z_scale], lr=0.01, fused=FUSED)
    scale = N_B / B_B

    def step():
        idx = torch.randperm(N_B)[:B_B]
        q_mu = td.Normal(m, s.exp())
        mu = q_mu.rsample()
        q_z = td.Normal(z_loc[idx], z_scale.exp()[idx])
        z = q_z.rsample()
        log_p = td.Normal(0.0, 1.0).log_prob(mu) + scale * (
            td.Normal(mu, 1.0).log_prob(z).sum() + td.Normal(z, 1.0).log_prob(DATA_B[idx]).sum()
        )
        log_q = q_mu.log_prob(mu) + scale * q_z.log_prob(z).sum()
        loss = -(log_p - log_q)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step


# ------------------------------------------------------------------ (c)
BATCH_C = 128
DATA_C = (torch.rand(BATCH_C, 784) < 0.3).float()


class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(784, 400)
        self.fc21 = torch.nn.Linear(400, 20)
        self.fc22 = torch.nn.Linear(400, 20)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        return self.fc21(h), torch.nn.functional.softplus(self.fc22(h)) + 1e-4


class Decoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(20, 400)
        self.fc2 = torch.nn.Linear(400, 784)

    def forward(self, z):
        return self.fc2(torch.relu(self.fc1(z)))


def lib_c(lib):
    dist = lib.distributions
    torch.manual_seed(0)
    enc, dec = Encoder(), Decoder()

    def model(x):
        lib.module("decoder", dec)
        with lib.plate("data", x.shape[0]):
            z = lib.sample("z", dist.Normal(torch.zeros(20), 1.0).to_event(1))
            lib.sample("x", dist.Bernoulli(logits=dec(z)).to_event(1), obs=x)

    def guide(x):
        lib.module("encoder", enc)
        with lib.plate("data", x.shape[0]):
            loc, scale = enc(x)
            lib.sample("z", dist.Normal(loc, scale).to_event(1))

    svi = lib.infer.SVI(model, guide, lib.optim.Adam({"lr": 1e-3}), lib.infer.Trace_ELBO())
    return lambda: svi.step(DATA_C)


def torch_c():
    torch.manual_seed(0)
    enc, dec = Encoder(), Decoder()
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3, fused=FUSED)

    def step():
        loc, scale = enc(DATA_C)
        q = td.Independent(td.Normal(loc, scale), 1)
        z = q.rsample()
        log_p = td.Independent(td.Normal(torch.zeros(20), 1.0), 1).log_prob(z).sum()
        log_p = log_p + td.Independent(td.Bernoulli(logits=dec(z)), 1).log_prob(DATA_C).sum()
        loss = -(log_p - q.log_prob(z).sum())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step


# ------------------------------------------------------------------ (d)
K_D, N_D = 3, 1000
_g = torch.Generator().manual_seed(0)
DATA_D = torch.tensor([-3.0, 0.0, 4.0])[torch.randint(0, K_D, (N_D,), generator=_g)] + torch.randn(
    N_D, generator=_g
)


def lib_d(lib):
    dist, constraints = lib.distributions, lib.distributions.constraints

    def model(data):
        weights = lib.sample("weights", dist.Dirichlet(torch.ones(K_D)))
        with lib.plate("components", K_D):
            locs = lib.sample("locs", dist.Normal(0.0, 10.0))
        scale = lib.sample("scale", dist.LogNormal(0.0, 2.0))
        with lib.plate("data", len(data)):
            a = lib.sample("a", dist.Categorical(weights), infer={"enumerate": "parallel"})
            lib.sample("obs", dist.Normal(locs[a], scale), obs=data)

    def guide(data):
        w = lib.param("w", torch.ones(K_D) / K_D, constraint=constraints.simplex)
        locs = lib.param("locs_q", torch.tensor([-1.0, 0.0, 1.0]))
        scale = lib.param("scale_q", torch.tensor(1.0), constraint=constraints.positive)
        lib.sample("weights", dist.Delta(w, event_dim=1))
        with lib.plate("components", K_D):
            lib.sample("locs", dist.Delta(locs))
        lib.sample("scale", dist.Delta(scale))

    elbo = lib.infer.TraceEnum_ELBO(max_plate_nesting=1)
    svi = lib.infer.SVI(model, guide, lib.optim.Adam({"lr": 0.05}), elbo)
    return lambda: svi.step(DATA_D)


def torch_d():
    # the simplex parameter goes through transform_to(simplex), as in ember.param and pyro.param
    to_simplex = td.transform_to(td.constraints.simplex)
    w_u = to_simplex.inv(torch.ones(K_D) / K_D).requires_grad_(True)
    locs = torch.tensor([-1.0, 0.0, 1.0], requires_grad=True)
    s_u = torch.tensor(0.0, requires_grad=True)
    opt = torch.optim.Adam([w_u, locs, s_u], lr=0.05, fused=FUSED)

    def step():
        w = to_simplex(w_u)
        scale = s_u.exp()
        log_p = td.Dirichlet(torch.ones(K_D)).log_prob(w)
        log_p = log_p + td.Normal(0.0, 10.0).log_prob(locs).sum()
        log_p = log_p + td.LogNormal(0.0, 2.0).log_prob(scale)
        comp = td.Normal(locs, scale).log_prob(DATA_D.unsqueeze(-1)) + w.log()
        log_p = log_p + comp.logsumexp(-1).sum()
        loss = -log_p
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step


# ------------------------------------------------------------------ (e)
N_E = 200
DATA_E = torch.randn(N_E) + 1.0


def lib_e(lib):
    dist = lib.distributions

    def model(data):
        for i in range(N_E):
            z = lib.sample(f"z_{i}", dist.Bernoulli(0.3))
            lib.sample(f"x_{i}", dist.Normal(2.0 * z, 1.0), obs=data[i])

    def guide(data):
        logits = lib.param("logits", torch.zeros(N_E))
        probs = torch.sigmoid(logits)
        for i in range(N_E):
            lib.sample(f"z_{i}", dist.Bernoulli(probs[i]))

    svi = lib.infer.SVI(model, guide, lib.optim.Adam({"lr": 0.01}), lib.infer.TraceGraph_ELBO())
    return lambda: svi.step(DATA_E)


def torch_e():
    logits = torch.zeros(N_E, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.01, fused=FUSED)

    def step():
        q = td.Bernoulli(torch.sigmoid(logits))
        z = q.sample()
        log_q = q.log_prob(z)
        log_p = td.Bernoulli(torch.tensor(0.3)).log_prob(z) + td.Normal(2.0 * z, 1.0).log_prob(
            DATA_E
        )
        elbo_terms = log_p - log_q
        # downstream cost of z_i (dense dependency order): all terms j >= i
        cost = elbo_terms.detach().flip(0).cumsum(0).flip(0)
        surrogate = log_p.sum() + (log_q * cost).sum()
        loss = -elbo_terms.sum()
        (-surrogate).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step


# ------------------------------------------------------------------ (f)
DATA_F = torch.randn(100) + 1.0


def lib_f(lib):
    dist = lib.distributions

    def model(data):
        mu = lib.sample("mu", dist.Normal(0.0, 1.0))
        with lib.plate("data", len(data)):
            lib.sample("obs", dist.Normal(mu, 1.0), obs=data)

    def run():
        posterior = lib.infer.Importance(model, None, num_samples=1000).run(DATA_F)
        return lib.infer.EmpiricalMarginal(posterior, "mu").mean.item()

    return run


def torch_f():
    def run():
        mu = td.Normal(0.0, 1.0).sample((1000,))
        log_w = td.Normal(mu.unsqueeze(-1), 1.0).log_prob(DATA_F).sum(-1)
        w = (log_w - log_w.logsumexp(0)).exp()
        return (w * mu).sum().item()

    return run


CASES = {
    "a": ("2 latents, 100 obs", lib_a, torch_a, 100),
    "b": ("local latents, subsample 100/10k", lib_b, torch_b, 100),
    "c": ("VAE 784-400-20, batch 128", lib_c, torch_c, 10),
    "d": ("mixture K=3, 1000 pts, enum", lib_d, torch_d, 20),
    "e": ("TraceGraph, 200 Bernoulli sites", lib_e, torch_e, 3),
    "f": ("Importance, 1000 samples", lib_f, torch_f, 2),
}


def count_syncs(step, steps=3):
    """Host syncs per call of ``step``: ``(total, from torch.optim)``, counted as calls of the
    ops that hand a tensor's value to Python: the one behind ``.item()``, ``float(t)`` and
    ``bool(t)`` (``aten._local_scalar_dense``) and ``torch.equal``.

    torch's single-tensor Adam reads its per-parameter step counter with ``.item()``; those
    counters are CPU tensors even when the parameters live on a GPU, so they are reported
    apart from the others.
    """
    import traceback

    from torch.utils._python_dispatch import TorchDispatchMode

    class _Count(TorchDispatchMode):
        total = 0
        optim = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket.__name__ in ("_local_scalar_dense", "equal"):
                _Count.total += 1
                if any("torch/optim/" in f.filename for f in traceback.extract_stack()):
                    _Count.optim += 1
            return func(*args, **(kwargs or {}))

    with _Count():
        for _ in range(steps):
            step()
    return _Count.total / steps, _Count.optim / steps


def report_syncs(cases):
    """Print the host syncs of one ember step, validation on and off."""
    print("host syncs per ember step (.item()/float()/bool() on a tensor, torch.equal)")
    for key in cases:
        title, lib_builder, _, _ = CASES[key]
        for validate in (True, False):
            step = build_lib(ember, lib_builder)
            ember.enable_validation(validate)
            for _ in range(2):
                step()
            total, optim = count_syncs(step)
            print(
                f"({key}) {title:<36} validation {'on ' if validate else 'off'}: "
                f"{total:5.1f} syncs, of which {optim:.1f} in torch.optim (CPU step counters)"
            )
    ember.enable_validation(True)


def build_lib(lib, builder):
    lib.clear_param_store()
    lib.set_rng_seed(0)
    lib.enable_validation(True)
    try:
        return builder(lib)
    except (AttributeError, ImportError) as e:
        print(f"    ({lib.__name__}: not available: {e})")
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="abcdef")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply step counts")
    parser.add_argument(
        "--syncs", action="store_true", help="count host syncs per ember step instead of timing"
    )
    args = parser.parse_args()
    if args.syncs:
        report_syncs(args.only)
        return
    print(f"torch {torch.__version__}, pyro {pyro.__version__ if pyro else 'not installed'}")
    print("seconds per step (CPU time, best of 7 interleaved chunks)")
    print(
        f"{'case':<40}{'ember':>10}{'pyro':>10}{'torch':>10}{'ember/torch':>13}{'pyro/ember':>12}"
    )
    for key in args.only:
        title, lib_builder, torch_builder, steps = CASES[key]
        steps = max(1, int(steps * args.scale))
        fns = {"ember": build_lib(ember, lib_builder)}
        fns["pyro"] = build_lib(pyro, lib_builder) if pyro is not None else None
        torch.manual_seed(0)
        fns["torch"] = torch_builder()
        t = timeit(fns, steps, warmup=max(2, steps // 10))

        def fmt(x):
            return f"{x * 1e3:8.2f}ms" if x is not None else f"{'-':>10}"

        t_ember, t_pyro, t_torch = t["ember"], t["pyro"], t["torch"]
        r1 = f"{t_ember / t_torch:12.2f}x" if t_ember else f"{'-':>13}"
        r2 = f"{t_pyro / t_ember:11.2f}x" if (t_ember and t_pyro) else f"{'-':>12}"
        print(f"({key}) {title:<36}{fmt(t_ember)}{fmt(t_pyro)}{fmt(t_torch)}{r1}{r2}", flush=True)


if __name__ == "__main__":
    main()
