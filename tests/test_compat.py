"""Tests for recbole_sigma._recbole: RecBole 1.2.1 on torch>=2.6 / numpy 2 /
pandas 3, installed without its ray<=2.6.3 pin.

For each fix there is
* ``test_<fix>_still_needed``: shows the breakage is real, in a fresh
  interpreter with every *other* fix applied (the _recbole package is loaded
  on its own, recbole_sigma is not imported) or by temporarily restoring
  RecBole's original code.  It skips, rather than fails, once RecBole/ray/...
  no longer break, so the fix can be reconsidered.
* ``test_<fix>``: the same operation works with recbole_sigma imported.
"""

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import recbole_sigma  # noqa: F401  (applies the fixes)
from recbole_sigma import _recbole
from recbole_sigma._recbole import checkpoints, hooks, numpy_aliases

REPO = Path(__file__).resolve().parents[1]
PATCHES_DIR = REPO / "recbole_sigma" / "_recbole"


def run_python(code, cwd, skip_fix=None, import_package=False, pythonpath=None):
    """Run ``code`` in a fresh interpreter.

    Before it, either ``import recbole_sigma`` (``import_package``) or load
    the _recbole package standalone and apply every fix except ``skip_fix``.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    if import_package:
        env["PYTHONPATH"] = str(REPO)
        prelude = "import recbole_sigma\n"
    else:
        prelude = textwrap.dedent(
            f"""
            import importlib.util, sys
            spec = importlib.util.spec_from_file_location(
                "_recbole", {str(PATCHES_DIR / "__init__.py")!r}, submodule_search_locations=[{str(PATCHES_DIR)!r}]
            )
            patches = sys.modules["_recbole"] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(patches)
            for fix in patches.FIXES:
                if fix.__name__ != {skip_fix!r}:
                    fix()
            """
        )
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-c", prelude + textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def expect_broken(proc, marker, what):
    if proc.returncode == 0:
        pytest.skip(f"{what} works without the fix now; the fix may be removable")
    assert marker in proc.stderr, proc.stderr[-3000:]


# --------------------------------------------------------------------------
# Fix 2: numpy aliases
def test_numpy_aliases_still_needed(tmp_path):
    code = """
    from recbole.config import Config
    Config(model="BPR", dataset="ml-100k")
    """
    proc = run_python(code, tmp_path, skip_fix="fix_numpy_aliases")
    expect_broken(proc, "np.float_", "recbole.config.Config()")


ALIASES = ("float", "int", "object", "str", "bool8", "float_", "complex_", "unicode_")


@pytest.mark.skipif(np.lib.NumpyVersion(np.__version__) < "2.0.0", reason="numpy < 2 has some of the aliases")
def test_numpy_aliases(tmp_path):
    """Config() and a dataset load work, RecBole's code that uses a removed alias runs, and numpy
    itself gets no new name (RecBole's own Config would add them for the whole process)."""
    import torch
    from recbole.data import interaction
    from recbole.evaluator import metrics

    dataset = _tiny_dataset(tmp_path)  # recbole.config.Config() and create_dataset
    assert dataset.inter_num > 0
    assert [name for name in ALIASES if hasattr(np, name)] == []

    # np.float in interaction._convert_to_tensor and MRR (metrics), through their own np
    assert metrics.np.float is np.float64 and interaction.np.float is np.float64
    assert metrics.np.zeros_like is np.zeros_like  # everything else is numpy's own
    assert torch.equal(interaction._convert_to_tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]))
    mrr = metrics.MRR({"topk": [2], "metric_decimal_place": 4})
    ranks = mrr.metric_info(np.array([[False, True], [True, False]]))
    assert ranks.tolist() == [[0.0, 0.5], [1.0, 1.0]]


