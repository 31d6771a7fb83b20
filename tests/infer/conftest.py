"""Shared set-up for the inference tests.

The tests run tiny tensor ops by the thousand; on this torch CPU build some
kernels (e.g. ``binary_cross_entropy_with_logits`` behind ``Bernoulli.log_prob``)
take milliseconds each when the intra-op pool has several threads, so the
tests use one thread.
"""

import torch

torch.set_num_threads(1)
