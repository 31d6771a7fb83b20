"""The parameter store: named, constrained, learnable tensors (``ember.param``)."""

from ember.params.param_store import (
    _MODULE_NAMESPACE_DIVIDER,
    ParamStoreDict,
    module_from_param_with_module_name,
    param_with_module_name,
    user_param_name,
)

__all__ = [
    "ParamStore",
    "get_param_store",
    "ParamStoreDict",
    "module_from_param_with_module_name",
    "param_with_module_name",
    "user_param_name",
]