# --------------------------------------------------------------------------
# Fix 3: checkpoints on torch >= 2.6
@pytest.fixture(scope="module")
def sasrec_run(tmp_path_factory):
    """SASRec on the first 5% (by time) of ml-100k, one epoch, checkpointed."""
    import colorama
    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    workdir = tmp_path_factory.mktemp("sasrec")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)  # RecBole writes ./log and ./log_tensorboard
        config = Config(
            model="SASRec",
            dataset="ml-100k",
            config_dict={
                "data_path": str(Path(recbole.__file__).parent / "dataset_example"),
                "checkpoint_dir": str(workdir / "saved"),
                "val_interval": {"timestamp": "[0,875320311]"},
                "epochs": 1,
                "train_batch_size": 256,
                "eval_batch_size": 4096,
                "train_neg_sample_args": None,
                "loss_type": "CE",
                "hidden_size": 16,
                "inner_size": 32,
                "n_layers": 1,
                "n_heads": 1,
                "MAX_ITEM_LIST_LENGTH": 20,
                "metrics": ["Recall", "MRR", "NDCG"],
                "topk": [10],
                "show_progress": False,
                "save_dataset": True,
                "save_dataloaders": True,
                "device": "cpu",
                "state": "ERROR",
            },
        )
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train_data, valid_data, test_data = data_preparation(config, dataset)
        model = get_model(config["model"])(config, train_data._dataset)
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        trainer.fit(train_data, valid_data, saved=True, show_progress=False)
        yield {
            "workdir": workdir,
            "trainer": trainer,
            "test_data": test_data,
            "checkpoint": trainer.saved_model_file,
        }
        colorama.deinit()


def test_checkpoint_loading_still_needed(sasrec_run):
    import torch

    try:
        torch.load(sasrec_run["checkpoint"])  # the global default, untouched
    except pickle.UnpicklingError as exc:
        assert "weights_only" in str(exc)
    else:
        pytest.skip("torch.load reads RecBole checkpoints by default again")


def test_checkpoint_loading(sasrec_run):
    import torch
    from recbole.quick_start import load_data_and_model
    from recbole.utils import get_trainer

    trainer, test_data = sasrec_run["trainer"], sasrec_run["test_data"]
    path = sasrec_run["checkpoint"]

    result = trainer.evaluate(test_data, load_best_model=True)
    assert set(result) == {"recall@10", "mrr@10", "ndcg@10"}

    trainer.start_epoch = 0
    trainer.resume_checkpoint(path)
    assert trainer.start_epoch == 1

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(sasrec_run["workdir"])
        config, model, _, _, _, test_data2 = load_data_and_model(path)
    reloaded = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    assert reloaded.evaluate(test_data2, load_best_model=False) == result

    # scoped: the process-wide default is still weights_only=True
    if checkpoints.needs_checkpoint_fix():
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path)


