"""Inference: SVI with its ELBO estimators (one contract, :class:`ELBO`) and the
EnergyDistance loss, importance sampling, systematic search, posterior-predictive
sampling.
"""

from ember.infer.abstract_infer import EmpiricalMarginal, TracePosterior
from ember.infer.discrete import infer_discrete
from ember.infer.elbo import ELBO, ELBOModule
from ember.infer.energy_distance import EnergyDistance
from ember.infer.enum import config_enumerate
from ember.infer.importance import Importance
from ember.infer.mcmc import HMC, MCMC, NUTS, RandomWalkKernel
from ember.infer.predictive import Predictive
from ember.infer.renyi_elbo import RenyiELBO
from ember.infer.rws import ReweightedWakeSleep
from ember.infer.search import Search
from ember.infer.svgd import SVGD, IMQSteinKernel, RBFSteinKernel, SteinKernel
from ember.infer.svi import SVI
from ember.infer.trace_elbo import JitTrace_ELBO, Trace_ELBO
from ember.infer.trace_mean_field_elbo import JitTraceMeanField_ELBO, TraceMeanField_ELBO
from ember.infer.trace_mmd import Trace_MMD
from ember.infer.trace_tail_adaptive_elbo import TraceTailAdaptive_ELBO
from ember.infer.traceenum_elbo import JitTraceEnum_ELBO, TraceEnum_ELBO
from ember.infer.tracegraph_elbo import JitTraceGraph_ELBO, TraceGraph_ELBO
from ember.infer.tracetmc_elbo import TraceTMC_ELBO

__all__ = [
    "ELBO",
    "ELBOModule",
    "EnergyDistance",
    "EmpiricalMarginal",
    "HMC",
    "IMQSteinKernel",
    "Importance",
    "JitTraceEnum_ELBO",
    "JitTraceGraph_ELBO",
    "JitTraceMeanField_ELBO",
    "JitTrace_ELBO",
    "MCMC",
    "NUTS",
    "Predictive",
    "RenyiELBO",
    "RBFSteinKernel",
    "ReweightedWakeSleep",
    "SVI",
    "SVGD",
    "Search",
    "SteinKernel",
    "TraceEnum_ELBO",
    "TraceGraph_ELBO",
    "TraceMeanField_ELBO",
    "TraceTailAdaptive_ELBO",
    "TraceTMC_ELBO",
    "TracePosterior",
    "Trace_ELBO",
    "Trace_MMD",
    "config_enumerate",
    "infer_discrete",
]

# The automatic guides build on the estimators above; ``import ember`` makes them
# reachable as ember.infer.autoguide, as Pyro programs expect.
from ember.infer import autoguide, reparam  # noqa: E402
from ember.util import enable_validation, is_validation_enabled  # noqa: E402

__all__ += ["autoguide", "enable_validation", "is_validation_enabled", "reparam"]

# Sequential Monte Carlo filtering, compiled importance sampling, weighed predictives.
from ember.infer.abstract_infer import TracePredictive  # noqa: E402
from ember.infer.csis import CSIS  # noqa: E402
from ember.infer.predictive import MHResampler, WeighedPredictive  # noqa: E402
from ember.infer.smcfilter import SMCFilter  # noqa: E402

__all__ += ["CSIS", "MHResampler", "SMCFilter", "TracePredictive", "WeighedPredictive"]
