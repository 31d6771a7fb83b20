"""Inference: SVI and its ELBO estimators, importance sampling, systematic
search, posterior-predictive sampling.
"""

from ember.infer.abstract_infer import EmpiricalMarginal, TracePosterior
from ember.infer.elbo import ELBO, ELBOModule
from ember.infer.enum import config_enumerate
from ember.infer.importance import Importance
from ember.infer.jit_elbo import (
    JitTrace_ELBO,
    JitTraceEnum_ELBO,
    JitTraceGraph_ELBO,
    JitTraceMeanField_ELBO,
)
from ember.infer.predictive import Predictive
from ember.infer.search import Search
from ember.infer.svi import SVI
from ember.infer.trace_elbo import Trace_ELBO
from ember.infer.trace_mean_field_elbo import TraceMeanField_ELBO
from ember.infer.traceenum_elbo import TraceEnum_ELBO
from ember.infer.tracegraph_elbo import TraceGraph_ELBO

__all__ = [
    "ELBO",
    "ELBOModule",
    "EmpiricalMarginal",
    "Importance",
    "JitTraceEnum_ELBO",
    "JitTraceGraph_ELBO",
    "JitTraceMeanField_ELBO",
    "JitTrace_ELBO",
    "Predictive",
    "SVI",
    "Search",
    "TraceEnum_ELBO",
    "TraceGraph_ELBO",
    "TraceMeanField_ELBO",
    "TracePosterior",
    "Trace_ELBO",
    "config_enumerate",
]
