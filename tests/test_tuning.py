"""Tuning through the same entry point: hyperopt (RecBole's HyperTuning) and Ray Tune, on CPU.

The searches train ml-100k for one epoch with tiny settings, cut to the users with 20-29
interactions (the smallest group) so that each trial trains in seconds. One Ray runtime is
started for the module (``ray start --head --block``) and stopped by its process group.
"""
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import recbole_sigma
from recbole_sigma import ray_cluster, tuning
from recbole_sigma.errors import ConfigError
from recbole_sigma.cli import main, parse_args
from tests import conftest

pytest.importorskip("hyperopt")
pytest.importorskip("ray.tune")

ROOT = Path(__file__).resolve().parents[1]
TINY = {**conftest.TINY, "user_inter_num_interval": "[20,30)"}  # a few hundred users: fast trials
SASREC = conftest.TINY_SASREC


def cli(settings):
    return [f"--{k}={v}" for k, v in settings.items()]


@pytest.fixture
def two_rates(tmp_path):
    path = tmp_path / "two.test"
    path.write_text("learning_rate choice [0.001,0.003]\n")
    return path


def check_search_output(out, output_file, model, tuned_key="learning_rate"):
    """The best parameters and their metrics are printed, with a command that re-runs them."""
    assert "2 trial(s)" in out
    best = next(line for line in out.splitlines() if line.startswith("best params: "))
    assert tuned_key in best
    test_line = next(line for line in out.splitlines() if line.startswith("test result: "))
    assert "hit@10 : " in test_line and "ndcg@10 : " in test_line
    rerun = next(line for line in out.splitlines() if line.startswith("re-run: "))[len("re-run: "):]
    args, config_dict = parse_args(shlex.split(rerun)[2:])
    assert args.model == model and args.params_file is None and tuned_key in config_dict
    text = Path(output_file).read_text()
    assert text.count(f"{tuned_key}:") >= 3  # two trials and the best
    assert "Best parameters: " in text and f"Re-run: {rerun}" in text
    return config_dict


# --------------------------------------------------------------------------------------------
# The search space
# --------------------------------------------------------------------------------------------
def test_hyper_test_parses_with_recboles_parser_and_names_sigma_keys():
    from recbole.trainer.hyper_tuning import HyperTuning

    keys = {"learning_rate", "dropout_prob", "flip_remain", "d_state", "num_layers"}
    assert set(HyperTuning._build_space_from_file(str(ROOT / "hyper.test"))) == keys
    params = {p.name: p for p in tuning.read_params_file(ROOT / "hyper.test")}
    assert set(params) == keys
    sigma_keys = (ROOT / "properties" / "model" / "SIGMA.yaml").read_text()
    assert all(f"\n{key}:" in sigma_keys for key in keys)
    # RecBole's loguniform takes exponents: the learning rate stays between 1e-4 and 1e-2.
    low, high = params["learning_rate"].args
    assert params["learning_rate"].kind == "loguniform" and 1e-4 <= math.exp(low) < math.exp(high) <= 1e-2
    assert all(isinstance(v, int) for k in ("flip_remain", "d_state", "num_layers") for v in params[k].args)
    assert tuning.choose_algo(list(params.values())) == "random"


def test_params_file_errors_are_one_line(tmp_path):
    cases = {
        "lr lognormal 1,2\n": "unknown type 'lognormal'",
        "lr choice 0.1\n": "choice takes a non-empty list",
        "lr uniform 2,1\n": "uniform takes low,high with low < high",
        "k quniform 1,4\n": "quniform takes low,high,q",
        "lr choice [1]\nlr choice [2]\n": "'lr' is already defined",
        "\nlr 0.1\n": "defines no parameter",  # RecBole skips lines of fewer than 3 fields
        "# lr choice [1]\n": "unknown type 'lr'.*no comments",
    }
    for content, message in cases.items():
        path = tmp_path / "bad.test"
        path.write_text(content)
        with pytest.raises(ConfigError, match=message) as info:
            tuning.read_params_file(path)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="cannot be read"):
        tuning.read_params_file(tmp_path / "absent.test")
    path.write_text("lr uniform 0.1,0.2\nk choice [1,2]\n")
    with pytest.raises(ConfigError, match=r"every parameter must be a choice; not: lr \(uniform\)"):
        tuning.choose_algo(tuning.read_params_file(path), "exhaustive")


