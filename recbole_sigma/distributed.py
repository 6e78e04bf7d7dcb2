"""Multi-process (DDP) training through ``recbole_sigma.run(..., nproc=N)``, on CPU as well as GPU.

RecBole 1.2.1's DDP path (``recbole.quick_start.run(nproc=...)``) only works on CUDA:

* ``Config._init_device`` always calls ``init_process_group(backend="nccl")``, asserts that
  ``gpu_id`` lists at least ``nproc`` GPUs, puts each rank on ``cuda:<local_rank>`` and calls
  ``torch.cuda.set_device``;
* ``AbstractTrainer.__init__`` wraps the model in ``DistributedDataParallel(model,
  device_ids=[local_rank])``, which torch rejects for a CPU module.

:func:`cpu_ddp` fixes both while a worker process runs, and only when CUDA is not used (no CUDA
device, or an empty ``gpu_id``): the process group uses gloo, every rank runs on the CPU and the
model is wrapped without ``device_ids``. With CUDA, RecBole's own code runs unchanged (NCCL).
Nothing in site-packages is edited; the patches are undone when the worker's run ends.

:func:`spawn` is the counterpart of RecBole's ``run(nproc=...)``: ``torch.multiprocessing.spawn``
with a queue for rank 0's result. On CPU each process gets ``cores // nproc`` threads (torch's and
numba's), so that N processes do not oversubscribe the cores. A ``RecBoleSigmaError`` raised in a
worker (say a NaN loss on one rank) is raised again in the parent as itself, not as a traceback
inside ``ProcessRaisedException``.
"""
import contextlib
import os

import torch

__all__ = ["spawn", "cpu_ddp", "uses_cuda"]


def uses_cuda(config_dict):
    """Whether RecBole would put this run on CUDA (its own test: a gpu_id and a CUDA device)."""
    return len(str(config_dict.get("gpu_id", "0"))) > 0 and torch.cuda.is_available()


def _init_device_cpu(original):
    def _init_device(self):
        d = self.final_config_dict
        if "local_rank" not in d:
            return original(self)
        gpu_id = d["gpu_id"]
        d["gpu_id"] = ",".join(map(str, gpu_id)) if isinstance(gpu_id, tuple) else str(gpu_id)
        os.environ["CUDA_VISIBLE_DEVICES"] = d["gpu_id"]
        if uses_cuda(d):
            return original(self)
        torch.distributed.init_process_group(
            backend="gloo",
            rank=d["local_rank"] + d["offset"],
            world_size=d["world_size"],
            init_method=f"tcp://{d['ip']}:{d['port']}",
        )
        d["device"] = torch.device("cpu")
        d["single_spec"] = False
        if d["local_rank"] != 0:  # as RecBole does for its other ranks
            d["state"] = "error"
            d["show_progress"] = False
            d["verbose"] = False

    _init_device.__wrapped__ = original
    return _init_device


def _ddp_for_device(ddp_class):
    def DistributedDataParallel(module, device_ids=None, **kwargs):
        first = next(module.parameters(), None)
        if first is not None and first.device.type == "cpu":
            device_ids = None  # torch: "device_ids ... only work with ... GPU modules"
        return ddp_class(module, device_ids=device_ids, **kwargs)

    DistributedDataParallel.__wrapped__ = ddp_class
    return DistributedDataParallel


@contextlib.contextmanager
def cpu_ddp():
    """Let RecBole's DDP path run on CPU with gloo while the block runs (see the module docstring)."""
    from recbole.config import Config
    import recbole.trainer.trainer as trainer_module

    original_init, original_ddp = Config._init_device, trainer_module.DistributedDataParallel
    Config._init_device = _init_device_cpu(original_init)
    trainer_module.DistributedDataParallel = _ddp_for_device(original_ddp)
    try:
        yield
    finally:
        Config._init_device = original_init
        trainer_module.DistributedDataParallel = original_ddp


class _WorkerFailure:
    """What a worker puts on the queue when it stops with a RecBoleSigmaError."""

    def __init__(self, rank, error):
        self.rank, self.error = rank, error


def _worker(rank, run, args, kwargs, queue, threads):
    from recbole_sigma.errors import RecBoleSigmaError
    from recbole_sigma.malloc import keep_freed_memory

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


def spawn(run, model, dataset, config_file_list=None, config_dict=None, saved=True, resume=False,
          nproc=1, world_size=-1, ip="localhost", port="5678", group_offset=0):
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
    kwargs = {"config_dict": config_dict, "saved": saved, "resume": resume}
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
