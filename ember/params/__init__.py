"""The parameter store: named, constrained, learnable tensors (``ember.param``)."""

from ember.params.param_store import (
    MODULE_NAMESPACE_DIVIDER,
    ParamStore,
    ParamStoreDict,
    get_param_store,
    module_from_param_with_module_name,
    param_with_module_name,
    user_param_name,
)

__all__ = [
    "MODULE_NAMESPACE_DIVIDER",
    "ParamStore",
    "ParamStoreDict",
    "get_param_store",
    "module_from_param_with_module_name",
    "param_with_module_name",
    "user_param_name",
]
