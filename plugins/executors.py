"""Built-in executors: ``local`` (in this process, the default) and ``dask`` (a dask.distributed
cluster: a local one with ``workers`` processes, or an existing scheduler at ``address`` whose workers
have compression-bench installed and share the results folder and the model cache).

Every job writes its own rows, atomically and under its worker's name, so the results layout is the
same whichever executor ran it, and a cell finished by any worker is never run again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Iterator

from bench.api import Executor, Ge, Job, JobResult, Tick, Work, hookimpl


class Local(Executor):
    name: ClassVar[str] = "local"
    description: ClassVar[str] = "run every job in this process, one after another (default)"

    def execute(self, jobs: list[Job], work: Work, tick: Tick) -> Iterator[JobResult]:
        for job in jobs:
            yield work(job, tick)


@dataclass(frozen=True)
class DaskParams:
    address: str = ""  # a running scheduler (tcp://host:8786); empty: start a local cluster
    workers: Annotated[int, Ge(1)] = 2  # processes of the local cluster
    threads: Annotated[int, Ge(1)] = 1  # torch threads per worker process


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


class Dask(Executor):
    name: ClassVar[str] = "dask"
    description: ClassVar[str] = "run jobs on a dask.distributed cluster (local processes or a scheduler address)"
    Params = DaskParams

    def execute(self, jobs: list[Job], work: Work, tick: Tick) -> Iterator[JobResult]:
        try:
            from dask.distributed import Client, LocalCluster, as_completed
        except ImportError as exc:
            raise RuntimeError("the dask executor needs `pip install 'dask[distributed]'`") from exc
        p = self.params
        cluster = None
        if p.address:
            client = Client(p.address)
        else:
            cluster = LocalCluster(n_workers=p.workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        try:
            client.run(_set_threads, p.threads)
            futures = client.map(work, jobs, pure=False)
            try:
                for future in as_completed(futures):
                    result = future.result()
                    tick(result.cells)
                    yield result
            except BaseException:  # interrupted: jobs not started yet are dropped (started ones finish)
                client.cancel(futures)
                raise
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


@hookimpl
def bench_register_executors(register) -> None:
    register(Local)
    register(Dask)
