"""Markov chain Monte Carlo: kernels (HMC, NUTS, RandomWalkKernel), the MCMC driver,
summaries and diagnostics."""

from ember.infer.mcmc.adaptation import ArrowheadMassMatrix, BlockMassMatrix
from ember.infer.mcmc.api import MCMC, StreamingMCMC
from ember.infer.mcmc.arviz import to_arviz
from ember.infer.mcmc.hmc import HMC
from ember.infer.mcmc.nuts import NUTS
from ember.infer.mcmc.rwkernel import RandomWalkKernel

__all__ = [
    "ArrowheadMassMatrix",
    "BlockMassMatrix",
    "HMC",
    "MCMC",
    "NUTS",
    "RandomWalkKernel",
    "StreamingMCMC",
    "to_arviz",
]
