"""Interrupted training, determinism, the non-finite loss guard and multi-process training.

The training runs use ml-100k cut to its 305 users with fewer than 40 interactions (~7.7k training
sequences, two batches an epoch) so that the file stays within a few minutes on two busy cores.
"""
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import recbole_sigma
from recbole_sigma.errors import (CheckpointError, EmptyDatasetError, NonFiniteLossError, PortInUseError,
                                  RecBoleSigmaError)
from recbole_sigma.cli import main
from recbole_sigma.trainer import atomic_save, load_checkpoint

from tests.conftest import assert_same_weights, free_port, padded_batch

ROOT = Path(__file__).resolve().parents[1]
SMALL = {
    "MAX_ITEM_LIST_LENGTH": 10,
    "hidden_size": 16,
    "d_state": 8,
    "show_progress": False,
    "train_batch_size": 4096,
    "user_inter_num_interval": "[0,40)",
}


def small(tmp_path, **overrides):
    return dict(SMALL, checkpoint_dir=str(tmp_path), **overrides)


def weights(path):
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


# ------------------------------------------------------------------------------------------------
# Atomic checkpoints
# ------------------------------------------------------------------------------------------------
def test_atomic_save_keeps_the_old_file_when_the_write_dies(tmp_path, monkeypatch):
    path = tmp_path / "ck.pth"
    atomic_save({"state_dict": {"w": torch.ones(3)}, "config": None}, path)

    def dies_mid_write(obj, f, **kwargs):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dies_mid_write)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"state_dict": {"w": torch.zeros(3)}, "config": None}, path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["state_dict"]["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["ck.pth"]  # the temporary file is gone


def test_unreadable_checkpoint_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "ck.pth"
    atomic_save({"state_dict": {"w": torch.ones(1000)}, "config": None}, path)
    path.write_bytes(path.read_bytes()[:300])  # what a non-atomic save killed mid-write leaves
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "absent.pth")


# ------------------------------------------------------------------------------------------------
# Interrupted training: SIGKILL between epochs and in the middle of a checkpoint write
# ------------------------------------------------------------------------------------------------
def _cli(tmp_path, *extra, pause=None):
    """Start the command line on Mamba4Rec, 3 epochs; pause: (event, n) of tests/pausing_cli.py."""
    marker = tmp_path / "paused"
    entry = [str(ROOT / "run_recbole_sigma.py")]
    if pause:
        entry = [str(ROOT / "tests" / "pausing_cli.py"), f"{pause[0]}:{pause[1]}:{marker}"]
    args = [sys.executable, *entry, "--model=Mamba4Rec", "--dataset=ml-100k",
            "--epochs=3", *(f"--{k}={v}" for k, v in small(tmp_path / "ck").items()), *extra]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    log = open(tmp_path / f"log{len(list(tmp_path.glob('log*')))}.txt", "w+")
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    return proc, marker, log


def _kill_when_paused(proc, marker, log, timeout=300):
    deadline = time.monotonic() + timeout
    try:
        while not marker.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"the run never reached the pause (rc {proc.returncode}):\n{log.read()[-3000:]}")
            time.sleep(0.2)
        assert int(marker.read_text()) == proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    marker.unlink()
    log.seek(0)
    return log.read()


def _trained_epochs(log_text):
    return [int(e) for e in re.findall(r"epoch (\d+) training \[", log_text)]


