"""The entry point: model resolution, YAML defaults, clear errors, and a real 1-epoch run."""
import contextlib
import io
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import recbole_sigma
from recbole_sigma.errors import CheckpointError, ConfigError, DatasetNotFoundError, UnknownModelError
from recbole_sigma.cli import main
from recbole_sigma.config import build_config, checked_config, config_files, resolve_model
from recbole_sigma.pipeline import format_result
from tests.conftest import TINY, TINY_DATA_KEYS, TINY_SASREC, write_atomic_dataset

ROOT = Path(__file__).resolve().parents[1]


def test_models_resolve_by_name_ours_and_recbole_s():
    assert resolve_model("SIGMA") is recbole_sigma.SIGMA
    assert resolve_model("Mamba4Rec") is recbole_sigma.Mamba4Rec
    assert resolve_model("SASRec") is recbole_sigma.model.SASRec  # RecBole's, length-bucketed
    assert resolve_model("GRU4Rec").__module__ == "recbole.model.sequential_recommender.gru4rec"


def test_unknown_model_lists_the_available_ones():
    with pytest.raises(UnknownModelError) as info:
        resolve_model("SIGMO")
    message = str(info.value)
    assert "'SIGMO'" in message and "Mamba4Rec, SIGMA, EchoMamba4Rec" in message
    assert "SASRec" in message and "GRU4Rec" in message
    # a RecBole model in the wrong case: RecBole finds its module, then not the class
    with pytest.raises(UnknownModelError, match="unknown model 'gru4rec' \\(did you mean 'GRU4Rec'\\?\\)"):
        resolve_model("gru4rec")


def test_config_files_order_model_then_dataset():
    files = [Path(f).relative_to(ROOT / "properties").as_posix() for f in config_files("Mamba4Rec", "amazon-beauty")]
    assert files == ["model/Mamba4Rec.yaml", "dataset/amazon-beauty.yaml"]
    assert config_files("GRU4Rec", "ml-100k") == []  # RecBole's model: RecBole's YAML only
    assert [Path(f).name for f in config_files("SASRec", "ml-100k")] == ["SASRec.yaml"]  # + length_buckets


def test_checked_config_raises_one_line_errors_naming_the_key():
    with pytest.raises(ConfigError, match=r"^SIGMA: dropout_prob=1.5 is invalid; expected a number in \[0, 1\)"):
        checked_config("SIGMA", "ml-100k", config_dict={"dropout_prob": 1.5})
    with pytest.raises(ConfigError, match=r"^eval_step=0 is invalid"):
        checked_config("SIGMA", "ml-100k", config_dict={"eval_step": 0})
    with pytest.raises(ConfigError, match=r"^eval_args split=\{'XX': \[0.8\]\} is invalid"):
        checked_config("SIGMA", "ml-100k", config_dict={"eval_args": {"split": {"XX": [0.8]}}})
    assert checked_config("SIGMA", "ml-100k", config_dict={"dropout_prob": 0.3})["dropout_prob"] == 0.3


def test_yaml_defaults_reach_recbole_config_and_user_keys_win():
    config = build_config("Mamba4Rec", "amazon-beauty", config_dict={"learning_rate": 0.005})
    assert config["dropout_prob"] == "auto"  # Mamba4Rec's per-domain rule: 0.4 on Amazon (test_models)
    assert config["d_state"] == 32 and config["MAX_ITEM_LIST_LENGTH"] == 50
    assert config["learning_rate"] == 0.005
    assert config["valid_metric"] == "NDCG@10"


def test_missing_dataset_names_data_path(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=f"not found at data_path '{tmp_path}/no-such-set'"):
        recbole_sigma.run("SIGMA", "no-such-set", config_dict={"data_path": str(tmp_path), **TINY})


def test_known_dataset_offline_is_a_clear_error_not_a_urllib_traceback(tmp_path, monkeypatch):
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DatasetNotFoundError, match="amazon-beauty.*RecBole's mirror cannot be reached .*network is "
                                                   r"unreachable\): elsewhere, download https://\S+, unzip it into "
                                                   r"\S+ and name its files amazon-beauty.inter"):
        recbole_sigma.run("SIGMA", "amazon-beauty", config_dict={"data_path": str(tmp_path), **TINY})
    # online: RecBole's own download would ask on stdin, then wait on a process group it has not got
    monkeypatch.setattr(urllib.request, "urlopen", lambda *args, **kwargs: io.BytesIO())
    with pytest.raises(DatasetNotFoundError, match=r"amazon-beauty.*RecBole's mirror has it: download https://\S+, "
                                                   "unzip it into"):
        recbole_sigma.run("SIGMA", "amazon-beauty", config_dict={"data_path": str(tmp_path), **TINY})