def test_ray_space_and_casts_follow_recboles_conventions(tmp_path):
    path = tmp_path / "space.test"
    path.write_text("lr loguniform -9,-4\nd_state quniform 8,64,8\np quniform 0,1,0.25\nk choice [1,2,3]\n")
    params = tuning.read_params_file(path)
    assert tuning.grid_size([p for p in params if p.kind == "choice"]) == 3
    space = tuning.ray_search_space(params, "random")
    assert space["lr"].lower == pytest.approx(math.exp(-9)) and space["lr"].upper == pytest.approx(math.exp(-4))
    # quniform as hyperopt defines it, round(uniform(low, high) / q) * q, under Ray too: every step, the top one
    # included (Ray's own qrandint leaves it out), ints where integral
    drawn = {tuning.cast_params({"d_state": space["d_state"].sample()}, params)["d_state"] for _ in range(300)}
    assert drawn == set(range(8, 65, 8)) and all(isinstance(v, int) for v in drawn)
    assert tuning.cast_params({"d_state": 16.0, "p": 0.3, "k": 2}, params) == {"d_state": 16, "p": 0.25, "k": 2}
    assert tuning.cast_params({"p": 0.9}, params) == {"p": 1.0}
    odd = tmp_path / "odd.test"  # bounds that are not multiples of q: hyperopt takes them, Ray's quniform did not
    odd.write_text("dropout_prob quniform 0.05,0.5,0.1\n")
    rates = tuning.ray_search_space(tuning.read_params_file(odd), "random")["dropout_prob"]
    assert {tuning.cast_params({"dropout_prob": rates.sample()}, tuning.read_params_file(odd))["dropout_prob"]
            for _ in range(300)} == {0.1, 0.2, 0.3, 0.4, 0.5}
    assert tuning.ray_search_space(params[3:], "exhaustive")["k"] == {"grid_search": [1, 2, 3]}


def test_tuned_key_given_as_fixed_too_is_an_error(two_rates, capsys):
    assert main(["--model=SIGMA", f"--params_file={two_rates}", "--learning_rate=0.01"]) == 2
    assert "learning_rate is both fixed" in capsys.readouterr().err


def test_asha_lets_the_trial_that_validates_most_reach_its_final_report(tmp_path):
    config = {"epochs": 300, "eval_step": 1, "stopping_step": 10}
    assert tuning._asha_rungs(config) == (301, 10)
    path = tmp_path / "steps.test"
    path.write_text("epochs choice [100,400]\neval_step choice [5,2]\n")
    assert tuning._asha_rungs(config, tuning.read_params_file(path)) == (201, 10)  # 400 // 2 validations, then the test
    path.write_text("epochs quniform 10,500,10\n")
    assert tuning._asha_rungs({**config, "eval_step": 5}, tuning.read_params_file(path))[0] == 101


def fake_trials(monkeypatch, fail_at=None):
    """tuning.train_trial replaced by an instant one, every trial scoring the same (so no trial improves
    on the first); the call numbered ``fail_at`` (from 0) raises KeyboardInterrupt. Returns the config
    dicts it was called with."""
    calls = []

    def train_trial(model, dataset, config_file_list=None, config_dict=None, on_validation=None):
        if len(calls) == fail_at:
            raise KeyboardInterrupt
        calls.append(config_dict)
        metrics = {"hit@10": 0.1, "ndcg@10": 0.05, "mrr@10": 0.04}
        return {"model": model, "best_valid_score": 0.05, "valid_score_bigger": True, "best_valid_result": metrics,
                "test_result": metrics, "checkpoint": None}

    monkeypatch.setattr(tuning, "train_trial", train_trial)
    return calls


