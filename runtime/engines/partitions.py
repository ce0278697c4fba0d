"""Where an in-process run executes its units: threads here, or tasks on a Dask cluster."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from osiris.runtime.errors import ConfigurationError
from osiris.runtime.executor import Cluster


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """--scheduler tcp://HOST:PORT (dask: connect to that cluster) and --workers N (dask: the
    size of the LocalCluster started when there is no scheduler)."""

    scheduler: str | None = None
    workers: int | None = None


# A context (the cluster's lifetime) yielding the cluster that runs the units (None: threads).
ClusterEngine = Callable[[EngineOptions], contextlib.AbstractContextManager[Cluster | None]]


@contextlib.contextmanager
def _local(options: EngineOptions) -> Iterator[Cluster | None]:
    if options.scheduler or options.workers:
        raise ConfigurationError("--scheduler and --workers apply to --engine dask only")
    yield None


@contextlib.contextmanager
def _dask(options: EngineOptions) -> Iterator[Cluster | None]:
    from osiris.runtime.dask_engine import dask_cluster

    with dask_cluster(options.scheduler, options.workers) as cluster:
        yield cluster


def cluster_engine(engine: str) -> ClusterEngine:
    """dask runs every unit on its cluster; every other engine (local, and the sandboxes, which
    run this same runtime inside them) on threads of this process."""
    return _dask if engine == "dask" else _local