@pytest.mark.parametrize("content, message", [("a: [1,", "is not valid YAML"), ("- 1\n- 2\n", "must hold a mapping")])
def test_malformed_config_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        build_config("SIGMA", "ml-100k", config_file_list=[str(path)])
    with pytest.raises(ConfigError, match="cannot be read"):
        build_config("SIGMA", "ml-100k", config_file_list=[str(tmp_path / "absent.yaml")])


def test_an_empty_config_file_sets_nothing(tmp_path):
    empty, comments = tmp_path / "empty.yaml", tmp_path / "comments.yaml"
    empty.write_text("")
    comments.write_text("# nothing set yet\n")
    config = build_config("SIGMA", "ml-100k", config_file_list=[str(empty), str(comments)],
                          config_dict={"hidden_size": 16})
    assert config["hidden_size"] == 16 and config["d_state"] == build_config("SIGMA", "ml-100k")["d_state"]


def test_cli_reports_errors_in_one_line_with_exit_code_2(capsys):
    assert main(["--model=NoSuchModel", "--dataset=ml-100k"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model 'NoSuchModel'") and err.count("\n") == 1
    # argparse's own errors too, not its usage block first
    for argv, fragment in ((["--epochs", "1"], "unrecognised argument '--epochs'"),
                           (["--nproc=x"], "argument --nproc: invalid int value: 'x'"),
                           # flags that would be read and ignored: a run's with a tuning, the tuning's without one
                           (["--params_file=hyper.test", "--nproc=4", "--resume"],
                            "--resume, --nproc with --params_file: a tuning runs each trial as one process"),
                           (["--params_file=hyper.test", "--ray_address=auto"], "only --tool=ray uses"),
                           (["--tool=ray", "--max_evals=5"], "--tool, --max_evals without --params_file")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.startswith("error: ") and fragment in err and err.count("\n") == 1


@pytest.mark.parametrize("model", ["Mamba4Rec", "SIGMA", "EchoMamba4Rec", "SASRec"])
def test_one_epoch_on_ml_100k_prints_test_metrics(tmp_path, model, capsys):
    args = [f"--model={model}", "--dataset=ml-100k", f"--checkpoint_dir={tmp_path}"]
    args += [f"--{k}={v}" for k, v in TINY.items()]
    if model == "SASRec":
        args += [f"--{k}={v}" for k, v in TINY_SASREC.items()]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    test_line = next(line for line in out if line.startswith("test result:"))
    for metric in ("hit@10", "ndcg@10", "mrr@10"):
        value = float(test_line.split(f"{metric}: ")[1].split()[0])
        assert 0.0 <= value <= 1.0
    assert float(test_line.split("hit@10: ")[1].split()[0]) > 0.0


@contextlib.contextmanager
def bare_root_logger():
    """No handlers on the root logger: pytest's own, added around each test's call, would make
    RecBole's logging.basicConfig (its init_logger) a no-op."""
    root = logging.getLogger()
    saved = root.handlers[:]
    for handler in saved:
        root.removeHandler(handler)
    yield
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        handler.close()
    for handler in saved:
        root.addHandler(handler)


def test_load_data_and_model_round_trip_for_our_model(tmp_path, capsys):
    events = []
    with bare_root_logger():
        result = recbole_sigma.run("SIGMA", "ml-100k", config_dict={"checkpoint_dir": str(tmp_path), **TINY},
                                   on_epoch=events.append, quiet=True)
    # on_epoch heard the one epoch's training and validation; quiet kept INFO off the console.
    assert [sorted(e) for e in events] == [["epoch", "loss", "train_s"],
                                           ["epoch", "valid_result", "valid_s", "valid_score"]]
    assert events[0]["epoch"] == events[1]["epoch"] == 0 and events[0]["loss"] > 0
    assert events[1]["valid_score"] == result["best_valid_score"]
    assert events[1]["valid_result"] == pytest.approx(result["best_valid_result"], abs=1e-12)
    assert "INFO" not in capsys.readouterr().err
    config, model, dataset, train_data, valid_data, test_data = recbole_sigma.load_data_and_model(result["checkpoint"])
    assert isinstance(model, recbole_sigma.SIGMA)
    from recbole.utils import get_trainer

    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    again = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    assert dict(again) == pytest.approx(result["test_result"], abs=1e-12)
    # a checkpoint whose config now builds other parameters (here: the paper's SIGMA's weights under the
    # notebook preset, which has one Mamba and no a1, a2) is a one-line CheckpointError
    checkpoint = torch.load(result["checkpoint"], map_location="cpu", weights_only=False)
    checkpoint["config"]["sigma_variant"] = "notebook"
    torch.save(checkpoint, tmp_path / "other.pth")
    with bare_root_logger(), pytest.raises(CheckpointError, match=r"other\.pth' does not fit the model its config "
                                                                  r"builds: .*Unexpected key\(s\).*mixer\.a1"):
        recbole_sigma.load_data_and_model(str(tmp_path / "other.pth"))
    # trained on a GPU with mamba_backend 'cuda', loaded on a machine without CUDA: the PyTorch path, same scores
    if not torch.cuda.is_available():
        checkpoint = torch.load(result["checkpoint"], map_location="cpu", weights_only=False)
        checkpoint["config"]["device"], checkpoint["config"]["mamba_backend"] = torch.device("cuda"), "cuda"
        torch.save(checkpoint, tmp_path / "gpu.pth")
        with bare_root_logger():
            config, model, _, _, _, test_data = recbole_sigma.load_data_and_model(str(tmp_path / "gpu.pth"))
        assert (config["device"].type, config["mamba_backend"]) == ("cpu", "auto")
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        assert dict(trainer.evaluate(test_data, load_best_model=False, show_progress=False)) == \
            pytest.approx(result["test_result"], abs=1e-12)


def test_a_config_of_recboles_own_sasrec_gets_our_yaml_keys():
    """A checkpoint RecBole's own trainer wrote for its SASRec has no length_buckets: load_data_and_model
    gives it our YAML's default, so our SASRec (the class resolve_model gives) builds from it."""
    from recbole.config import Config

    from recbole_sigma.pipeline import add_model_defaults
    from tests.conftest import FakeDataset

    config = Config(model="SASRec", dataset="ml-100k", config_dict={"train_neg_sample_args": None})
    assert config["length_buckets"] is None
    with pytest.raises(ConfigError, match="SASRec: config key 'length_buckets' is missing"):
        resolve_model("SASRec")(config, FakeDataset(30))
    add_model_defaults(config)
    assert resolve_model("SASRec")(config, FakeDataset(30)).length_buckets is True


def test_on_epoch_is_refused_for_several_processes():
    with pytest.raises(ValueError, match="single-process"):
        recbole_sigma.run("SIGMA", "ml-100k", config_dict=TINY, nproc=2, on_epoch=print)


def test_format_result():
    text = format_result({"best_valid_result": {"hit@10": 0.5}, "test_result": {"hit@10": 0.25, "ndcg@10": 0.125}})
    assert text == "best valid: hit@10: 0.5000\ntest result: hit@10: 0.2500  ndcg@10: 0.1250"


def test_script_runs_from_another_directory(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run_recbole_sigma.py"), "--model=Nope"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2 and "unknown model 'Nope'" in proc.stderr


def test_another_recbole_project_gets_our_defaults_with_one_call():
    """README's "From another RecBole project": RecBole's own Config plus config_files()."""
    from recbole.config import Config

    config = Config(model=recbole_sigma.Mamba4Rec, dataset="amazon-beauty",
                    config_file_list=config_files("Mamba4Rec", "amazon-beauty"))
    assert config["model"] == "Mamba4Rec" and config["d_state"] == 32 and config["dropout_prob"] == "auto"
    assert config["MAX_ITEM_LIST_LENGTH"] == 50 and config["eval_args"]["split"] == {"LS": "valid_and_test"}


def test_run_as_a_library_leaves_the_allocator_and_the_root_logger_as_they_were(tmp_path, monkeypatch):
    """No process-wide side effect from ``run()``: glibc's allocator is the command line's choice
    (recbole_sigma.malloc), and RecBole's init_logger's handlers go once the run is over (its log
    file written and closed), as does its TensorBoard writer's thread; the root logger's level is
    put back, and CUDA_VISIBLE_DEVICES, which RecBole's Config sets to gpu_id; sys.stdout and sys.stderr are
    the caller's again (RecBole wraps them in colorama's)."""
    from recbole_sigma import malloc

    calls = []
    monkeypatch.setattr(malloc, "_libc", None)  # the allocator untouched so far in this process
    monkeypatch.setattr(malloc, "keep_freed_memory", lambda: calls.append("keep_freed_memory") or False)
    monkeypatch.chdir(tmp_path)  # RecBole's log/ lands here
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    root = logging.getLogger()
    threads_before = set(threading.enumerate())
    streams = sys.stdout, sys.stderr
    with bare_root_logger():
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            write_atomic_dataset(tmp_path / "data")
            settings = {**TINY, **TINY_DATA_KEYS, "hidden_size": 8, "d_state": 4, "data_path": str(tmp_path / "data"),
                        "checkpoint_dir": str(tmp_path / "saved")}
            result = recbole_sigma.run("SIGMA", "tiny", config_dict=settings, quiet=True)
            handlers, level_after = root.handlers[:], root.level
        finally:
            root.setLevel(level)
    assert calls == [] and malloc._libc is None and not malloc.release_free_memory()
    assert handlers == [] and level_after == logging.ERROR
    assert (sys.stdout, sys.stderr) == streams
    assert "CUDA_VISIBLE_DEVICES" not in os.environ  # RecBole's Config set it to '0' inside
    logs = list((tmp_path / "log").rglob("*.log"))
    assert len(logs) == 1 and "test result" in logs[0].read_text()
    assert [t.name for t in threading.enumerate() if t not in threads_before] == []  # TensorBoard's writer
    assert result["test_result"]


def test_run_beside_a_callers_logging_writes_its_log_file_and_shows_the_caller_only_its_level(tmp_path, monkeypatch,
                                                                                            capsys):
    """RecBole's init_logger is basicConfig, a no-op (an empty log file) once the root logger has handlers:
    run() writes its log file all the same, and the caller's handler, not RecBole's console, shows the run,
    at the caller's levels (the root at WARNING: no INFO line of RecBole's; its own logger at INFO: its
    lines); handlers, levels and filters are the caller's again after."""
    class Kept(logging.Handler):
        def emit(self, record):
            seen.append(record)

    seen, mine, root, app = [], Kept(), logging.getLogger(), logging.getLogger("test_pipeline_app")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(app, "level", logging.INFO)
    write_atomic_dataset(tmp_path / "data")
    settings = {**TINY, **TINY_DATA_KEYS, "hidden_size": 8, "d_state": 4, "data_path": str(tmp_path / "data"),
                "checkpoint_dir": str(tmp_path / "saved")}
    with bare_root_logger():  # the caller's logging: one handler, the root at WARNING
        level = root.level
        root.addHandler(mine)
        root.setLevel(logging.WARNING)
        try:
            recbole_sigma.run("SIGMA", "tiny", config_dict=settings,  # not quiet: RecBole's console at INFO
                              on_epoch=lambda event: app.info("the caller's epoch %d", event["epoch"]))
            after = root.handlers[:], root.level, mine.level, mine.filters
        finally:
            root.setLevel(level)
    assert after == ([mine], logging.WARNING, logging.NOTSET, [])
    assert [r.getMessage() for r in seen if r.levelno < logging.WARNING] == ["the caller's epoch 0"] * 2
    assert "INFO" not in capsys.readouterr().err  # no RecBole console beside the caller's handler
    logs = list((tmp_path / "log").rglob("*.log"))
    assert len(logs) == 1 and "test result" in logs[0].read_text()


class _FakeConfig(dict):
    """What RecBole's init_logger reads of a Config."""

    @property
    def final_config_dict(self):
        return self


def test_init_logger_keeps_a_callers_lower_root_level_quiets_its_console_and_keeps_tracebacks_out_of_its_files(
        tmp_path, monkeypatch):
    from recbole_sigma.pipeline import _init_logger, restored_root_logger

    monkeypatch.chdir(tmp_path)
    root, other = logging.getLogger(), logging.getLogger("test_pipeline_other")
    console, caller_file = logging.StreamHandler(io.StringIO()), logging.FileHandler(tmp_path / "caller.log")
    config = _FakeConfig(model="SIGMA", dataset="tiny", state="INFO")
    with bare_root_logger():  # the caller's logging: the root at DEBUG, a console and a file
        level = root.level
        root.setLevel(logging.DEBUG)
        root.addHandler(console)
        root.addHandler(caller_file)
        try:
            with pytest.raises(RuntimeError, match="boom"), restored_root_logger():
                _init_logger(config, quiet=True)
                assert root.level == logging.DEBUG  # not raised to RecBole's INFO
                assert console.level == logging.WARNING and caller_file.level == logging.NOTSET  # quiet
                other.debug("the caller's debug line")  # reaches the caller's file, as without run()
                raise RuntimeError("boom")
            after = root.handlers[:], root.level, console.level, console.filters, caller_file.filters
        finally:
            root.setLevel(level)
            caller_file.close()
    assert after == ([console, caller_file], logging.DEBUG, logging.NOTSET, [], [])
    assert console.stream.getvalue() == ""
    text = (tmp_path / "caller.log").read_text()
    assert "the caller's debug line" in text and "boom" not in text  # the traceback is the run's, not the caller's
    recbole_log = next((tmp_path / "log").rglob("*.log")).read_text()
    assert "RuntimeError: boom" in recbole_log and "Traceback" in recbole_log
