"""Benchmark: infer_discrete and TraceTMC_ELBO on a hidden Markov model.

An HMM with 100 steps and 5 hidden states, Gaussian emissions, written with
``markov`` so that enumeration dims are recycled. Timed, for ember and (when
importable) pyro-ppl, each call as a user would make it:

* ``infer_discrete`` MAP (``temperature=0``, Viterbi) and posterior sampling
  (``temperature=1``) of the 100 states;
* ``TraceTMC_ELBO.differentiable_loss`` plus ``backward``, with the states
  enumerated exhaustively (the exact marginal likelihood), and with 10 draws
  per state from the prior (``num_samples=10``).

Prints CPU seconds per call (best of interleaved blocks, one torch thread) and
the ratio pyro / ember. Validation is on for both libraries.

Run: ``.venv/bin/python benchmarks/discrete.py``.
"""

from __future__ import annotations

import torch
from _timing import interleaved

T, K = 100, 5


def make_data():
    g = torch.Generator().manual_seed(0)
    states = [0]
    trans = 0.7 * torch.eye(K) + 0.3 / K
    for _ in range(T):
        states.append(int(torch.multinomial(trans[states[-1]], 1, generator=g)))
    return torch.arange(float(K))[torch.tensor(states[1:])] + torch.randn(T, generator=g)


def build(lib):
    pyro = lib
    dist = lib.distributions

    def hmm(data):
        trans = pyro.param("trans", 0.7 * torch.eye(K) + 0.3 / K)
        locs = pyro.param("locs", torch.arange(float(K)))
        x = 0
        states = []
        for t in pyro.markov(range(len(data))):
            x = pyro.sample(f"x_{t}", dist.Categorical(trans[x]))
            pyro.sample(f"y_{t}", dist.Normal(locs[x], 1.0), obs=data[t])
            states.append(x)
        return states

    return hmm


def calls(lib, data):
    lib.clear_param_store()
    lib.set_rng_seed(0)
    lib.enable_validation(True)
    infer = lib.infer
    hmm = build(lib)
    enumerated = infer.config_enumerate(hmm)
    sampled = infer.config_enumerate(hmm, num_samples=10)
    viterbi = infer.infer_discrete(enumerated, first_available_dim=-1, temperature=0)
    sampler = infer.infer_discrete(enumerated, first_available_dim=-1, temperature=1)
    tmc = infer.TraceTMC_ELBO(max_plate_nesting=0)

    def tmc_step(model):
        def step():
            loss = tmc.differentiable_loss(model, lambda data: None, data)
            loss.backward()
            return float(loss.detach())

        return step

    return {
        "infer_discrete MAP": lambda: viterbi(data),
        "infer_discrete sample": lambda: sampler(data),
        "TraceTMC_ELBO exact + backward": tmc_step(enumerated),
        "TraceTMC_ELBO 10 draws + backward": tmc_step(sampled),
    }, (
        tmc_step(enumerated),
        lambda: infer.TraceEnum_ELBO(max_plate_nesting=0).loss(enumerated, lambda data: None, data),
    )


def main():
    torch.set_num_threads(1)
    data = make_data()
    import ember
    import ember.infer  # noqa: F401

    libs = {"ember": ember}
    try:
        import pyro
        import pyro.infer  # noqa: F401

        libs["pyro " + pyro.__version__] = pyro
    except ImportError:
        print("pyro-ppl not importable: no comparison")
    fns, losses = {}, {}
    for name, lib in libs.items():
        lib_calls, (exact, enum_loss) = calls(lib, data)
        losses[name] = (exact(), enum_loss())
        for label, fn in lib_calls.items():
            fns[(label, name)] = fn
    # with every state enumerated exactly, the TMC loss is -log evidence, which
    # TraceEnum_ELBO computes too (pyro-ppl 1.9 counts log p of a site enumerated in
    # the model twice in its TMC estimate, so its TMC figure differs)
    for n, (tmc_loss, enum_loss) in losses.items():
        print(f"{n}: TraceTMC_ELBO exact loss {tmc_loss:.4f}, TraceEnum_ELBO loss {enum_loss:.4f}")
    best = interleaved(fns, number=3, rounds=3)
    labels = dict.fromkeys(label for label, _ in fns)
    for label in labels:
        row = [f"{label} (HMM T={T}, K={K}):"]
        for name in libs:
            row.append(f"{name} {best[(label, name)] * 1e3:8.1f} ms")
        if len(libs) == 2:
            other = [n for n in libs if n != "ember"][0]
            row.append(f"speed-up {best[(label, other)] / best[(label, 'ember')]:.2f}x")
        print("  ".join(row))


if __name__ == "__main__":
    main()