@pytest.mark.skipif(
    sys.version_info >= (3, 13),
    reason="on CPython 3.13 the fused scan that numba compiles in a process rounds apart from the one it "
           "loads from its disk cache (tests/test_selective_scan.py, README, Long runs), so this in-process "
           "reference differs from the command-line runs",
)
def test_killed_run_resumes_and_ends_as_the_uninterrupted_run(tmp_path):
    ck = tmp_path / "ck"
    best, last = ck / "Mamba4Rec-ml-100k-best.pth", ck / "Mamba4Rec-ml-100k-last.pth"
    # 1. Killed between epochs: at the start of epoch 1, after epoch 0's checkpoints.
    proc, marker, log = _cli(tmp_path, pause=("epoch", 2))
    first = _kill_when_paused(proc, marker, log)
    assert _trained_epochs(first) == [0]
    assert load_checkpoint(last)["epoch"] == 0 and load_checkpoint(best)["epoch"] == 0

    # 2. Resumed, then killed in the middle of writing the last checkpoint of epoch 1.
    proc, marker, log = _cli(tmp_path, "--resume", pause=("save-last", 1))
    second = _kill_when_paused(proc, marker, log)
    assert "Resume training from epoch 1" in second and _trained_epochs(second) == [1]
    assert Path(str(last) + ".tmp").exists()  # the partial write, never renamed
    assert load_checkpoint(last)["epoch"] == 0  # the previous last checkpoint is whole

    # 3. Resumed to the end: epoch 1 again (its checkpoint never landed), then epoch 2.
    proc, _, log = _cli(tmp_path, "--resume")
    try:
        returncode = proc.wait(timeout=300)
    finally:
        proc.kill()
    log.seek(0)
    third = log.read()
    assert returncode == 0, third[-3000:]
    assert "Resume training from epoch 1" in third and _trained_epochs(third) == [1, 2]
    assert sorted(set(_trained_epochs(first) + _trained_epochs(third))) == [0, 1, 2]  # = epochs=3
    final = load_checkpoint(last)
    assert final["epoch"] == 2

    # The same best model as an uninterrupted run with the same seed, bit for bit.
    reference = recbole_sigma.run("Mamba4Rec", "ml-100k", config_dict=small(tmp_path / "ref", epochs=3))
    assert_same_weights(weights(best), weights(reference["checkpoint"]))
    assert final["best_valid_score"] == reference["best_valid_score"]
    assert final["recbole_sigma"]["best_valid_result"] == reference["best_valid_result"]

    # The checkpoint loads with load_data_and_model and scores as the reference run did.
    from recbole.utils import get_trainer

    config, model, _, _, _, test_data = recbole_sigma.load_data_and_model(str(best))
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    assert dict(trainer.evaluate(test_data, load_best_model=False)) == reference["test_result"]

    # Resuming a finished run trains nothing and keeps the best model.
    again = recbole_sigma.run("Mamba4Rec", "ml-100k", config_dict=small(ck, epochs=3), resume=True)
    assert again["test_result"] == reference["test_result"]
    assert again["best_valid_result"] == reference["best_valid_result"]
    assert_same_weights(weights(best), weights(reference["checkpoint"]))


def test_resuming_a_finished_run_from_recboles_own_checkpoint_reports_its_best_valid_metrics(tmp_path):
    """RecBole's trainer keeps the best score in its checkpoint, not the metrics: when nothing after the
    resume beats it, they are the best model's on valid, not a crash after the test."""
    reference = recbole_sigma.run("Mamba4Rec", "ml-100k", config_dict=small(tmp_path / "a", epochs=1))
    checkpoint = torch.load(reference["checkpoint"], weights_only=False)
    del checkpoint["recbole_sigma"]  # what RecBole's own Trainer writes
    atomic_save(checkpoint, tmp_path / "recbole.pth")
    again = recbole_sigma.run("Mamba4Rec", "ml-100k", config_dict=small(tmp_path / "b", epochs=1),
                              resume=str(tmp_path / "recbole.pth"))
    assert again["best_valid_result"] == reference["best_valid_result"]
    assert again["test_result"] == reference["test_result"]


def test_resuming_a_finished_run_still_gives_the_item_metrics_recboles_fit_collects_for(tmp_path):
    """RecBole's fit collects the training items first (ItemCoverage, AveragePopularity need them): a finished
    run's resume, which trains nothing, collects them too instead of failing at the test."""
    settings = small(tmp_path, epochs=1, metrics=["Hit", "NDCG", "ItemCoverage", "AveragePopularity"])
    first = recbole_sigma.run("Mamba4Rec", "ml-100k", config_dict=settings)
    again = recbole_sigma.run("Mamba4Rec", "ml-100k", config_dict=settings, resume=True)
    assert again["test_result"] == first["test_result"] and "itemcoverage@10" in again["test_result"]


