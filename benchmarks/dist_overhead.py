"""Cost of ember's distribution wrappers against plain torch.distributions (and pyro-ppl).

Three tables, CPU time per call in microseconds (best of many short runs, the
namespaces interleaved so a drifting machine load affects them alike):

1. construction at batch 100 with validation ON: ember, torch with
   ``validate_args=True``, torch with ``validate_args=False`` (the floor), and
   pyro-ppl when importable. ``Normal(loc, 1.0)`` is the distribution a model
   builds at every sample site.
2. ``log_prob`` with validation ON, of an observed value (two equal copies
   scored in turn, so each call checks the support) and of the distribution's
   own ``sample()`` (ember knows it lies in the support and skips that check).
3. construct + log_prob + rsample at batch 1,000, validation on and off, with
   the ember/torch ratio (target <= 1.10).

Run: .venv/bin/python benchmarks/dist_overhead.py
"""

from __future__ import annotations

import _timing  # benchmarks/_timing.py (this script's folder is on sys.path)
import torch

import ember
import ember.distributions as edist

try:
    import pyro
    import pyro.distributions as pdist
except ImportError:  # pyro-ppl is optional here
    pyro = pdist = None

tdist = torch.distributions


def interleaved(fns, number, rounds=15, repeat=3):
    """{label: best seconds per call}, alternating between the functions each round."""
    return _timing.interleaved(fns, number, rounds, repeat)


# --- 1. construction, batch 100 ------------------------------------------------------------

N = 100
torch.manual_seed(0)
LOC = torch.randn(N)
SCALE = torch.rand(N) + 0.5
PROBS = torch.rand(N) * 0.8 + 0.1
CONC = torch.rand(N, 4) + 0.5
LOGITS = torch.randn(N, 4)
TRIL = torch.eye(3).expand(N, 3, 3) + 0.1 * torch.randn(N, 3, 3).tril(-1)

CONSTRUCT = {
    "Normal(loc, 1.0)": lambda ns, **kw: ns.Normal(LOC, 1.0, **kw),
    "Normal(loc, scale)": lambda ns, **kw: ns.Normal(LOC, SCALE, **kw),
    "Gamma(conc, rate)": lambda ns, **kw: ns.Gamma(SCALE, SCALE, **kw),
    "Beta(a, b)": lambda ns, **kw: ns.Beta(SCALE, SCALE, **kw),
    "Bernoulli(probs)": lambda ns, **kw: ns.Bernoulli(PROBS, **kw),
    "Categorical(logits)": lambda ns, **kw: ns.Categorical(logits=LOGITS, **kw),
    "Dirichlet(conc)": lambda ns, **kw: ns.Dirichlet(CONC, **kw),
    "MVN(loc, scale_tril)": lambda ns, **kw: ns.MultivariateNormal(LOC[:3], scale_tril=TRIL, **kw),
    "Normal(...).to_event(1)": lambda ns, **kw: ns.Independent(ns.Normal(LOC, SCALE, **kw), 1),
}

VALUES = {
    "Normal(loc, 1.0)": torch.randn(N),
    "Normal(loc, scale)": torch.randn(N),
    "Gamma(conc, rate)": torch.rand(N) + 0.1,
    "Beta(a, b)": torch.rand(N) * 0.9 + 0.05,
    "Bernoulli(probs)": torch.bernoulli(PROBS),
    "Categorical(logits)": torch.randint(0, 4, (N,)),
    "Dirichlet(conc)": torch.distributions.Dirichlet(CONC).sample(),
    "MVN(loc, scale_tril)": torch.randn(N, 3),
    "Normal(...).to_event(1)": torch.randn(N),
}


def namespaces():
    spaces = {
        "ember": lambda make: lambda: make(edist),
        "torch": lambda make: lambda: make(tdist, validate_args=True),
        "torch(no val)": lambda make: lambda: make(tdist, validate_args=False),
    }
    if pdist is not None:
        spaces["pyro"] = lambda make: lambda: make(pdist)
    return spaces


def table(title, rows, columns):
    print(f"\n{title}")
    print(f"{'':26s}" + "".join(f"{c:>15s}" for c in columns))
    for label, cells in rows:
        print(f"{label:26s}" + "".join(f"{c:>15s}" for c in cells))


