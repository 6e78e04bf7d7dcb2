"""Training that survives interruptions: resumable, atomic checkpoints and a non-finite loss guard.

``reliable_trainer(cls)`` puts :class:`ReliableTrainerMixin` on top of the trainer class that
``recbole.utils.get_trainer`` returns (RecBole's ``Trainer`` for our models, and any of its
subclasses for RecBole's own models); ``recbole_sigma.run`` always does. On top of RecBole it:

* names the checkpoints deterministically inside ``checkpoint_dir``: ``<name>-best.pth`` is
  RecBole's best-model file (which RecBole names with a timestamp, so a restarted run cannot find
  it) and ``<name>-last.pth`` holds the state after the latest finished epoch; ``<name>`` is the
  config key ``checkpoint_name``, by default ``<model>-<dataset>`` (set it to tell apart runs of
  one model on one dataset that share a ``checkpoint_dir``). Both are ordinary RecBole checkpoints
  (``load_data_and_model`` and ``Trainer.resume_checkpoint`` read them) with one more entry,
  ``"recbole_sigma"``: the best valid result, the RNG states (Python, numpy, torch, CUDA, the training
  and validation data loaders' generators), the best-model file's name.
* writes every checkpoint atomically (:func:`atomic_save`): a temporary file in the same folder,
  flushed and fsync'ed, then ``os.replace`` and an fsync of the folder. A kill at any moment leaves
  the previous file whole.
* saves ``-last.pth`` after every epoch. RecBole's ``fit`` has no end-of-epoch hook, so it is
  written when the next epoch starts (``_train_epoch``: by then the previous epoch's validation,
  early-stopping update and best-model save are done and nothing else has run) and when ``fit``
  returns. A kill loses at most the epoch in progress.
* resumes (``resume_checkpoint(path)``, RecBole's own API, or :meth:`resume_from`): model,
  optimizer, next epoch, early-stopping counter, best score *and* best result (RecBole's resume
  drops the latter), RNG states, and the best-model file to keep updating. With the RNG states
  restored a resumed run repeats, bit for bit on the same machine, what the uninterrupted run
  would have done. A run that has finished (all epochs, or early stopping) is not trained further.
  Resumed from another file than ``-last.pth`` (a best model, RecBole's own), the run writes its
  ``-last.pth`` from that state first, so a later plain resume continues this run, not an older one.
  A fresh run whose validations never gave a best model (a NaN score) is a CheckpointError, not a
  test of another run's ``-best.pth``.
* stops on a NaN or infinite loss with :class:`~recbole_sigma.errors.NonFiniteLossError` naming
  the epoch and batch, before that batch's update (RecBole's ``_check_nan`` raises a bare
  ValueError, and lets ``inf`` through); no checkpoint is ever written from non-finite weights.
* reports every epoch to ``on_epoch`` (an attribute, None by default; ``recbole_sigma.run``
  sets it), a callable that gets ``{"epoch", "train_s", "loss"}`` after each epoch's training and
  ``{"epoch", "valid_s", "valid_score", "valid_result"}`` after each validation.
* under DDP (``nproc > 1``) only global rank 0 writes (one writer across machines), all ranks wait for the file before going on
  (RecBole lets the other ranks race ahead and load a best-model file still being written), each
  rank's RNG state is kept, and the checkpoint's config is the single-process view of the run so
  that ``load_data_and_model`` reads it without a process group.

Trainers that are not subclasses of RecBole's ``Trainer`` (the decision-tree ones) are returned
unchanged.
"""
import copy
import os
import random
import time

import numpy as np
import torch
import torch.distributed as dist

from recbole_sigma._recbole.checkpoints import load_checkpoint as load_recbole_checkpoint
from recbole_sigma.errors import CheckpointError, NonFiniteLossError
from recbole_sigma.malloc import release_free_memory

