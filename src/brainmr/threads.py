"""Cap a job's CPU threads at its rule's ``threads`` in every library it uses.

SimpleITK/ITK, torch (intra-op and inter-op pools), OpenMP and BLAS (OpenBLAS, MKL) each default
to one thread per core: two jobs side by side on a 2-core machine would then run four or more
busy threads on two cores. ``limit_threads`` is called once, at the start of a job (the rule
scripts pass ``snakemake.threads``), before any of the heavy work."""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

# Read when a library loads (OpenMP, BLAS, ITK) and inherited by child processes (an external
# skull-strip command): Snakemake sets the first six for its jobs, a benchmark or a notebook not.
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",
)


def limit_threads(threads: int, *, simpleitk: bool = False, torch: bool = False) -> int:
    """Cap this process at ``threads`` CPU threads (at least 1) and return the cap.

    Sets the environment variables above (libraries loaded later, child processes), the
    OpenMP/BLAS pools already loaded (threadpoolctl, when installed), SimpleITK's global default
    (every filter and registration created afterwards) and torch's intra-op and inter-op pools.
    SimpleITK and torch are imported for this when asked (``simpleitk``/``torch``) and otherwise
    only capped if the process has already imported them, so that a job that never uses torch
    does not pay its import. torch's inter-op pool can only be sized before its first parallel
    work; a process that started it earlier keeps it (logged)."""
    n = max(1, int(threads))
    for name in THREAD_ENV_VARS:
        os.environ[name] = str(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: the environment variables cover libraries loaded later
        pass
    else:
        threadpool_limits(limits=n)
    if simpleitk or "SimpleITK" in sys.modules:
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(n)
    if torch or "torch" in sys.modules:
        import torch as _torch

        _torch.set_num_threads(n)
        if _torch.get_num_interop_threads() != n:
            try:
                _torch.set_num_interop_threads(n)
            except RuntimeError as err:  # the pool already ran: it cannot be resized
                log.warning(
                    "torch inter-op threads stay at %d: %s", _torch.get_num_interop_threads(), err
                )
    return n
