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
from bench.api.params import ConfigError


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
    resources: str = ""  # what each job needs of a worker, as `dask worker --resources` says it ("GPU=1")

    def validate(self) -> None:
        job_resources(self.resources)



def _set_threads(n: int) -> None:
    """``n`` threads for torch in a dask worker and in every process it starts (its job worker, the
    compressing and decoding processes read them from the environment): two workers on two cores with
    a full thread team each spin against each other, measured 6x slower than one worker."""
    import os

    import torch

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(n)
    torch.set_num_threads(n)


def job_resources(text: str) -> dict[str, float]:
    """``"GPU=1,MEMORY=8e9"`` as dask's resource constraints: a job then runs only on a worker started
    with at least that much (``dask worker --resources "GPU=1"``), so GPU workers are told apart."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, amount = part.partition("=")
        try:
            value = float(amount)
        except ValueError:
            value = -1.0
        if not sep or not name.strip() or value <= 0:
            raise ValueError(f"resources: '{part}' is not NAME=AMOUNT with a positive amount (e.g. GPU=1)")
        out[name.strip()] = value
    return out


class Dask(Executor):
    name: ClassVar[str] = "dask"
    description: ClassVar[str] = "run jobs on a dask.distributed cluster (local processes or a scheduler address)"
    Params = DaskParams

    def runs_here(self) -> bool:
        return not self.params.address

    def execute(self, jobs: list[Job], work: Work, tick: Tick) -> Iterator[JobResult]:
        try:
            from dask.distributed import Client, LocalCluster, as_completed
        except ImportError as exc:
            raise RuntimeError("the dask executor needs `pip install 'dask[distributed]'`") from exc
        p = self.params
        cluster = None
        if p.address:
            try:
                client = Client(p.address)
            except OSError as exc:  # no scheduler there (dask waits its connect timeout, 30 s by default)
                raise ConfigError(f"executor 'dask': no scheduler answers at {p.address} ({exc})") from None
        else:
            cluster = LocalCluster(n_workers=p.workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        try:
            client.run(_set_threads, p.threads)
            futures = client.map(work, jobs, pure=False, resources=job_resources(p.resources) or None)
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