def test_a_run_resumed_from_another_file_makes_that_state_its_last_checkpoint(tmp_path):
    """Resumed from a file that is not <name>-last.pth, the run's -last.pth must be this run's state at once:
    killed in its first epoch, a plain resume continues it, not the older, longer run whose -last.pth was there."""
    last = tmp_path / "Mamba4Rec-ml-100k-last.pth"
    recbole_sigma.run("Mamba4Rec", "ml-100k", config_dict=small(tmp_path, epochs=1))
    epoch0 = tmp_path / "elsewhere" / "epoch0.pth"
    epoch0.parent.mkdir()
    epoch0.write_bytes(last.read_bytes())
    recbole_sigma.run("Mamba4Rec", "ml-100k", config_dict=small(tmp_path, epochs=3))  # another run: last at epoch 2
    assert load_checkpoint(last)["epoch"] == 2
    rng = load_checkpoint(last)["recbole_sigma"]["rng"][0]
    assert {"train_data", "valid_data"} <= set(rng)  # both loaders' generators: a resume repeats their draws

    class Killed(Exception):
        pass

    def kill_in_epoch_1(event):
        if event["epoch"] == 1 and "loss" in event:
            raise Killed

    with pytest.raises(Killed):
        recbole_sigma.run("Mamba4Rec", "ml-100k", config_dict=small(tmp_path, epochs=3), resume=str(epoch0),
                          on_epoch=kill_in_epoch_1)
    assert load_checkpoint(last)["epoch"] == 0  # the resumed state, not the other run's epoch 2


def test_a_fresh_run_whose_validations_never_give_a_best_model_is_an_error_not_a_test_of_an_old_file(
        tmp_path, monkeypatch):
    from recbole.trainer import Trainer

    recbole_sigma.run("Mamba4Rec", "ml-100k", config_dict=small(tmp_path, epochs=1))  # an older best model
    monkeypatch.setattr(Trainer, "_valid_epoch", lambda self, data, show_progress=False: (float("nan"), {}))
    with pytest.raises(CheckpointError, match="Mamba4Rec on ml-100k: no validation gave a best model to test "
                                              r"\(valid_metric NDCG@10 was nan at the last one\)"):
        recbole_sigma.run("Mamba4Rec", "ml-100k", config_dict=small(tmp_path, epochs=1))


def test_resume_refuses_another_model_s_checkpoint(tmp_path):
    path = tmp_path / "ck.pth"
    config = recbole_sigma.build_config("SIGMA", "ml-100k")
    atomic_save({"state_dict": {}, "config": config, "epoch": 0}, path)
    with pytest.raises(CheckpointError, match="written for model 'SIGMA', not 'Mamba4Rec'"):
        recbole_sigma.run("Mamba4Rec", "ml-100k", config_dict=small(tmp_path, epochs=1), resume=str(path))


def test_resume_from_a_checkpoint_that_does_not_fit_the_model_is_one_line_naming_the_keys(tmp_path):
    path = tmp_path / "ck.pth"
    config = recbole_sigma.build_config("SIGMA", "ml-100k")
    atomic_save({"state_dict": {"bogus": torch.zeros(1)}, "config": config, "epoch": 0}, path)
    with pytest.raises(CheckpointError, match=r"ck\.pth' does not fit the model its config builds: .*"
                                              r"Unexpected key\(s\) in state_dict: \"bogus\".*; config keys "
                                              r"that differ from the checkpoint's: ") as error:
        recbole_sigma.run("SIGMA", "ml-100k", config_dict=small(tmp_path, epochs=1), resume=str(path))
    assert "\n" not in str(error.value)


def test_a_resumed_pretraining_is_finished_at_pretrain_epochs_not_epochs():
    """RecBole's S3Rec pretrains for pretrain_epochs (500), more than its epochs (300): a resume at
    epoch 300 must go on pretraining."""
    from types import SimpleNamespace

    from recbole.trainer.trainer import PretrainTrainer

    from recbole_sigma.trainer import reliable_trainer

    trainer = object.__new__(reliable_trainer(PretrainTrainer))
    trainer.__dict__.update(_resumed=True, start_epoch=300, epochs=300, stopping_step=10, cur_step=0,
                            model=SimpleNamespace(train_stage="pretrain"), config={"pretrain_epochs": 500})
    assert not trainer._finished()
    trainer.start_epoch = 500
    assert trainer._finished()
    trainer.__dict__.update(start_epoch=300, model=SimpleNamespace(train_stage="finetune"))
    assert trainer._finished()


def test_resume_refuses_another_optimizer_in_one_line(tmp_path):
    path = tmp_path / "ck.pth"
    config = recbole_sigma.build_config("Mamba4Rec", "ml-100k")  # learner adam
    atomic_save({"state_dict": {}, "config": config, "epoch": 0}, path)
    with pytest.raises(CheckpointError, match="trained with learner 'adam', not 'sgd'") as error:
        recbole_sigma.run("Mamba4Rec", "ml-100k", config_dict=small(tmp_path, epochs=1, learner="sgd"), resume=str(path))
    assert "\n" not in str(error.value)


