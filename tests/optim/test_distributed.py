"""Data-parallel SVI on torch.distributed (gloo, CPU): ranks started with torchrun."""

import textwrap
from pathlib import Path

import pytest
import torch

import ember
import ember.distributions as dist
from ember.optim import SGD
from ember.optim.distributed import (
    DistributedOptimizer,
    HorovodOptimizer,
    shard_indices,
    shard_plate,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "svi_distributed.py"

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with the gloo backend is not available in this torch build",
)


def torchrun_ok(torchrun, nproc, *args):
    """Run a script on ``nproc`` gloo ranks; it must succeed; returns its stdout."""
    out = torchrun(nproc, *args)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


@pytest.mark.parametrize("size, world", [(10, 3), (7, 3), (4, 4), (5, 1)])
def test_shards_partition_the_data(size, world):
    shards = [shard_indices(size, r, world) for r in range(world)]
    assert torch.equal(torch.cat(shards), torch.arange(size))
    lengths = [len(s) for s in shards]
    assert max(lengths) - min(lengths) <= 1


def test_shard_errors_name_the_problem():
    with pytest.raises(ValueError, match="rank must be an int in \\[0, 2\\)"):
        shard_indices(10, rank=2, world_size=2)
    with pytest.raises(ValueError, match="3 data points cannot be shared by 4 ranks"):
        shard_indices(3, rank=0, world_size=4)
    with pytest.raises(ValueError, match="subsample_size=9 must be in \\[1, 5\\]"):
        with shard_plate("data", 5, subsample_size=9):
            pass


def test_one_process_is_the_wrapped_optimizer():
    """Without a process group the plate is the full plate and the step is plain SGD."""

    def model(data):
        with shard_plate("data", len(data)) as idx:
            ember.sample("x", dist.Normal(0.0, 1.0), obs=data[idx])

    tr = ember.poutine.trace(model).get_trace(torch.arange(5.0))
    assert tr.nodes["x"]["value"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert tr.nodes["x"]["scale"] == 1.0
    x = torch.tensor([3.0], requires_grad=True)
    (x**2).sum().backward()
    DistributedOptimizer(SGD({"lr": 0.25}))([x])
    assert x.item() == 1.5


def test_horovod_name_needs_horovod():
    try:
        import horovod.torch  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="needs the horovod package"):
            HorovodOptimizer(SGD({"lr": 0.1}))
    else:  # pragma: no cover - horovod is not in the test extras
        pytest.skip("horovod is installed")


def test_wrapping_a_torch_optimizer_is_refused():
    with pytest.raises(TypeError, match="wraps an ember.optim optimizer"):
        DistributedOptimizer(torch.optim.SGD)


WORKER = textwrap.dedent(
    """
    import os, sys, torch, torch.distributed as tdist
    import ember, ember.distributions as dist
    from ember.optim import SGD
    from ember.optim.distributed import DistributedOptimizer, get_rank, shard_plate

    tdist.init_process_group("gloo")
    rank = get_rank()
    data = torch.arange(7.0, dtype=torch.float64)
    mode = sys.argv[2]

    def loss(theta):
        # a global term and a likelihood over the sharded plate (7 points, 3 ranks:
        # shards of 3, 2 and 2)
        def model():
            ember.factor("prior", -0.5 * (theta**2).sum())
            with shard_plate("data", 7) as idx:
                ember.sample("x", dist.Normal(theta[0], theta[1].exp()), obs=data[idx])
        tr = ember.poutine.trace(model).get_trace()
        return -tr.log_prob_sum()

    # each rank starts from a different value: rank 0's is broadcast at creation
    name = "theta" if mode == "same" else f"theta_{rank}"
    optim = DistributedOptimizer(SGD({"lr": 1.0}))
    try:
        with optim.step_context():
            theta = ember.param(name, torch.tensor([0.5, 0.1], dtype=torch.float64) + rank)
            unconstrained = ember.get_param_store().get_unconstrained(name)
            loss(theta).backward()
            optim([unconstrained])
    except ValueError as e:
        print(f"rank {rank}: ValueError: {e}", flush=True)
        tdist.destroy_process_group()
        os._exit(0)  # (gloo's threads can abort a normal interpreter shutdown)
    if rank == 0:
        torch.save(unconstrained.detach(), sys.argv[1])
    tdist.barrier()
    tdist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)
    """
)


@pytest.mark.slow
def test_averaged_gradients_are_the_full_data_gradient(tmp_path, torchrun):
    """Three ranks with shards of 3, 2 and 2 points and different initial values: the
    parameter is broadcast from rank 0 as it is created, and after one SGD step (lr 1)
    every rank holds rank 0's initial value minus the gradient of the full-data loss
    there, exactly."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "theta.pt"
    torchrun_ok(torchrun, 3, script, out, "same")
    theta0 = torch.tensor([0.5, 0.1], dtype=torch.float64, requires_grad=True)
    data = torch.arange(7.0, dtype=torch.float64)
    full = 0.5 * (theta0**2).sum() - dist.Normal(theta0[0], theta0[1].exp()).log_prob(data).sum()
    full.backward()
    expected = theta0.detach() - theta0.grad
    assert torch.allclose(torch.load(out), expected, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_different_parameter_names_on_ranks_are_refused(tmp_path, torchrun):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    stdout = torchrun_ok(torchrun, 3, script, tmp_path / "unused.pt", "different")
    assert stdout.count("differ from another rank's") == 3


@pytest.mark.slow
def test_example_matches_one_process_on_the_full_batch(torchrun):
    stdout = torchrun_ok(torchrun, 2, EXAMPLE, "--steps", 50, "--check")
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("largest parameter difference, data-parallel vs single process:")
    assert float(last.rsplit(" ", 1)[1]) <= 1e-5


@pytest.mark.slow
def test_resuming_from_a_checkpoint_reproduces_the_trajectory(tmp_path, torchrun):
    torchrun_ok(torchrun, 2, EXAMPLE, "--steps", 20, "--save", tmp_path / "ck")
    torchrun_ok(
        torchrun,
        2,
        EXAMPLE,
        "--steps",
        20,
        "--resume",
        tmp_path / "ck",
        "--dump",
        tmp_path / "a.pt",
    )
    torchrun_ok(torchrun, 2, EXAMPLE, "--steps", 40, "--dump", tmp_path / "b.pt")
    resumed, straight = torch.load(tmp_path / "a.pt"), torch.load(tmp_path / "b.pt")
    assert resumed.keys() == straight.keys()
    for k in resumed:
        # the same arithmetic in the same order: equal up to the last bits at most
        assert torch.allclose(resumed[k], straight[k], rtol=1e-9, atol=1e-12), (
            k,
            (resumed[k] - straight[k]).abs().max(),
        )
