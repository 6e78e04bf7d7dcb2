"""Multi-process (DDP) training through ``recbole_sigma.run(..., nproc=N)``, on CPU as well as GPU.

Each worker runs inside :func:`recbole_sigma._recbole.device.cpu_ddp`, which lets RecBole 1.2.1's
CUDA-only DDP path run on CPU with gloo (and leaves it as it is on CUDA).

:func:`spawn` is the counterpart of RecBole's ``run(nproc=...)``: ``torch.multiprocessing.spawn``
with a queue for rank 0's result. On CPU each process gets ``cores // nproc`` threads (torch's and
numba's), so that N processes do not oversubscribe the cores. A ``RecBoleSigmaError`` raised in a
worker (say a NaN loss on one rank) is raised again in the parent as itself, not as a traceback
inside ``ProcessRaisedException``; so is a ``port`` some other program holds, as ``PortInUseError``
(torch says it in the last line of a long traceback: EADDRINUSE).

A worker that finished ends with ``os._exit(0)`` once its result is on the queue, its logs flushed
and its checkpoints written, skipping the interpreter's teardown: torch keeps the process group's
gloo threads (and, on rank 0, its TCPStore server) alive after ``destroy_process_group``, and their
teardown at interpreter exit now and then aborts the process ("terminate called without an active
exception", SIGABRT, the run's work already done: 3 of 230 bare-torch two-process runs on 2 cores,
none of 150 that left with ``os._exit``, and 1 of about 65 of this package's two-process test runs).
Workers enable ``faulthandler``, so a worker that dies of a signal prints its Python stack.
"""
import faulthandler
import logging
import os
import sys

import torch

from recbole_sigma._recbole.device import cpu_ddp, uses_cuda

__all__ = ["spawn", "cpu_ddp", "uses_cuda"]


class _WorkerFailure:
    """What a worker puts on the queue when it stops with a RecBoleSigmaError."""

    def __init__(self, rank, error):
        self.rank, self.error = rank, error


def _port_in_use(error):
    """Whether ``error`` is torch's failure to listen on rank 0's port (the gloo and NCCL paths alike)."""
    network_error = getattr(torch.distributed, "DistNetworkError", RuntimeError)
    return isinstance(error, network_error) and "EADDRINUSE" in str(error)


def _worker(rank, run, args, kwargs, queue, threads):
    from recbole_sigma.errors import PortInUseError, RecBoleSigmaError
    from recbole_sigma.malloc import keep_freed_memory

    faulthandler.enable()
    keep_freed_memory()  # a worker is a process of its own, tuned as the command line's (malloc.py)
    if threads:
        torch.set_num_threads(threads)
    kwargs = dict(kwargs, queue=queue)
    kwargs["config_dict"] = dict(kwargs["config_dict"], local_rank=rank)
    try:
        with cpu_ddp():
            run(*args, **kwargs)
    except RecBoleSigmaError as e:
        queue.put(_WorkerFailure(rank, e))
        raise
    except Exception as e:
        if not _port_in_use(e):
            raise
        d = kwargs["config_dict"]
        error = PortInUseError(f"port {d['port']} on {d['ip']} is in use (another program or DDP run listens on it): "
                               "pass a free one with --port (run(..., port=...))")
        queue.put(_WorkerFailure(rank, error))
        raise error from e
    _exit_without_teardown()


def _exit_without_teardown():
    """End a worker whose run finished: flush the logs and streams, then leave (module docstring)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def spawn(run, model, dataset, config_file_list=None, config_dict=None, saved=True, resume=False,
          nproc=1, world_size=-1, ip="localhost", port="5678", group_offset=0, quiet=False):
    """Run ``run(model, dataset, ...)`` in ``nproc`` processes of a DDP group; rank 0's result.

    Like RecBole's ``run(nproc=...)``: ``world_size`` (default ``nproc``) counts the processes of
    all machines, ``group_offset`` is the rank of this machine's first process, ``ip:port`` is
    rank 0's address.
    """
    import torch.multiprocessing as mp

    from recbole_sigma.errors import RecBoleSigmaError

    if world_size is None or world_size <= 0:
        world_size = nproc
    config_dict = dict(config_dict or {})
    config_dict.update(world_size=world_size, ip=ip, port=str(port), nproc=nproc, offset=group_offset)
    threads = None if uses_cuda(config_dict) else max(1, torch.get_num_threads() // nproc)
    queue = mp.get_context("spawn").SimpleQueue()
    kwargs = {"config_dict": config_dict, "saved": saved, "resume": resume, "quiet": quiet}
    try:
        mp.spawn(_worker, args=(run, (model, dataset, config_file_list), kwargs, queue, threads),
                 nprocs=nproc, join=True)
    except (mp.ProcessRaisedException, mp.ProcessExitedException):
        while not queue.empty():
            item = queue.get()
            if isinstance(item, _WorkerFailure) and isinstance(item.error, RecBoleSigmaError):
                raise item.error from None
        raise
    result = None
    while not queue.empty():
        item = queue.get()
        if not isinstance(item, _WorkerFailure):
            result = item
    return result