def test_a_resume_trains_at_the_learning_rate_it_is_given_not_the_checkpoints(tmp_path):
    """The optimizer's state dict holds the rate it ran at; a resume with another one must train at the new."""
    recbole_sigma.run("Mamba4Rec", "ml-100k", config_dict=small(tmp_path, epochs=1, learning_rate=0.001))
    last = tmp_path / "Mamba4Rec-ml-100k-last.pth"
    assert torch.load(last, weights_only=False)["optimizer"]["param_groups"][0]["lr"] == 0.001
    recbole_sigma.run("Mamba4Rec", "ml-100k", resume=True,
                      config_dict=small(tmp_path, epochs=2, learning_rate=0.0005, weight_decay=1e-6))
    group = torch.load(last, weights_only=False)["optimizer"]["param_groups"][0]
    assert (group["lr"], group["weight_decay"]) == (0.0005, 1e-6)
    # a learner RecBole does not know is Adam without weight decay, resumed or not
    settings = small(tmp_path / "other", epochs=1, learner="adamax", weight_decay=1e-6)
    recbole_sigma.run("Mamba4Rec", "ml-100k", config_dict=settings)
    recbole_sigma.run("Mamba4Rec", "ml-100k", resume=True, config_dict=dict(settings, epochs=2))
    group = torch.load(tmp_path / "other" / "Mamba4Rec-ml-100k-last.pth", weights_only=False)["optimizer"]["param_groups"][0]
    assert group["weight_decay"] == 0


# ------------------------------------------------------------------------------------------------
# Determinism
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["Mamba4Rec", "SIGMA"])
def test_same_seed_same_bits(tmp_path, model):
    runs = [recbole_sigma.run(model, "ml-100k", config_dict=small(tmp_path / str(i), epochs=1)) for i in range(2)]
    assert runs[0]["best_valid_result"] == runs[1]["best_valid_result"]
    assert runs[0]["test_result"] == runs[1]["test_result"]
    assert_same_weights(weights(runs[0]["checkpoint"]), weights(runs[1]["checkpoint"]))


# ------------------------------------------------------------------------------------------------
# Non-finite loss guard
# ------------------------------------------------------------------------------------------------
def test_nan_loss_stops_training_naming_epoch_and_batch(tmp_path, monkeypatch):
    from recbole.trainer import Trainer

    state = {"validated": False, "batches_after": 0}
    valid_epoch, calculate_loss = Trainer._valid_epoch, recbole_sigma.Mamba4Rec.calculate_loss

    def count_validations(self, *args, **kwargs):
        state["validated"] = True
        return valid_epoch(self, *args, **kwargs)

    def nan_at_second_batch_of_epoch_1(self, interaction):
        loss = calculate_loss(self, interaction)
        if state["validated"]:
            state["batches_after"] += 1
            if state["batches_after"] == 2:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(Trainer, "_valid_epoch", count_validations)
    monkeypatch.setattr(recbole_sigma.Mamba4Rec, "calculate_loss", nan_at_second_batch_of_epoch_1)
    with pytest.raises(NonFiniteLossError, match=r"training loss is nan at epoch 1, batch 1 ") as info:
        recbole_sigma.run("Mamba4Rec", "ml-100k", config_dict=small(tmp_path, epochs=3))
    assert (info.value.epoch, info.value.batch) == (1, 1)
    for name in ("best", "last"):  # epoch 0's checkpoints, nothing later
        checkpoint = load_checkpoint(tmp_path / f"Mamba4Rec-ml-100k-{name}.pth")
        assert checkpoint["epoch"] == 0
        assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())


def test_absurd_learning_rate_is_a_one_line_error_on_the_command_line(tmp_path, capsys):
    args = ["--model=Mamba4Rec", "--dataset=ml-100k", "--epochs=2", "--learning_rate=1e30"]
    args += [f"--{k}={v}" for k, v in small(tmp_path).items()]
    assert main(args) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # (above it: warnings, if Python prints them)
    assert err.startswith("error: Mamba4Rec on ml-100k: ")
    assert re.search(r"(training loss is (nan|inf|-inf) at epoch \d+, batch \d+|is not finite after epoch)", err)
    assert not (tmp_path / "Mamba4Rec-ml-100k-last.pth").exists()


