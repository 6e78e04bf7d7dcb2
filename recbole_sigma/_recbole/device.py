"""RecBole's DDP path on CPU (gloo), while a worker of ``recbole_sigma.distributed`` runs.

Breaks: RecBole 1.2.1's DDP path (``recbole.quick_start.run(nproc=...)``) only works on CUDA:

* ``Config._init_device`` always calls ``init_process_group(backend="nccl")``, asserts that
  ``gpu_id`` lists at least ``nproc`` GPUs, puts each rank on ``cuda:<local_rank>`` and calls
  ``torch.cuda.set_device``;
* ``AbstractTrainer.__init__`` wraps the model in ``DistributedDataParallel(model,
  device_ids=[local_rank])``, which torch rejects for a CPU module.

Fix, scoped to a ``with cpu_ddp():`` block (a DDP worker's run): ``Config._init_device`` and
``recbole.trainer.trainer.DistributedDataParallel`` are swapped for versions that, only when CUDA
is not used (no CUDA device, or an empty ``gpu_id``), make the process group gloo, run every rank
on the CPU and wrap the model without ``device_ids``; with CUDA, RecBole's own code runs
unchanged (NCCL). ``CUDA_VISIBLE_DEVICES`` is set to ``gpu_id`` as RecBole's ``_init_device`` does
(before CUDA is first asked, so that ``gpu_id: ''`` hides the GPUs from this worker) and put back
when the block ends, as are both swapped attributes.
"""
import contextlib
import os

from .process_state import kept_env

__all__ = ["cpu_ddp", "uses_cuda"]


def uses_cuda(config_dict):
    """Whether RecBole would put this run on CUDA (its own test: a gpu_id and a CUDA device)."""
    import torch

    return len(str(config_dict.get("gpu_id", "0"))) > 0 and torch.cuda.is_available()


def _init_device_cpu(original):
    def _init_device(self):
        import torch

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
        with kept_env("CUDA_VISIBLE_DEVICES"):
            yield
    finally:
        Config._init_device = original_init
        trainer_module.DistributedDataParallel = original_ddp
