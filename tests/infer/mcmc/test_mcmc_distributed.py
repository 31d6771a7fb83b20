"""MCMC chains on torch.distributed ranks (gloo, CPU), gathered with MCMC.gather_chains."""

import importlib.util
import re
import textwrap
from pathlib import Path

import pytest
import torch

import ember
import ember.distributions as dist
from ember.infer.mcmc import MCMC, NUTS
from ember.infer.mcmc.distributed import chain_seed, gather_chains, set_rank_seed
from ember.ops.stats import effective_sample_size, split_gelman_rubin

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "mcmc_distributed.py"

needs_gloo = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with the gloo backend is not available in this torch build",
)


def load_example():
    spec = importlib.util.spec_from_file_location("mcmc_distributed_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_model():
    ember.sample("x", dist.Normal(0.0, 1.0))


# ---------------------------------------------------------------- one process


def test_seeding_rule():
    assert [chain_seed(7, r) for r in range(4)] == [7, 8, 9, 10]
    # k chains per rank: chain c of rank r gets base + r * k + c, its global index
    seeds = [chain_seed(7, r, num_chains=3) + c for r in range(3) for c in range(3)]
    assert seeds == list(range(7, 16))
    with pytest.raises(ValueError, match="num_chains must be at least 1, got 0"):
        chain_seed(0, 1, num_chains=0)
    with pytest.raises(ValueError, match="rank must be non-negative"):
        chain_seed(0, -1)
    with pytest.raises(TypeError, match="rank must be an int, got 1.5"):
        chain_seed(0, 1.5)


def test_seeding_rule_gives_worker_chains_their_global_index(monkeypatch):
    """k chains of rank r in worker processes: chain c draws as a lone chain seeded
    base + r * k + c would."""
    monkeypatch.setattr(torch.multiprocessing, "cpu_count", lambda: 3)
    base, rank, k = 10, 1, 2
    ember.set_rng_seed(chain_seed(base, rank, num_chains=k))
    mcmc = MCMC(NUTS(tiny_model), num_samples=15, warmup_steps=10, num_chains=k,
                mp_context="fork", disable_progbar=True)  # fmt: skip
    mcmc.run()
    draws = mcmc.get_samples(group_by_chain=True)["x"]
    for c in range(k):
        ember.set_rng_seed(base + rank * k + c)
        lone = MCMC(NUTS(tiny_model), num_samples=15, warmup_steps=10, disable_progbar=True)
        lone.run()
        assert torch.equal(lone.get_samples()["x"], draws[c])


def test_set_rank_seed_without_a_process_group_is_the_base_seed():
    assert set_rank_seed(21, num_chains=4) == 21
    a = torch.randn(3)
    ember.set_rng_seed(21)
    assert torch.equal(a, torch.randn(3))


def test_gather_without_a_process_group_says_how_to_start_one():
    ember.set_rng_seed(0)
    mcmc = MCMC(NUTS(tiny_model), num_samples=5, warmup_steps=5, disable_progbar=True)
    mcmc.run()
    with pytest.raises(RuntimeError, match="torch.distributed is not initialized.*torchrun"):
        mcmc.gather_chains()
    with pytest.raises(RuntimeError, match="init_process_group"):
        gather_chains(mcmc.get_samples(group_by_chain=True), [{}], dst=0)
    # nothing changed locally
    assert mcmc.get_samples(group_by_chain=True)["x"].shape == (1, 5)


# ---------------------------------------------------------------- two ranks


@pytest.mark.slow
@needs_gloo
def test_two_ranks_gathered_on_rank_zero_match_the_exact_posterior(tmp_path, torchrun):
    samples, warmup, seed = 500, 300, 3
    run = torchrun(
        2, EXAMPLE, "--samples", samples, "--warmup", warmup, "--seed", seed, "--check",
        "--out", tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "2 rank(s) x 1 chain(s): 2 chains on rank 0" in run.stdout
    assert "r_hat" in run.stdout  # rank 0 printed the summary

    gathered = torch.load(tmp_path / "gathered.pt", weights_only=False)
    local = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    draws = gathered["samples"]["loc"]
    assert draws.shape == (2, samples, 2)
    # chain order by rank, bit for bit what each rank had
    for r in range(2):
        assert local[r]["loc"].shape == (1, samples, 2)
        assert torch.equal(draws[r], local[r]["loc"][0])
    # independent chains (different seeds): not the same draws
    assert not torch.allclose(draws[0], draws[1])
    assert (draws[0] - draws[1]).abs().max() > 0.1

    # pooled moments against the conjugate posterior: prior N(0, 10^2), unit noise
    y = gathered["y"]
    precision = 1 / 100 + y.shape[0]
    exact_mean, exact_var = y.sum(0) / precision, 1 / precision
    ess = effective_sample_size(draws, chain_dim=0, sample_dim=1)
    pooled = draws.reshape(-1, 2)
    assert ((pooled.mean(0) - exact_mean).abs() < 4 * (exact_var / ess).sqrt()).all()
    assert ((pooled.var(0) - exact_var).abs() < 4 * exact_var * (2 / ess).sqrt()).all()

    # diagnostics on rank 0 span both chains: r_hat and n_eff of the pair, kernel
    # figures of both chains
    diag = gathered["diagnostics"]
    assert torch.allclose(diag["loc"]["r_hat"], split_gelman_rubin(draws))
    assert torch.allclose(diag["loc"]["n_eff"], ess)
    for r in range(2):
        alone = split_gelman_rubin(draws[r : r + 1])
        assert not torch.allclose(diag["loc"]["r_hat"], alone)
    assert (diag["loc"]["r_hat"] < 1.05).all()
    assert set(diag["divergences"]) == {"chain 0", "chain 1"}
    assert set(diag["acceptance rate"]) == {"chain 0", "chain 1"}

    # the seeding rule makes rank 1's chain reproducible in this process
    example = load_example()
    ember.set_rng_seed(seed + 1)
    mcmc = MCMC(NUTS(example.model), num_samples=samples, warmup_steps=warmup,
                disable_progbar=True)  # fmt: skip
    mcmc.run(example.make_data())
    assert torch.allclose(mcmc.get_samples()["loc"], draws[1], rtol=0, atol=1e-10)


@pytest.mark.slow
@needs_gloo
def test_two_ranks_of_two_vectorized_chains(tmp_path, torchrun):
    run = torchrun(
        2, EXAMPLE, "--chains", 2, "--chain-method", "vectorized", "--samples", 300,
        "--warmup", 200, "--seed", 5, "--check", "--out", tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "2 rank(s) x 2 chain(s): 4 chains on rank 0" in run.stdout
    gathered = torch.load(tmp_path / "gathered.pt", weights_only=False)
    local = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    draws = gathered["samples"]["loc"]
    assert draws.shape == (4, 300, 2)
    assert torch.equal(draws, torch.cat([local[0]["loc"], local[1]["loc"]]))
    assert len({float(chain.sum()) for chain in draws}) == 4  # four different chains
    assert set(gathered["diagnostics"]["divergences"]) == {f"chain {c}" for c in range(4)}
    assert torch.allclose(gathered["diagnostics"]["loc"]["r_hat"], split_gelman_rubin(draws))


WORKER = textwrap.dedent(
    """
    import os, sys
    import torch
    import torch.distributed as tdist
    import ember
    import ember.distributions as dist
    from ember.infer.mcmc import MCMC, RandomWalkKernel
    from ember.infer.mcmc.distributed import set_rank_seed

    def model():
        ember.sample("z", dist.Normal(torch.zeros(3), 1.0).to_event(1))

    def report(line):
        # one file per rank: the ranks' stdout lines could interleave
        with open(os.path.join(out, f"log{rank}.txt"), "a") as f:
            f.write(line + "\\n")

    def attempt(label, fn):
        try:
            fn()
            report(f"rank {rank} {label}: ok")
        except (RuntimeError, ValueError) as e:
            report(f"rank {rank} {label}: {type(e).__name__}: {e}")

    torch.set_num_threads(1)
    tdist.init_process_group("gloo")
    rank = tdist.get_rank()
    out = sys.argv[1]

    # two chains per rank, gathered on every rank
    set_rank_seed(0, num_chains=2)
    mcmc = MCMC(RandomWalkKernel(model), num_samples=30, warmup_steps=20, num_chains=2,
                initial_params={"z": torch.zeros(2, 3)}, disable_progbar=True)
    mcmc.run()
    local = mcmc.get_samples(group_by_chain=True)
    mcmc.gather_chains(dst=None)
    torch.save({"local": local, "all": mcmc.get_samples(group_by_chain=True),
                "diag": mcmc.diagnostics(), "num_chains": mcmc.num_chains},
               os.path.join(out, f"all{rank}.pt"))
    attempt("again", lambda: mcmc.gather_chains(dst=None))
    try:
        import arviz  # optional: the InferenceData of the gathered run has every chain
    except ImportError:
        pass
    else:
        chains = mcmc.to_inference_data().posterior.sizes["chain"]
        report(f"rank {rank} arviz chains: {chains}")

    # a rank that did not run
    fresh = MCMC(RandomWalkKernel(model), num_samples=10, warmup_steps=5,
                 disable_progbar=True)
    if rank == 0:
        fresh.run()
    attempt("norun", lambda: fresh.gather_chains())

    # different numbers of draws
    other = MCMC(RandomWalkKernel(model), num_samples=10 + 5 * rank, warmup_steps=5,
                 disable_progbar=True)
    other.run()
    attempt("mismatch", lambda: other.gather_chains())
    attempt("baddst", lambda: other.gather_chains(dst=2))

    tdist.barrier()
    tdist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)
    """
)


@pytest.mark.slow
@needs_gloo
def test_all_ranks_receive_and_errors_are_raised_on_every_rank(tmp_path, torchrun):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    run = torchrun(2, script, tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = [torch.load(tmp_path / f"all{r}.pt", weights_only=False) for r in range(2)]
    expected = torch.cat([results[0]["local"]["z"], results[1]["local"]["z"]])
    assert expected.shape == (4, 30, 3)
    for res in results:
        assert torch.equal(res["all"]["z"], expected)
        assert res["num_chains"] == 2  # this process's own chain count is kept
        assert set(res["diag"]["acceptance rate"]) == {f"chain {c}" for c in range(4)}
        assert torch.allclose(res["diag"]["z"]["r_hat"], split_gelman_rubin(expected))
    # seeds base + rank * 2: the ranks' first chains differ
    assert not torch.equal(expected[0], expected[2])

    lines = "".join((tmp_path / f"log{r}.txt").read_text() for r in range(2))
    if importlib.util.find_spec("arviz") is not None:
        assert "rank 0 arviz chains: 4" in lines and "rank 1 arviz chains: 4" in lines
    for rank in range(2):
        again = re.search(rf"rank {rank} again: (.*)", lines).group(1)
        assert again.startswith("RuntimeError") and "gathered already" in again
        assert "rank 0 cannot contribute" in again and "rank 1 cannot contribute" in again
        norun = re.search(rf"rank {rank} norun: (.*)", lines).group(1)
        assert "RuntimeError" in norun and "rank 1 cannot contribute" in norun
        assert "call run() on every rank" in norun
        mismatch = re.search(rf"rank {rank} mismatch: (.*)", lines).group(1)
        assert mismatch.startswith("ValueError") and "site 'z'" in mismatch
        assert "(15, 3)" in mismatch and "(10, 3)" in mismatch
        baddst = re.search(rf"rank {rank} baddst: (.*)", lines).group(1)
        assert baddst.startswith("ValueError") and "dst=2 is not a rank" in baddst