# ------------------------------------------------------------------------------------------------
# Multi-process training on CPU (gloo)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "flags",
    [{}, {"use_partial_flip": False}, {"use_ds_gate": False}, {"use_fe_gru": False},
     {"share_mamba": True, "flip_mode": "fixed", "gate_mode": "public_code", "mix_weights": "public_code",
      "gru_bias": False}],
)
def test_every_trainable_parameter_is_used_under_each_ablation(make_model, flags):
    """DDP without find_unused_parameters needs every trainable parameter in the graph."""
    model = make_model("SIGMA", **flags)
    seq, lengths = padded_batch([12, 5, 1, 8])
    interaction = {"item_id_list": seq, "item_length": lengths, "item_id": torch.tensor([3, 4, 5, 6])}
    model.calculate_loss(interaction).backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []


def _run_on_two_processes(config_dict, **kwargs):
    """``run(..., nproc=2)`` on a free port. Another program may take the port between this check and
    rank 0's listen, seconds later; that is a PortInUseError, and one retry on a new port."""
    try:
        return recbole_sigma.run("SIGMA", "ml-100k", config_dict=config_dict, nproc=2, port=free_port(), **kwargs)
    except PortInUseError:
        return recbole_sigma.run("SIGMA", "ml-100k", config_dict=config_dict, nproc=2, port=free_port(), **kwargs)


def test_sigma_trains_with_two_processes_on_cpu(tmp_path, capfd):
    """quiet and queue reach a DDP run as a single process's: no INFO on the console, the result put."""
    results = queue.Queue()
    result = _run_on_two_processes(small(tmp_path, epochs=1), quiet=True, queue=results)
    assert results.get_nowait() is result
    assert " INFO " not in capfd.readouterr().err
    for metrics in (result["best_valid_result"], result["test_result"]):
        assert set(metrics) == {"hit@10", "ndcg@10", "mrr@10"}
        assert all(0.0 <= v <= 1.0 for v in metrics.values())
    assert result["test_result"]["hit@10"] > 0
    # Rank 0 wrote a single-process checkpoint: it loads without a process group.
    config, model, *_ = recbole_sigma.load_data_and_model(result["checkpoint"])
    assert isinstance(model, recbole_sigma.SIGMA) and config["single_spec"]


def test_an_error_in_a_worker_is_raised_as_itself(tmp_path):
    with pytest.raises(RecBoleSigmaError, match="no interactions left after filtering"):
        _run_on_two_processes(small(tmp_path, epochs=1, user_inter_num_interval="[5000,inf)"))


def test_a_port_another_program_holds_is_a_one_line_error(tmp_path, capsys):
    with socket.socket() as held:
        held.bind(("localhost", 0))
        held.listen()
        port = held.getsockname()[1]
        args = ["--model=SIGMA", "--dataset=ml-100k", "--epochs=1", "--nproc=2", f"--port={port}"]
        assert main(args + [f"--{k}={v}" for k, v in small(tmp_path).items()]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err == (f"error: port {port} on localhost is in use (another program or DDP run listens on it): "
                   "pass a free one with --port (run(..., port=...))")
    assert not list(tmp_path.glob("*.pth"))


def _finish_with_an_exit_hook(model, dataset, config_file_list, config_dict, saved, resume, queue, quiet=False):
    """``pipeline.run``'s stand-in in a spawned worker: an interpreter-exit hook that would leave a
    file behind, and rank 0's result on the queue."""
    import atexit

    atexit.register((Path(config_dict["checkpoint_dir"]) / f"teardown-{config_dict['local_rank']}").touch)
    if config_dict["local_rank"] == 0:
        queue.put({"model": model, "dataset": dataset})


def test_a_finished_worker_skips_the_interpreter_teardown(tmp_path):
    """torch keeps the gloo threads alive past destroy_process_group and their teardown at exit
    now and then aborts a worker whose run is done (SIGABRT): a finished worker leaves without it,
    its result delivered (distributed.py)."""
    from recbole_sigma.distributed import spawn

    result = spawn(_finish_with_an_exit_hook, "SIGMA", "ml-100k", config_dict={"checkpoint_dir": str(tmp_path)},
                   nproc=2, port=free_port())
    assert result == {"model": "SIGMA", "dataset": "ml-100k"}
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# Errors before training
# ------------------------------------------------------------------------------------------------
def test_dataset_empty_after_filtering_is_a_clear_error(tmp_path):
    with pytest.raises(EmptyDatasetError, match="'ml-100k' has no interactions left after filtering"):
        recbole_sigma.run("SIGMA", "ml-100k", config_dict=small(tmp_path, user_inter_num_interval="[5000,inf)"))