def construction_table():
    spaces = namespaces()
    rows = []
    for label, make in CONSTRUCT.items():
        t = interleaved({k: wrap(make) for k, wrap in spaces.items()}, number=100)
        cells = [f"{1e6 * t[k]:.1f}" for k in spaces]
        cells.append(f"{t['torch'] / t['ember']:.2f}x")
        if "pyro" in t:
            cells.append(f"{t['pyro'] / t['ember']:.2f}x")
        rows.append((label, cells))
    columns = list(spaces) + ["torch/ember"] + (["pyro/ember"] if pdist is not None else [])
    table(f"1. construction, batch {N}, validation on (us per call)", rows, columns)


def scorer(d, value):
    return lambda: d.log_prob(value)


def observed_scorer(d, value):
    """Scores two equal copies of ``value`` in turn: ember remembers the last value it
    validated, and observed data is usually a new tensor at each call."""
    copies = [value.clone(), value.clone()]
    state = [0]

    def score():
        state[0] ^= 1
        return d.log_prob(copies[state[0]])

    return score


def log_prob_table():
    spaces = namespaces()
    rows = []
    for label, make in CONSTRUCT.items():
        value = VALUES[label]
        fns = {}
        for k, wrap in spaces.items():
            d = wrap(make)()
            fns[k + " obs"] = observed_scorer(d, value)
            fns[k + " own"] = scorer(d, d.sample())
        t = interleaved(fns, number=100, rounds=9)
        cells = [f"{1e6 * t[k + ' obs']:.1f} / {1e6 * t[k + ' own']:.1f}" for k in spaces]
        rows.append((label, cells))
    table(
        "2. log_prob, validation on: observed value / own sample() (us per call)",
        rows,
        list(spaces),
    )


# --- 3. construct + log_prob + rsample, batch 1,000 -------------------------------------------

BATCH = 1000
MVN_LOC = torch.randn(BATCH, 10)
MVN_TRIL = torch.eye(10).expand(BATCH, 10, 10) + 0.1 * torch.randn(BATCH, 10, 10).tril(-1)
BIG_LOC = torch.randn(BATCH)
BIG_SCALE = torch.rand(BATCH) + 0.5
BIG_CONC = torch.rand(BATCH, 5) + 0.5
BIG_LOGITS = torch.randn(BATCH, 6)


def workloads(ns):
    def normal():
        d = ns.Normal(BIG_LOC, BIG_SCALE)
        d.log_prob(d.rsample())

    def mvn():
        d = ns.MultivariateNormal(MVN_LOC, scale_tril=MVN_TRIL)
        d.log_prob(d.rsample())

    def dirichlet():
        d = ns.Dirichlet(BIG_CONC)
        d.log_prob(d.rsample())

    def categorical():
        d = ns.Categorical(logits=BIG_LOGITS)
        d.log_prob(d.sample())

    return {
        "Normal": normal,
        "MultivariateNormal(10)": mvn,
        "Dirichlet": dirichlet,
        "Categorical": categorical,
    }


def workload_table():
    spaces = {"torch": tdist, "ember": edist}
    if pdist is not None:
        spaces["pyro"] = pdist
    for validate in (True, False):
        ember.enable_validation(validate)
        if pyro is not None:
            pyro.enable_validation(validate)
        loads = {k: workloads(ns) for k, ns in spaces.items()}
        rows = []
        for name in loads["torch"]:
            number = 20 if "Multivariate" not in name else 5
            t = interleaved({k: loads[k][name] for k in spaces}, number=number, rounds=7)
            cells = [f"{1e6 * t[k]:.1f}" for k in spaces] + [f"{t['ember'] / t['torch']:.3f}"]
            rows.append((name, cells))
        table(
            f"3. construct + log_prob + rsample, batch {BATCH}, validation "
            f"{'on' if validate else 'off'} (us per call)",
            rows,
            list(spaces) + ["ember/torch"],
        )
    ember.enable_validation(True)
    if pyro is not None:
        pyro.enable_validation(True)


def main():
    torch.set_num_threads(1)
    ember.enable_validation(True)
    if pyro is not None:
        pyro.enable_validation(True)
    else:
        print("pyro-ppl is absent: comparing with torch only")
    construction_table()
    log_prob_table()
    workload_table()


if __name__ == "__main__":
    main()
