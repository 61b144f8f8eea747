"""Dask workers for `predict_many`: one torch thread per worker, and a local cluster to run on.

`TorchThreads` is a worker plugin: it sets torch's intra-op thread count inside each worker
process when the worker starts (and in every worker that joins or restarts later), never in
the process that calls `predict_many`.  `local_client` starts a `~distributed.LocalCluster` of
worker processes with one task thread each, whose scheduler retries a task once after the
worker running it died (``distributed.scheduler.allowed-failures = 1``), and closes it on exit.
"""
from __future__ import annotations

from contextlib import contextmanager

from distributed import Client, LocalCluster, WorkerPlugin

from ..utils.checks import check_int

__all__ = ["TorchThreads", "local_client", "WORKER_MALLOC_ENVIRON"]

#: glibc malloc settings for worker processes.  distributed starts workers with
#: ``MALLOC_TRIM_THRESHOLD_=65536``, which also freezes glibc's mmap threshold at 128 kB: every
#: activation buffer of a prediction is then mapped afresh and page-faulted in, and predict on a
#: 2048 x 2048 frame (one thread) took 4.2 s instead of 2.5 s here.  A 32 MB mmap threshold (the
#: most glibc's own adjustment reaches) and a 128 MB trim threshold restore the speed (2.3-2.5 s).
#: Workers of a cluster started elsewhere need the same environment variables.
WORKER_MALLOC_ENVIRON = {"MALLOC_MMAP_THRESHOLD_": 32 * 1024 ** 2, "MALLOC_TRIM_THRESHOLD_": 128 * 1024 ** 2}


class TorchThreads(WorkerPlugin):
    """Worker plugin: ``torch.set_num_threads(threads)`` in each worker process.

    Parameters
    ----------
    threads : int
        Intra-op threads of torch in every worker (default 1: parallelism comes from the
        worker processes, and N processes of one thread do not fight over N cores).
    """

    name = "cosmiq_pyro-torch-threads"

    def __init__(self, threads: int = 1):
        self.threads = int(threads)

    def setup(self, worker):
        import torch

        torch.set_num_threads(self.threads)


@contextmanager
def local_client(n_workers: int, *, memory_limit="auto"):
    """A `~distributed.Client` on a new local cluster of ``n_workers`` processes; closed on exit.

    Parameters
    ----------
    n_workers : int
        Worker processes, each with one task thread (and, once `predict_many` registers
        `TorchThreads`, one torch thread).
    memory_limit : str, float or int
        Per worker, as `~distributed.LocalCluster` takes it (``"auto"``: the machine's memory
        divided among the workers).  A worker above 95 % of it is restarted by its nanny.

    Yields
    ------
    distributed.Client
    """
    import dask

    n_workers = check_int(n_workers, "n_workers", minimum=1)
    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ"), **WORKER_MALLOC_ENVIRON}
    # read when the scheduler and the nannies start: a task whose worker died is retried once,
    # then reported; worker processes (restarted ones too) get glibc settings that suit torch
    with dask.config.set({"distributed.scheduler.allowed-failures": 1,
                          "distributed.nanny.pre-spawn-environ": environ}):
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               memory_limit=memory_limit, dashboard_address=":0")  # any free port
    with cluster, Client(cluster) as client:
        yield client