@pytest.fixture
def twelve_rates(tmp_path):
    path = tmp_path / "twelve.test"
    path.write_text(f"learning_rate choice [{','.join(str(i / 1000) for i in range(1, 13))}]\n")
    return path


@pytest.mark.parametrize("algo, n", [("exhaustive", None), ("random", 14)])
def test_a_hyperopt_search_runs_every_trial_asked_for(tmp_path, twelve_rates, monkeypatch, algo, n):
    """RecBole's HyperTuning stops after 10 trials in a row without a better score: not here."""
    monkeypatch.chdir(tmp_path)
    calls = fake_trials(monkeypatch)
    result = tuning.tune("SIGMA", "ml-100k", twelve_rates, algo=algo, n_trials=n, output_file="out/x.result")
    assert len(calls) == len(result.trials) == (n or 12)
    if algo == "exhaustive":
        assert sorted(c["learning_rate"] for c in calls) == [i / 1000 for i in range(1, 13)]
    header = (tmp_path / "out" / "x.result").read_text().splitlines()[0]  # its folder made, not missing at the end
    assert f", {n or 12} trial(s), " in header


def test_a_hyperopt_grid_of_list_valued_choices_runs_each_point(tmp_path, monkeypatch):
    """hyperopt reads a list option as an expression (RecBole's grid count then failed): each value is a literal."""
    monkeypatch.chdir(tmp_path)
    calls = fake_trials(monkeypatch)
    params = tmp_path / "gates.test"
    params.write_text("gate_activations choice [['silu','sigmoid'],['sigmoid','silu']]\nlearning_rate choice [0.001,0.002]\n")
    result = tuning.tune("SIGMA", "ml-100k", params, n_trials=None, output_file="x.result")
    assert sorted((c["gate_activations"], c["learning_rate"]) for c in calls) == [
        (["sigmoid", "silu"], 0.001), (["sigmoid", "silu"], 0.002), (["silu", "sigmoid"], 0.001),
        (["silu", "sigmoid"], 0.002)]
    assert len(result.trials) == 4


