"""MCMC chains spread over the ranks of a ``torch.distributed`` process group.

Every process (a *rank*, started by ``torchrun``) runs an ordinary
:class:`~ember.infer.mcmc.MCMC` with its own chain(s); afterwards one collective
call, :meth:`MCMC.gather_chains(dst=0) <ember.infer.mcmc.MCMC.gather_chains>`
(built on :func:`gather_chains` here), brings every rank's draws and per-chain
kernel diagnostics to rank ``dst``. There ``get_samples``, ``summary``,
``diagnostics`` (effective sample size and R-hat over *all* chains) and
``to_inference_data`` cover every chain; the chains are ordered by rank, and
within a rank in the rank's own order, so global chain ``g`` is chain
``g % k`` of rank ``g // k`` when every rank runs ``k`` chains. A complete
script: ``examples/mcmc_distributed.py``.

Seeding rule (:func:`set_rank_seed`): rank ``r`` running ``k`` chains seeds its
generators with ``base_seed + r * k``. With one chain per rank that is
``base_seed + rank``; with ``k`` chains in forked worker processes (Linux's
default start method; the MCMC driver seeds chain ``c`` of a process with the
process seed ``+ c``) chain ``c`` of rank ``r`` is seeded ``base_seed + r * k +
c``, i.e. ``base_seed`` plus its global chain index, so no two chains share a
seed. A run is reproducible: rerunning rank ``r`` alone after
``ember.set_rng_seed(base_seed + r * k)`` gives the same draws.

Nothing but the final draws and diagnostics is communicated: the chains run
independently (no adaptation is shared across ranks). Draws travel as CPU
tensors through ``gather_object`` and are put back on the device of the
receiving rank's own draws; with the NCCL backend set the current CUDA device of
every rank (``torch.cuda.set_device``) first, as ``torch.distributed`` requires
for object collectives.

Example (the calls a rank makes; run with
``torchrun --standalone --nproc_per_node 2 script.py``)::

    import torch.distributed as dist
    from ember.infer.mcmc import MCMC, NUTS
    from ember.infer.mcmc.distributed import set_rank_seed

    dist.init_process_group("gloo")
    set_rank_seed(0)                       # rank r: seed 0 + r
    mcmc = MCMC(NUTS(model), num_samples=500, warmup_steps=500)
    mcmc.run(data)
    mcmc.gather_chains(dst=0)              # every rank calls it
    if dist.get_rank() == 0:
        mcmc.summary()                     # all chains, r_hat across ranks
    dist.destroy_process_group()
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional

import torch
import torch.distributed as tdist

from ember.util import set_rng_seed

__all__ = [
    "GatheredChains",
    "chain_seed",
    "gather_chains",
    "require_process_group",
    "set_rank_seed",
]


def require_process_group(caller: str) -> None:
    """Raise a RuntimeError saying how to start ``torch.distributed`` unless a default
    process group is initialized; ``caller`` names the function in the message."""
    if not tdist.is_available():
        raise RuntimeError(
            f"{caller}: torch.distributed is not available in this torch build, so chains "
            "cannot be gathered across processes"
        )
    if not tdist.is_initialized():
        raise RuntimeError(
            f"{caller}: torch.distributed is not initialized; start the processes with "
            "torchrun (e.g. `torchrun --standalone --nproc_per_node 2 script.py`) and call "
            "torch.distributed.init_process_group('gloo') (or 'nccl' on GPUs) in each of "
            "them before running and gathering the chains"
        )


def chain_seed(base_seed: int, rank: int, num_chains: int = 1) -> int:
    """The seed of rank ``rank`` that runs ``num_chains`` chains: ``base_seed + rank *
    num_chains`` (see the module's seeding rule).

    Example::

        >>> [chain_seed(10, r) for r in range(3)], chain_seed(10, rank=2, num_chains=4)
        ([10, 11, 12], 18)
    """
    for what, value in (("base_seed", base_seed), ("rank", rank), ("num_chains", num_chains)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"chain_seed: {what} must be an int, got {value!r}")
    if rank < 0:
        raise ValueError(f"chain_seed: rank must be non-negative, got {rank}")
    if num_chains < 1:
        raise ValueError(f"chain_seed: num_chains must be at least 1, got {num_chains}")
    return base_seed + rank * num_chains


def set_rank_seed(base_seed: int, num_chains: int = 1, group=None) -> int:
    """Seed torch, ``random`` and NumPy on this rank by the seeding rule (``base_seed +
    rank * num_chains``; ``base_seed`` itself without a process group) and return the
    seed used. Call it on every rank before ``MCMC(...).run``; ``num_chains`` is the
    number of chains each rank runs."""
    rank = tdist.get_rank(group) if tdist.is_available() and tdist.is_initialized() else 0
    seed = chain_seed(base_seed, rank, num_chains)
    set_rng_seed(seed)
    return seed


class GatheredChains(NamedTuple):
    """The chains of every rank, in rank order.

    :ivar dict samples: site name to draws shaped ``(total_chains, num_samples, ...)``.
    :ivar list diagnostics: one kernel diagnostics dict per chain.
    :ivar list chains_per_rank: how many chains each rank contributed.
    """

    samples: Dict[str, torch.Tensor]
    diagnostics: List[dict]
    chains_per_rank: List[int]


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _describe(samples: Optional[Dict[str, torch.Tensor]], problem: Optional[str]) -> dict:
    if problem is not None:
        return {"problem": problem}
    if not isinstance(samples, dict) or not all(
        isinstance(v, torch.Tensor) for v in samples.values()
    ):
        return {"problem": "its samples are not a dict of tensors (site -> draws)"}
    bad = [n for n, v in samples.items() if v.dim() < 2]
    if bad:
        return {
            "problem": f"site {bad[0]!r} has draws of shape {tuple(samples[bad[0]].shape)}, "
            "expected (num_chains, num_samples, ...)"
        }
    chains = {v.shape[0] for v in samples.values()}
    if len(chains) > 1:
        return {"problem": f"its sites have different numbers of chains {sorted(chains)}"}
    return {
        "sites": {n: (tuple(v.shape[1:]), str(v.dtype)) for n, v in samples.items()},
        "chains": chains.pop() if chains else 0,
    }


def _check_compatible(described: List[dict]) -> None:
    problems = [f"rank {r} cannot contribute its chains: {d['problem']}"
                for r, d in enumerate(described) if "problem" in d]  # fmt: skip
    if problems:
        raise RuntimeError("gather_chains: " + "; ".join(problems))
    reference = described[0]["sites"]
    for rank, desc in enumerate(described[1:], start=1):
        sites = desc["sites"]
        if sites.keys() != reference.keys():
            raise ValueError(
                f"gather_chains: rank {rank} has sites {sorted(sites)} but rank 0 has "
                f"{sorted(reference)}; every rank must run the same model with the same "
                "save_params"
            )
        for name, (shape, dtype) in sites.items():
            if (shape, dtype) != reference[name]:
                raise ValueError(
                    f"gather_chains: site {name!r} has per-chain draws of shape {shape} "
                    f"({dtype}) on rank {rank} but {reference[name][0]} "
                    f"({reference[name][1]}) on rank 0; every rank must draw the same "
                    "num_samples of the same model"
                )


def gather_chains(
    samples: Optional[Dict[str, torch.Tensor]],
    diagnostics: List[dict],
    dst: Optional[int] = 0,
    group=None,
    problem: Optional[str] = None,
) -> Optional[GatheredChains]:
    """Collect every rank's chains on rank ``dst`` (on every rank when ``dst`` is None).

    A collective: every rank of ``group`` must call it. The ranks first exchange a
    description of their draws (sites, per-chain shapes, dtypes) so that an
    incompatible rank makes *every* rank raise the same error instead of leaving the
    others waiting; then the draws and diagnostics are gathered.

    :param dict samples: this rank's draws, site name to ``(num_chains, num_samples,
        ...)`` (``MCMC.get_samples(group_by_chain=True)``).
    :param list diagnostics: this rank's kernel diagnostics, one dict per chain.
    :param dst: the receiving rank, or None for all ranks.
    :param group: the process group (default: the default group).
    :param str problem: a reason this rank cannot contribute (e.g. it has no draws);
        every rank then raises a RuntimeError naming it.
    :return: a :class:`GatheredChains` on the receiving rank(s), None elsewhere.
    :raises RuntimeError: without an initialized process group, or when a rank has a
        ``problem``.
    :raises ValueError: for a bad ``dst`` or ranks whose sites / shapes differ.
    """
    require_process_group("gather_chains")
    world = tdist.get_world_size(group)
    rank = tdist.get_rank(group)
    if dst is not None and (isinstance(dst, bool) or not isinstance(dst, int)):
        raise TypeError(f"gather_chains: dst must be an int rank or None, got {dst!r}")
    if dst is not None and not 0 <= dst < world:
        raise ValueError(
            f"gather_chains: dst={dst} is not a rank of the group (ranks 0..{world - 1}); "
            "pass dst=None to give every rank all chains"
        )
    desc = _describe(samples, problem)
    if "problem" not in desc:
        if not desc["sites"]:  # nothing saved (e.g. save_params=[]): count the diagnostics
            desc["chains"] = len(diagnostics)
        elif len(diagnostics) != desc["chains"]:
            desc = {
                "problem": f"it has {desc['chains']} chains of draws but {len(diagnostics)} "
                "diagnostics dicts (expected one per chain)"
            }
    described: List[Optional[dict]] = [None] * world
    tdist.all_gather_object(described, desc, group=group)
    _check_compatible(described)

    payload = (_to_cpu(samples), _to_cpu(list(diagnostics)))
    if dst is None:
        received: Optional[list] = [None] * world
        tdist.all_gather_object(received, payload, group=group)
    else:
        global_dst = dst if group is None else tdist.get_global_rank(group, dst)
        received = [None] * world if rank == dst else None
        tdist.gather_object(payload, received, dst=global_dst, group=group)
        if rank != dst:
            return None
    devices = {n: v.device for n, v in samples.items()}
    merged = {name: torch.cat([r[0][name] for r in received]).to(devices[name]) for name in samples}
    merged_diag = [d for r in received for d in r[1]]
    return GatheredChains(merged, merged_diag, [d["chains"] for d in described])
