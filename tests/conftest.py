"""Fixtures shared by the whole test suite."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# messages of a port taken by another program between torchrun's choice and its use
_PORT_TAKEN = ("EADDRINUSE", "Address already in use", "DistNetworkError")


def _torchrun(nproc, *args, timeout=240):
    """Run ``args`` (a script and its arguments) under ``torchrun --standalone`` with
    ``nproc`` processes (one thread each); return the ``CompletedProcess``. A run that
    failed because its port was taken meanwhile (the machine's doing) is started once more.
    """
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc_per_node", str(nproc), *map(str, args)]
    for _ in range(2):
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if out.returncode == 0 or not any(s in out.stderr for s in _PORT_TAKEN):
            break
    return out


@pytest.fixture
def torchrun():
    """``torchrun(nproc, script, *args, timeout=240)``: run a script on ``nproc`` ranks."""
    return _torchrun