# Config keys a resumed run may change without a warning: where things are, how they are shown,
# how many processes run them, and how long to train.
RESUMABLE_CHANGES = frozenset({
    "epochs", "checkpoint_dir", "checkpoint_name", "data_path", "show_progress", "state", "verbose",
    "gpu_id", "use_gpu", "device", "local_rank", "single_spec", "nproc", "world_size", "ip", "port",
    "offset", "worker", "eval_batch_size", "log_wandb", "wandb_project", "config_files",
})
# RecBole's learners that take weight_decay (``Trainer._build_optimizer``); any other name is Adam without it.
DECAYING_LEARNERS = frozenset({"adam", "adamw", "sgd", "adagrad", "rmsprop"})


def checkpoint_paths(config):
    """(best, last) checkpoint paths of a run: ``<checkpoint_dir>/<name>-best.pth`` and ``-last.pth``."""
    name = config["checkpoint_name"] or f"{config['model']}-{config['dataset']}"
    return (os.path.join(config["checkpoint_dir"], f"{name}-best.pth"),
            os.path.join(config["checkpoint_dir"], f"{name}-last.pth"))


def atomic_save(obj, path):
    """``torch.save(obj, path)`` such that ``path`` is always either its old or its new content
    (``atomic_write``)."""
    atomic_write(path, lambda f: torch.save(obj, f, pickle_protocol=4))


def atomic_write(path, write):
    """Call ``write(f)`` on a binary file that becomes ``path`` whole or not at all.

    Writes ``<path>.tmp`` in the same folder, flushes and fsyncs it, renames it over ``path``
    (atomic on POSIX and Windows) and fsyncs the folder so that the rename itself is durable.
    A process killed mid-write leaves at most a stale ``.tmp`` (overwritten by the next save).
    """
    path = os.fspath(path)
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder; its rename is durable without it
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path, map_location="cpu", hint="resume from another file or delete it to start over"):
    """A RecBole checkpoint (it pickles its Config: only load files you trust), or CheckpointError."""
    try:
        checkpoint = load_recbole_checkpoint(path, map_location)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path!r}") from None
    except Exception as e:  # truncated or foreign file: zipfile, pickle or torch errors
        raise CheckpointError(
            f"checkpoint {path!r} cannot be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            f"{hint}"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "config" not in checkpoint:
        raise CheckpointError(f"{path!r} is not a RecBole checkpoint (no state_dict/config)")
    return checkpoint


def load_weights(model, checkpoint, path, why=""):
    """The checkpoint's weights into ``model``; weights that do not fit (written by another version of
    the model, or under other config keys) are a one-line CheckpointError naming them, then ``why``."""
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"{path!r} does not fit the model its config builds: {' '.join(str(e).split())}"
                              f"{why}") from None


def _config_changes(old, new):
    """Keys whose values differ between two Configs, except RESUMABLE_CHANGES."""
    old_d, new_d = old.final_config_dict, new.final_config_dict
    changed = []
    for key in sorted(set(old_d) | set(new_d)):
        if key in RESUMABLE_CHANGES:
            continue
        try:
            same = bool(old_d.get(key) == new_d.get(key))
        except Exception:  # arrays and the like
            same = False
        if not same:
            changed.append(key)
    return changed


def _portable_config(config):
    """The Config to store in a checkpoint: under DDP, a copy that describes a single process
    (``load_data_and_model`` would otherwise build distributed samplers without a process group)."""
    if config["single_spec"]:
        return config
    portable = copy.copy(config)
    portable.final_config_dict = dict(config.final_config_dict, single_spec=True, local_rank=0)
    return portable


