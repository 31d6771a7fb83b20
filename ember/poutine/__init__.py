"""Effect handlers ("poutines"): the runtime every ember primitive goes through.

``ember.poutine.trace``, ``replay``, ``block``, ``condition``, ... wrap a
function (or work as ``with`` blocks) to record, replay, hide or condition
the sites of a model.
"""

from ember.poutine import runtime, util
from ember.poutine.handlers import *  # noqa: F403
from ember.poutine.handlers import __all__ as _handlers_all
from ember.poutine.indep_messenger import IndepMessenger
from ember.poutine.messenger import Messenger, unwrap
from ember.poutine.plate_messenger import PlateMessenger
from ember.poutine.runtime import CrossContextWarning, HandlerOrderError, NonlocalExit, get_mask
from ember.poutine.subsample_messenger import SubsampleMessenger
from ember.poutine.trace_messenger import TraceHandler
from ember.poutine.trace_struct import Trace
from ember.poutine.util import enable_validation, is_validation_enabled

__all__ = [
    "CrossContextWarning",
    "HandlerOrderError",
    "IndepMessenger",
    "Messenger",
    "NonlocalExit",
    "PlateMessenger",
    "SubsampleMessenger",
    "Trace",
    "TraceHandler",
    "enable_validation",
    "get_mask",
    "is_validation_enabled",
    "runtime",
    "unwrap",
    "util",
] + list(_handlers_all)
