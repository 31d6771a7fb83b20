"""A small part of ``pyro.contrib``: the Gaussian-process kernels of
:mod:`ember.contrib.gp.kernels` (which :class:`~ember.infer.Trace_MMD` takes).
The rest of Pyro's contrib is not in ember."""