class ReliableTrainerMixin:
    """Atomic, resumable checkpoints and a non-finite loss guard for a RecBole ``Trainer``
    subclass (see the module docstring). Use it through :func:`reliable_trainer`."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.best_model_file, self.last_model_file = checkpoint_paths(config)
        self.saved_model_file = self.best_model_file
        self._epoch = None           # the epoch being trained
        self._batch = 0              # batches of it whose loss was checked
        self._trained_epoch = None   # the latest epoch this fit() finished training
        self._train_data = None
        self._valid_data = None
        self._saving = False
        self._resumed = False        # the checkpoint this run resumed from, or False
        self._wrote_best = False     # this fit() saved a best model
        self._pending_rng = None     # RNG states read by resume_checkpoint, applied by fit
        self._latest_valid = None    # (score, result) of the latest validation
        self.on_epoch = None         # callable(dict) told of each epoch's training and validation

    # ------------------------------------------------------------------ training loop hooks
    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        self._train_data, self._valid_data, self._saving, self._trained_epoch = train_data, valid_data, saved, None
        if self._pending_rng is not None:
            self._restore_rng(self._pending_rng)
            self._pending_rng = None
        if self._finished():
            self.eval_collector.data_collect(train_data)  # as RecBole's fit does first: what item metrics count
            self.logger.info(
                f"Nothing left to train: the resumed run stopped after epoch {self.start_epoch - 1} "
                f"({'early stopping' if self._stopped_early() else f'{self._epoch_limit()} epochs'}); "
                f"best valid score {self.best_valid_score}"
            )
            return self.best_valid_score, self.best_valid_result
        if saved and not self._resumed:
            self._remove_stale_last()
        elif saved and os.path.abspath(self._resumed) != os.path.abspath(self.last_model_file):
            # resumed from another file (a best model, RecBole's own): this run's last checkpoint is that
            # state now, not the older trajectory a later plain resume would otherwise pick up
            self._write_checkpoint(self.last_model_file, self.start_epoch - 1, "last", verbose)
        result = super().fit(train_data, valid_data, verbose=verbose, saved=saved,
                             show_progress=show_progress, callback_fn=callback_fn)
        if saved and self._trained_epoch is not None:
            self._write_checkpoint(self.last_model_file, self._trained_epoch, "last", verbose)
        pretraining = getattr(self.model, "train_stage", None) == "pretrain"  # saves its own way (S3Rec)
        if saved and not self._resumed and not self._wrote_best and not pretraining:  # RecBole: a missing file
            raise CheckpointError(
                f"{self.config['model']} on {self.config['dataset']}: no validation gave a best model to test "
                f"(valid_metric {self.config['valid_metric']} was {self._latest_valid and self._latest_valid[0]} "
                f"at the last one); nothing of this run was tested"
            )
        return result

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if self._saving and self._trained_epoch is not None and self._trained_epoch < epoch_idx:
            self._write_checkpoint(self.last_model_file, self._trained_epoch, "last", verbose=False)
        self._epoch, self._batch = epoch_idx, 0
        start = time.perf_counter()
        losses = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        self._trained_epoch = epoch_idx
        release_free_memory()  # a fragmented, never-trimmed heap would otherwise creep up (malloc.py)
        if self.on_epoch is not None:
            loss = sum(losses) if isinstance(losses, tuple) else losses
            self.on_epoch({"epoch": epoch_idx, "train_s": time.perf_counter() - start, "loss": float(loss)})
        return losses

    def _valid_epoch(self, valid_data, show_progress=False):
        start = time.perf_counter()
        score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
        self._latest_valid = (score, result)
        if self.on_epoch is not None:
            self.on_epoch({"epoch": self._epoch, "valid_s": time.perf_counter() - start,
                           "valid_score": float(score), "valid_result": {k: float(v) for k, v in result.items()}})
        return score, result

    def _check_nan(self, loss):
        """Called by RecBole once per batch, before backward: NaN and inf stop training."""
        batch, self._batch = self._batch, self._batch + 1
        if torch.isfinite(loss.detach()).all():
            return
        value = loss.detach().flatten()[0].item() if loss.numel() else float("nan")
        resume = (f"; {os.path.basename(self.last_model_file)} keeps the state after epoch {self._epoch - 1}"
                  if self._saving and os.path.exists(self.last_model_file) else "")
        raise NonFiniteLossError(
            f"{self.config['model']} on {self.config['dataset']}: training loss is {value} at epoch "
            f"{self._epoch}, batch {batch} (0-based); training stopped before that update and nothing was saved "
            f"from this epoch{resume}. Lower learning_rate (now {self.config['learning_rate']}) or set "
            f"clip_grad_norm",
            epoch=self._epoch, batch=batch,
        )

    # ------------------------------------------------------------------ saving
    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        """RecBole's best-model save, made atomic and complete (see the module docstring)."""
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        self._write_checkpoint(path, epoch, "best", verbose)
        self._wrote_best = True

    def _write_checkpoint(self, path, epoch, kind, verbose=True):
        self._check_finite_weights(epoch)
        distributed = not self.config["single_spec"]
        rng = self._rng_state()
        if distributed:
            states = [None] * dist.get_world_size()
            dist.all_gather_object(states, rng)
            rng = states
        else:
            rng = [rng]
        if distributed and dist.get_rank() != 0:  # the global rank: one writer however many machines
            dist.barrier()  # wait until rank 0 has written the file
            return
        best_result = self.best_valid_result
        if self._latest_valid is not None and self._latest_valid[0] == self.best_valid_score:
            best_result = self._latest_valid[1]  # RecBole saves before it records the best result
        state = {
            "config": _portable_config(self.config),
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": self.best_valid_score,
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
            "recbole_sigma": {
                "best_valid_result": best_result,
                "best_model_file": os.path.basename(self.saved_model_file),
                "rng": rng,
            },
        }
        try:
            atomic_save(state, path)
        finally:
            if distributed:
                dist.barrier()
        if verbose:
            self.logger.info(f"Saving {kind} checkpoint (epoch {epoch}): {path}")

    def _check_finite_weights(self, epoch):
        for name, param in self.model.named_parameters():
            if not torch.isfinite(param.detach()).all():
                raise NonFiniteLossError(
                    f"{self.config['model']} on {self.config['dataset']}: parameter {name!r} is not finite "
                    f"after epoch {epoch}; not saving a poisoned checkpoint. Lower learning_rate "
                    f"(now {self.config['learning_rate']}) or set clip_grad_norm"
                )

    def _remove_stale_last(self):
        """A fresh (not resumed) run must never be resumed from an older run's last checkpoint."""
        if self.config["single_spec"] or dist.get_rank() == 0:
            if os.path.exists(self.last_model_file):
                os.remove(self.last_model_file)
                self.logger.info(f"Fresh run: removed the previous run's {self.last_model_file}")

    # ------------------------------------------------------------------ resuming
    def resume_from(self, checkpoint=None):
        """Resume from ``checkpoint``, or from this run's last checkpoint if there is one.

        Returns whether a checkpoint was loaded (False: no last checkpoint yet, start at epoch 0).
        """
        if checkpoint is None:
            if not os.path.exists(self.last_model_file):
                self.logger.info(f"No checkpoint at {self.last_model_file}: training from epoch 0")
                return False
            checkpoint = self.last_model_file
        self.resume_checkpoint(checkpoint)
        return True

    def resume_checkpoint(self, resume_file):
        """RecBole's resume, plus the best result, RNG states and end-of-run state (see module)."""
        resume_file = str(resume_file)
        checkpoint = load_checkpoint(resume_file, map_location=self.device)
        old_config = checkpoint["config"]
        for key in ("model", "dataset"):
            if str(old_config[key]).lower() != str(self.config[key]).lower():
                raise CheckpointError(
                    f"{resume_file!r} was written for {key} {old_config[key]!r}, not {self.config[key]!r}"
                )
        # another optimizer would take the checkpoint's param groups whole (Adam's settings under AdamW, no
        # momentum for SGD): refused, as RecBole's own resume assumes it never happens
        if str(old_config["learner"]).lower() != str(self.config["learner"]).lower():
            raise CheckpointError(
                f"{resume_file!r} was trained with learner {old_config['learner']!r}, not {self.config['learner']!r}: "
                "its optimizer state cannot resume another optimizer; keep the learner or start a new run"
            )
        changed = _config_changes(old_config, self.config)
        if changed:
            self.logger.warning(f"Resuming {resume_file} with changed config keys: {', '.join(changed)}")
        load_weights(self.model, checkpoint, resume_file,
                     f"; config keys that differ from the checkpoint's: {', '.join(changed) or 'none'}")
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        decays = str(self.config["learner"]).lower() in DECAYING_LEARNERS  # RecBole's others: Adam, no decay
        for group in self.optimizer.param_groups:  # the state dict brings the old rate back: the config's wins
            group["lr"] = self.config["learning_rate"]
            if decays:
                group["weight_decay"] = self.config["weight_decay"]
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        extra = checkpoint.get("recbole_sigma")
        if extra is None:  # written by RecBole itself: its own semantics
            self.saved_model_file = resume_file
        else:
            self.best_valid_result = extra["best_valid_result"]
            self.saved_model_file = os.path.join(os.path.dirname(resume_file), extra["best_model_file"])
            rank = 0 if self.config["single_spec"] else dist.get_rank()  # all_gather_object's order
            states = extra["rng"]
            self._pending_rng = states[rank] if len(states) == (self.config["world_size"] or 1) or rank == 0 else None
            if self.best_valid_result is not None and not os.path.exists(self.saved_model_file):
                self.logger.warning(f"The best-model file {self.saved_model_file} is missing")
        self._resumed = resume_file
        self.logger.info(f"Checkpoint {resume_file} loaded. Resume training from epoch {self.start_epoch}")

    def _stopped_early(self):
        return self.stopping_step is not None and self.cur_step > self.stopping_step

    def _epoch_limit(self):
        """``epochs``, or ``pretrain_epochs`` in a pretraining stage (RecBole's PretrainTrainer, S3Rec)."""
        if getattr(self.model, "train_stage", None) == "pretrain" and self.config["pretrain_epochs"]:
            return self.config["pretrain_epochs"]
        return self.epochs

    def _finished(self):
        return self._resumed and (self.start_epoch >= self._epoch_limit() or self._stopped_early())

    # ------------------------------------------------------------------ RNG states
    def _rng_state(self):
        state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state_all()
        for name, generator in self._loader_generators():
            state[name] = generator.get_state()
        return state

    def _restore_rng(self, state):
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        torch.set_rng_state(state["torch"].cpu())
        if "cuda" in state and self.device.type == "cuda":  # as many devices as this process sees now
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"][:torch.cuda.device_count()]])
        for name, generator in self._loader_generators():
            if name in state:
                generator.set_state(state[name].cpu())

    def _loader_generators(self):
        """(name, generator) of the training and validation loaders: each iter() draws a worker seed from it."""
        for name, data in (("train_data", self._train_data), ("valid_data", self._valid_data)):
            generator = getattr(data, "generator", None)
            if isinstance(generator, torch.Generator):
                yield name, generator


_RELIABLE_CLASSES = {}


def reliable_trainer(trainer_class):
    """``trainer_class`` with :class:`ReliableTrainerMixin` on top (cached per class)."""
    from recbole.trainer import Trainer

    if not issubclass(trainer_class, Trainer) or issubclass(trainer_class, ReliableTrainerMixin):
        return trainer_class
    if trainer_class not in _RELIABLE_CLASSES:
        _RELIABLE_CLASSES[trainer_class] = type(
            f"Reliable{trainer_class.__name__}",
            (ReliableTrainerMixin, trainer_class),
            {"__module__": __name__, "__doc__": f"{trainer_class.__name__} with ReliableTrainerMixin."},
        )
    return _RELIABLE_CLASSES[trainer_class]

