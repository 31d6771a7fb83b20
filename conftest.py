"""Suite-wide settings for tests and doctests.

`make test` runs two xdist workers on two cores; each uses one torch thread so
they do not oversubscribe the machine.
"""

import torch

torch.set_num_threads(1)