def test_a_hyperopt_search_stopped_midway_keeps_its_finished_trials_in_the_output_file(tmp_path, twelve_rates,
                                                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_trials(monkeypatch, fail_at=3)
    with pytest.raises(KeyboardInterrupt):
        tuning.tune("SIGMA", "ml-100k", twelve_rates, output_file="x.result")
    text = (tmp_path / "x.result").read_text()
    assert "3 of 12 trial(s) so far (the search did not end)" in text.splitlines()[0]
    assert text.count("Valid result:") == 3 and "Best parameters: " in text and "Re-run: " in text
    assert not (tmp_path / "x.result.tmp").exists()


@pytest.mark.parametrize("flag, message", [
    ("--max_evals=0", "the number of trials must be >= 1, got 0"),
    ("--metrics=['Foo']", "metrics"),
    ("--epochs=0", "epochs=0 is invalid"),
])
def test_tuning_refuses_bad_fixed_settings_in_one_line_before_any_trial(two_rates, monkeypatch, capsys, flag,
                                                                       message):
    calls = fake_trials(monkeypatch)
    assert main(["--model=SIGMA", "--dataset=ml-100k", f"--params_file={two_rates}", flag]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert calls == []


def test_a_fixed_setting_that_clashes_only_with_a_tuned_keys_default_is_left_to_the_trials(tmp_path, monkeypatch):
    """eval_step 400 fixed with epochs tuned above it: the default epochs (300) must not refuse the search."""
    monkeypatch.chdir(tmp_path)
    params = tmp_path / "epochs.test"
    params.write_text("epochs choice [500,600]\n")
    calls = fake_trials(monkeypatch)
    result = tuning.tune("SIGMA", "ml-100k", params, config_dict={"eval_step": 400})
    assert len(result.trials) == 2 and sorted(c["epochs"] for c in calls) == [500, 600]


@pytest.mark.parametrize("line, message", [
    ("dropout_prob choice [0.2,1.5]", r"^SIGMA: dropout_prob=1.5 is invalid; .* \(params file '.*bad.test' at dropout_prob:1.5\)$"),
    ("dropout_prob uniform 0.1,1.2", r"^SIGMA: dropout_prob=1.2 is invalid; .* at dropout_prob:1.2\)$"),
    ("num_layers quniform 0,2,1", r"^SIGMA: num_layers=0 is invalid; .* at dropout_prob:0.2, num_layers:0\)$"),
])
def test_a_params_file_value_no_trial_can_run_is_refused_before_any_trial(tmp_path, monkeypatch, line, message):
    """Every value of a choice and both ends of a range are checked; the error names the value tried."""
    monkeypatch.chdir(tmp_path)
    params = tmp_path / "bad.test"
    params.write_text("dropout_prob choice [0.2,0.3]\n" * ("num_layers" in line) + line + "\n")
    calls = fake_trials(monkeypatch)
    with pytest.raises(ConfigError, match=message):
        tuning.tune("SIGMA", "ml-100k", params)
    assert calls == []


def test_fixed_settings_are_checked_in_full_beside_a_tuned_key_their_default_would_fail(tmp_path, monkeypatch):
    """eval_step 400 fails with the default epochs (300), not with the tuned ones: the checks go on past it
    and find the bad metric."""
    monkeypatch.chdir(tmp_path)
    params = tmp_path / "epochs.test"
    params.write_text("epochs choice [500,600]\n")
    calls = fake_trials(monkeypatch)
    with pytest.raises(ConfigError, match=r"^metrics: no metric named 'Foo'"):
        tuning.tune("SIGMA", "ml-100k", params, config_dict={"eval_step": 400, "metrics": ["Foo"]})
    assert calls == []


# --------------------------------------------------------------------------------------------
# Resources and per-epoch reporting
# --------------------------------------------------------------------------------------------
def test_trial_resources_ask_for_no_gpu_without_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    cpus, gpus = ray_cluster.machine_resources()
    assert gpus == 0 and cpus >= 1
    assert ray_cluster.trial_resources(n_trials=2)["gpu"] == 0
    assert ray_cluster.trial_resources(n_trials=2, num_cpus=2) == {"cpu": 2, "gpu": 0}
    assert ray_cluster.trial_resources(n_trials=10, num_cpus=16) == {"cpu": 4, "gpu": 0}


def test_trial_resources_ask_for_a_gpu_fraction_with_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert ray_cluster.machine_resources()[1] == 1
    assert ray_cluster.trial_resources(n_trials=10, num_cpus=16) == {"cpu": 4, "gpu": 0.25}
    assert ray_cluster.trial_resources(n_trials=2, num_cpus=16) == {"cpu": 8, "gpu": 0.5}
    assert ray_cluster.trial_resources(n_trials=3, num_cpus=16) == {"cpu": 5, "gpu": 0.3333}
    assert ray_cluster.trial_resources(n_trials=1, num_cpus=16)["gpu"] == 1.0
    assert ray_cluster.trial_resources(n_trials=10, num_cpus=8, num_gpus=4) == {"cpu": 4, "gpu": 1.0}


def test_a_trial_sees_no_argv_and_the_caller_has_it_back(monkeypatch):
    """RecBole's Config reads --key=value from sys.argv, over every other setting: a trial's config comes
    from its files and dict alone (a caller's --learning_rate is not the trial's), and the caller has
    sys.argv back afterwards."""
    from recbole_sigma import tuning

    seen = []
    monkeypatch.setattr("recbole_sigma.pipeline.run", lambda *a, **k: seen.append(sys.argv[:]) or {})
    argv = [sys.argv[0], "--learning_rate=0.5"]
    monkeypatch.setattr(sys, "argv", argv[:])
    assert tuning.train_trial("SIGMA", "ml-100k") == {"model": "SIGMA"}
    assert seen == [argv[:1]] and sys.argv == argv


def test_plain_training_never_imports_ray_or_hyperopt():
    code = (
        "import sys, recbole_sigma\n"
        "from recbole_sigma.cli import parse_args\nfrom recbole_sigma.config import build_config\n"
        "from recbole.utils import get_trainer\n"
        "args, d = parse_args(['--model=SIGMA', '--epochs=1'])\n"
        "c = build_config(args.model, args.dataset, None, d)\n"
        "get_trainer(c['MODEL_TYPE'], c['model'])\n"
        "print(sorted(m for m in ('ray', 'hyperopt', 'recbole_sigma.tuning') if m in sys.modules))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


# --------------------------------------------------------------------------------------------
# Searches
# --------------------------------------------------------------------------------------------
def test_hyperopt_exhaustive_search_of_sigma(tmp_path, two_rates, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    output = tmp_path / "hyperopt.result"
    argv = ["--model=SIGMA", "--dataset=ml-100k", f"--params_file={two_rates}", "--tool=hyperopt",
            "--algo=exhaustive", f"--output_file={output}"] + cli(TINY)
    assert main(argv) == 0
    out = capsys.readouterr().out
    fixed = check_search_output(out, output, "SIGMA")
    assert fixed["epochs"] == 1 and fixed["learning_rate"] in (0.001, 0.003)
    # one checkpoint folder per trial: run() names its checkpoints by model and dataset only
    assert len(list((tmp_path / "saved").glob("SIGMA-ml-100k-*/trial_*/SIGMA-ml-100k-best.pth"))) == 2
    # the printed command trains the best parameters again, to the same test metrics
    rerun = next(line for line in out.splitlines() if line.startswith("re-run: "))[len("re-run: "):]
    assert main(shlex.split(rerun)[2:]) == 0

    def metrics(line):
        words = line.replace(":", " ").split()
        return {w: float(v) for w, v in zip(words, words[1:]) if "@" in w}

    tuned = next(line for line in out.splitlines() if line.startswith("test result: "))
    again = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("test result: "))
    assert metrics(again) == metrics(tuned) and len(metrics(tuned)) == 3


def test_a_hyperopt_trial_that_fails_is_an_error_trial_and_the_search_goes_on(tmp_path, monkeypatch, capsys):
    """A diverging rate (a NaN loss stops its run) costs that trial, not the trials around it; with no trial
    left the command still writes its output file and says none completed. The driver's CUDA_VISIBLE_DEVICES
    stays as it was (RecBole's Config sets it to gpu_id)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    params, output = tmp_path / "rates.test", tmp_path / "hyperopt.result"
    params.write_text("learning_rate choice [1e30,0.001]\n")
    argv = ["--model=Mamba4Rec", "--dataset=ml-100k", f"--params_file={params}", "--tool=hyperopt",
            "--algo=exhaustive", f"--output_file={output}"] + cli(TINY)
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "2 trial(s), 1 completed" in captured.out and "best params: {'learning_rate': 0.001}" in captured.out
    assert "error with learning_rate:1e+30: NonFiniteLossError: Mamba4Rec on ml-100k: training loss" in captured.err
    assert "Error: NonFiniteLossError" in output.read_text()
    params.write_text("learning_rate choice [1e30]\n")
    assert main(argv) == 1
    assert "1 trial(s), 0 completed" in capsys.readouterr().out and "NonFiniteLossError" in output.read_text()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_ray_search_of_sigma_on_a_local_ray(tmp_path, two_rates, monkeypatch, capsys):
    import ray

    monkeypatch.chdir(tmp_path)
    output = tmp_path / "ray.result"
    argv = ["--model=SIGMA", "--dataset=ml-100k", f"--params_file={two_rates}", "--tool=ray",
            f"--output_file={output}"] + cli(TINY)
    assert main(argv) == 0
    out = capsys.readouterr().out
    check_search_output(out, output, "SIGMA")
    assert "each asking for" in out and "and 0 GPU" in out
    assert not ray.is_initialized()  # the local Ray it started is gone
    # Each trial reported its validation epoch (then its test result): ASHA saw every epoch. The first trial to
    # report that epoch goes on; the other, if it scores below it there, ASHA stops before its test report
    # (which of the two that is depends on the scores).
    progress = list((tmp_path / "ray_results").glob("SIGMA-ml-100k-*/*/progress.csv"))
    assert len(progress) == 2
    trials = []  # (rows, validation score)
    for path in progress:
        rows = path.read_text().splitlines()
        header = rows[0].split(",")
        assert header.count("valid_score") == 1
        validation = dict(zip(header, rows[1].split(",")))
        assert validation["epoch"] == "0" and float(validation["valid_score"]) > 0
        trials.append((len(rows), float(validation["valid_score"])))
        assert len(list(path.parent.glob("log/SIGMA/*.log"))) == 1  # the trial's RecBole log beside it
    (rows_a, score_a), (rows_b, score_b) = sorted(trials)
    assert rows_b == 3  # header, the epoch's validation, the final test report
    assert rows_a == 3 or (rows_a == 2 and score_a < score_b)  # stopped at its validation, behind the other
    assert len(list((tmp_path / "saved").glob("SIGMA-ml-100k-*/*/SIGMA-ml-100k-best.pth"))) >= 1


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head on 127.0.0.1, as on a cluster; its address. ``ray start --block`` keeps the head's
    processes in its own process group; stopping that group stops exactly this Ray (``ray stop``
    would stop every Ray of this user on the machine)."""
    port = conftest.free_port("127.0.0.1")
    temp_dir = tempfile.mkdtemp(prefix="rsray")  # short: Ray's socket paths live under it
    log = open(os.path.join(temp_dir, "start.log"), "w+")
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}",
               "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false", "--node-ip-address=127.0.0.1",
               f"--temp-dir={temp_dir}", "--disable-usage-stats"]
    head = subprocess.Popen(command, env=ray_cluster.ray_env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.time() + 180
        while "Ray runtime started" not in Path(log.name).read_text():
            assert head.poll() is None and time.time() < deadline, Path(log.name).read_text()[-3000:]
            time.sleep(1)
        yield f"127.0.0.1:{port}"
    finally:
        try:
            os.killpg(head.pid, signal.SIGTERM)
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            pass
        for _ in range(30):  # the group's other processes (raylet, gcs, workers) follow
            try:
                os.killpg(head.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(1)
        else:
            os.killpg(head.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_search_of_a_recbole_model_on_a_running_cluster(ray_head, tmp_path, monkeypatch, capsys):
    import ray

    monkeypatch.chdir(tmp_path)
    params = tmp_path / "dropout.test"
    params.write_text("hidden_dropout_prob choice [0.0,0.9]\n")  # a key SASRec reads (not dropout_prob)
    output = tmp_path / "cluster.result"
    argv = ["--model=SASRec", "--dataset=ml-100k", f"--params_file={params}", "--tool=ray",
            f"--ray_address={ray_head}", f"--output_file={output}"] + cli(TINY) + cli(SASREC)
    assert main(argv) == 0
    out = capsys.readouterr().out
    fixed = check_search_output(out, output, "SASRec", tuned_key="hidden_dropout_prob")
    lines = output.read_text().splitlines()
    valid = [lines[i + 1] for i, line in enumerate(lines) if line in ("Valid result:", "Last valid result:")]
    assert len(valid) == 2 and valid[0] != valid[1]  # each trial trained with its own sampled value (ASHA may
    # have stopped one: its last valid result then)
    assert fixed["n_heads"] == 1 and "each asking for 2 CPU(s) and 0 GPU" in out
    assert not ray.is_initialized()  # disconnected; the cluster itself keeps running
    from recbole_sigma.model.sasrec import SASRec

    assert recbole_sigma.resolve_model("SASRec") is SASRec  # ours (length-bucketed), not RecBole's of that name