def test_load_data_and_model_fresh_process(sasrec_run):
    """A new process that never built a Config (so RecBole's own numpy aliasing
    never ran) reloads the checkpoint and evaluates, MRR (np.float) included."""
    code = f"""
    from recbole.quick_start import load_data_and_model
    from recbole.utils import get_trainer
    config, model, _, _, _, test_data = load_data_and_model({str(sasrec_run["checkpoint"])!r})
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    print("RESULT", dict(trainer.evaluate(test_data, load_best_model=False)))
    """
    proc = run_python(code, sasrec_run["workdir"], import_package=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = sasrec_run["trainer"].evaluate(sasrec_run["test_data"], load_best_model=True)
    assert f"RESULT {dict(expected)}" in proc.stdout


# --------------------------------------------------------------------------
# Fix 4: pandas 3 in Dataset
ITEMS = {  # item -> (price or None, genres)
    "i1": (1.0, ["a", "b"]),
    "i2": (None, ["b", "c"]),
    "i3": (3.0, ["c"]),
    "i4": (5.0, ["a", "d"]),
    "i5": (None, ["d"]),
    "i6": (2.0, ["e", "a"]),
}


def _tiny_dataset(tmp_path):
    from recbole.config import Config
    from recbole.data import create_dataset

    root = tmp_path / "tiny"
    root.mkdir(exist_ok=True)
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(1, 9):
        for i in range(1, 7):
            if (u + i) % 3:
                inter.append(f"u{u}\ti{i}\t{(u * i) % 5 + 1}\t{u * 100 + i}")
    (root / "tiny.inter").write_text("\n".join(inter) + "\n")
    item = ["item_id:token\tprice:float\tgenre:token_seq"]
    for iid, (price, genres) in ITEMS.items():
        item.append(f"{iid}\t{'' if price is None else price}\t{' '.join(genres)}")
    (root / "tiny.item").write_text("\n".join(item) + "\n")
    config = Config(
        model="BPR",
        dataset="tiny",
        config_dict={
            "data_path": str(tmp_path),
            "checkpoint_dir": str(tmp_path / "saved"),
            "load_col": {
                "inter": ["user_id", "item_id", "rating", "timestamp"],
                "item": ["item_id", "price", "genre"],
            },
            "state": "ERROR",
        },
    )
    return create_dataset(config)


def _restore_original(mp, name):
    from recbole.data.dataset import Dataset

    mp.setattr(Dataset, name, getattr(Dataset, name)._recbole_original)


def test_dataset_pandas3_still_needed(tmp_path, monkeypatch):
    with monkeypatch.context() as mp:
        _restore_original(mp, "_remap")
        try:
            _tiny_dataset(tmp_path)
            remap_broken = False
        except ValueError as exc:
            assert "Length of values" in str(exc)
            remap_broken = True
    with monkeypatch.context() as mp:
        _restore_original(mp, "_fill_nan")
        fill_nan_broken = bool(_tiny_dataset(tmp_path).item_feat["price"].isna().any())
    if not (remap_broken or fill_nan_broken):
        pytest.skip("RecBole's Dataset._remap/_fill_nan work on this pandas")


def test_dataset_pandas3(tmp_path):
    dataset = _tiny_dataset(tmp_path)
    feat = dataset.item_feat
    known = [p for p, _ in ITEMS.values() if p is not None]
    assert not feat["price"].isna().any()
    iid_tokens = dataset.field2id_token["item_id"]
    genre_tokens = dataset.field2id_token["genre"]
    for iid, genres in zip(feat["item_id"], feat["genre"]):
        token = iid_tokens[iid]
        if token == "[PAD]":
            continue
        price, expected_genres = ITEMS[token]
        assert list(genre_tokens[genres]) == expected_genres
        if price is None:
            row = feat["item_id"] == iid
            assert feat.loc[row, "price"].item() == pytest.approx(np.mean(known))


def _benchmark_dataset(tmp_path):
    """SASRec data given as pre-split benchmark files with item_id_list."""
    from recbole.config import Config
    from recbole.data import create_dataset

    root = tmp_path / "seqbench"
    root.mkdir(exist_ok=True)
    header = "user_id:token\titem_id_list:token_seq\titem_id:token"
    rows = {
        "train": ["u1\ti1\ti2", "u1\ti1 i2\ti3", "u2\ti3\ti1", "u2\ti3 i1\ti4"],
        "valid": ["u1\ti1 i2 i3\ti4", "u2\ti3 i1 i4\ti2"],
        "test": ["u1\ti1 i2 i3 i4\ti5", "u2\ti3 i1 i4 i2\ti5"],
    }
    for part, lines in rows.items():
        (root / f"seqbench.{part}.inter").write_text("\n".join([header] + lines) + "\n")
    config = Config(
        model="SASRec",
        dataset="seqbench",
        config_dict={
            "data_path": str(tmp_path),
            "checkpoint_dir": str(tmp_path / "saved"),
            "benchmark_filename": ["train", "valid", "test"],
            "load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
            "alias_of_item_id": ["item_id_list"],
            "train_neg_sample_args": None,
            "loss_type": "CE",
            "state": "ERROR",
        },
    )
    lengths = [len(line.split("\t")[1].split()) for lines in rows.values() for line in lines]
    return create_dataset(config), lengths


def test_sequential_benchmark_presets_still_needed(tmp_path, monkeypatch):
    from recbole.data.dataset import SequentialDataset

    original = SequentialDataset._benchmark_presets._recbole_original
    monkeypatch.setattr(SequentialDataset, "_benchmark_presets", original)
    dataset, lengths = _benchmark_dataset(tmp_path)
    if list(dataset.inter_feat["item_length"]) == lengths:
        pytest.skip("SequentialDataset._benchmark_presets works on this pandas")


def test_sequential_benchmark_presets(tmp_path):
    dataset, lengths = _benchmark_dataset(tmp_path)
    assert list(dataset.inter_feat["item_length"]) == lengths


# --------------------------------------------------------------------------
# Fix 5: autograd anomaly detection switched on by recbole's SINE
ANOMALY_AFTER_IMPORT = """
import torch
import recbole.model.sequential_recommender
print("ANOMALY", torch.is_anomaly_enabled())
"""


def test_anomaly_detection_still_needed(tmp_path):
    proc = run_python(ANOMALY_AFTER_IMPORT, tmp_path, skip_fix="fix_anomaly_detection")
    assert proc.returncode == 0, proc.stderr[-3000:]
    if "ANOMALY True" not in proc.stdout:
        pytest.skip("importing RecBole's sequential models no longer enables anomaly detection")


def test_anomaly_detection(tmp_path):
    code = ANOMALY_AFTER_IMPORT + """
import importlib
from recbole.model.sequential_recommender import sine
torch.autograd.set_detect_anomaly(True)   # the user's choice is kept
importlib.reload(sine)
print("USER_ON", torch.is_anomaly_enabled())
torch.autograd.set_detect_anomaly(False)
importlib.reload(sine)
print("USER_OFF", torch.is_anomaly_enabled())
"""
    proc = run_python(code, tmp_path, import_package=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout.split()
    assert out[out.index("ANOMALY") + 1] == "False"
    assert out[out.index("USER_ON") + 1] == "True"
    assert out[out.index("USER_OFF") + 1] == "False"


# --------------------------------------------------------------------------
# RecBole's Collector: the item metrics' training-data entries are not tensors
def _collected(monkeypatch, original):
    """A Collector for ItemCoverage and AveragePopularity after data_collect, then get_data_struct."""
    from collections import Counter
    from types import SimpleNamespace

    from recbole.evaluator.collector import Collector

    if original:
        monkeypatch.setattr(Collector, "get_data_struct", Collector.get_data_struct._recbole_original)
    config = recbole_sigma.build_config("SASRec", "ml-100k", config_dict={"metrics": ["ItemCoverage", "AveragePopularity"]})
    collector = Collector(config)
    dataset = SimpleNamespace(num=lambda field: 7, item_counter=Counter({1: 3, 2: 1}))
    collector.data_collect(SimpleNamespace(dataset=dataset))
    collector.data_struct.set("rec.items", torch.tensor([[1, 2]]))
    return collector.get_data_struct()


def test_collector_data_struct_still_needed(monkeypatch):
    try:
        _collected(monkeypatch, original=True)
    except AttributeError as exc:
        assert "has no attribute 'cpu'" in str(exc)
    else:
        pytest.skip("RecBole's Collector.get_data_struct takes non-tensor entries")


def test_collector_data_struct(monkeypatch):
    from recbole.evaluator.metrics import AveragePopularity, ItemCoverage

    struct = _collected(monkeypatch, original=False)
    assert struct.get("data.num_items") == 7 and struct.get("data.count_items") == {1: 3, 2: 1}
    config = {"topk": [2], "metric_decimal_place": 4}
    assert ItemCoverage(config).calculate_metric(struct) == {"itemcoverage@2": round(2 / 7, 4)}
    assert AveragePopularity(config).calculate_metric(struct) == {"averagepopularity@2": 2.0}  # (3 + 1) / 2


# --------------------------------------------------------------------------
# Fix 5: RecBole's module-level ``from ray import tune``
NO_RAY = """
import sys
sys.modules["ray"] = None   # as if Ray were not installed: ``import ray`` raises ImportError
"""


def test_ray_import_still_needed(tmp_path):
    proc = run_python(NO_RAY + "import recbole.quick_start\n", tmp_path, skip_fix="fix_ray_import")
    expect_broken(proc, "ray", "import recbole.quick_start without Ray")
    assert "ImportError" in proc.stderr or "ModuleNotFoundError" in proc.stderr, proc.stderr[-3000:]


def test_ray_import_deferred_without_ray(tmp_path):
    code = NO_RAY + """
from recbole.quick_start import run_recbole, load_data_and_model
from recbole.quick_start import quick_start
print("NO_RAY_LOADED", sys.modules["ray"] is None)
try:
    quick_start.tune.report
except ImportError as e:
    print("ERROR", e)
"""
    proc = run_python(code, tmp_path, import_package=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NO_RAY_LOADED True" in proc.stdout
    error = next(line for line in proc.stdout.splitlines() if line.startswith("ERROR "))
    assert "pip install 'recbole-sigma[tune]'" in error


def test_ray_import_deferred_until_used(tmp_path):
    pytest.importorskip("ray.tune")
    code = """
import sys
import recbole.quick_start.quick_start as qs
print("LOADED_AT_IMPORT", "ray" in sys.modules)
import ray.tune
print("SAME", qs.tune.report is ray.tune.report)
"""
    proc = run_python(code, tmp_path, import_package=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LOADED_AT_IMPORT False" in proc.stdout and "SAME True" in proc.stdout


# --------------------------------------------------------------------------
# Fix 6: exhaustive search on hyperopt >= 0.2.7
EXHAUSTIVE = """
from recbole.trainer.hyper_tuning import HyperTuning

seen = []
def objective(config_dict, config_file_list):
    seen.append((config_dict["a"], config_dict["b"]))
    return {"model": "M", "best_valid_score": config_dict["a"] + config_dict["b"],
            "valid_score_bigger": True, "best_valid_result": {}, "test_result": {}}

tuner = HyperTuning(objective, params_dict={"choice": {"a": [1, 2, 3], "b": [10, 20]}}, algo="exhaustive")
tuner.run()
print("SEEN", sorted(seen))
"""


def test_hyperopt_exhaustive_still_needed(tmp_path):
    pytest.importorskip("hyperopt")
    proc = run_python(EXHAUSTIVE, tmp_path, skip_fix="fix_hyperopt_exhaustive")
    expect_broken(proc, "no attribute 'integers'", "RecBole's exhaustive search")


def test_hyperopt_exhaustive(tmp_path):
    pytest.importorskip("hyperopt")
    proc = run_python(EXHAUSTIVE, tmp_path, import_package=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = next(line for line in proc.stdout.splitlines() if line.startswith("SEEN "))
    assert seen == "SEEN [(1, 10), (1, 20), (2, 10), (2, 20), (3, 10), (3, 20)]"  # every point once


# --------------------------------------------------------------------------
def test_apply_is_idempotent():
    import recbole.trainer.trainer as trainer_module

    assert _recbole._applied  # by ``import recbole_sigma``
    proxy = trainer_module.torch
    _recbole.apply()
    for fix in _recbole.FIXES:
        fix()
        fix()
    assert sys.meta_path.count(hooks.HOOK_FINDER) == 1
    assert all(len(installed) == len(set(installed)) for installed in hooks.HOOKS.values())
    assert trainer_module.torch is proxy


def test_the_table_lists_every_fix():
    """_recbole's docstring is the one list of what is patched: every fix has its entry there."""
    table = _recbole.__doc__
    for fix in _recbole.FIXES:
        module = fix.__module__.rpartition(".")[2]
        assert f"{fix.__name__} ({module}.py)" in table
    assert f"the ``np`` global of {len(numpy_aliases.MODULES)} RecBole modules" in " ".join(table.split())
