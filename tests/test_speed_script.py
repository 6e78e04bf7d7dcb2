"""benchmarks/speed.py's ``--models MODEL:key=value``: a switch timed against the default in one table.
(Its timing runs are the docs' commands, in tests/test_docs_commands.py.)"""
import argparse
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "speed.py"


@pytest.fixture
def speed(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # the script imports its folder's harness, as when run
    import speed

    return speed


def test_a_spec_names_a_model_and_its_keys_with_command_line_values(speed):
    assert speed.model_spec("SIGMA") == ("SIGMA", {})
    assert speed.model_spec("SIGMA:gru_cell=torch,dropout_prob=0.3,flip_remain=4") == (
        "SIGMA", {"gru_cell": "torch", "dropout_prob": 0.3, "flip_remain": 4})


@pytest.mark.parametrize("spec", ["SIGMA:", "SIGMA:gru_cell", "SIGMA:=torch", ":gru_cell=torch",
                                  "SIGMA:gru_cell=torch,"])
def test_a_malformed_spec_is_refused(speed, spec):
    with pytest.raises(argparse.ArgumentTypeError, match="MODEL:key=value"):
        speed.model_spec(spec)


def test_the_keys_reach_the_config_over_the_defaults(speed):
    args = argparse.Namespace(max_len=50, batch=8, eval_batch=8, dataset="ml-100k", data_path=None)
    default = speed.model_config(args, "SIGMA")
    other = {"paper": "torch", "torch": "paper"}[default["gru_cell"]]
    switched = speed.model_config(args, f"SIGMA:gru_cell={other},dropout_prob=0.123")
    assert (switched["gru_cell"], switched["dropout_prob"]) == (other, 0.123)
    assert default["dropout_prob"] != 0.123
    assert speed.unknown_keys(args, "SIGMA:gru_cell=torch") == []
    assert speed.unknown_keys(args, "SIGMA:gru_cel=torch,flip_remian=2") == ["flip_remian", "gru_cel"]


@pytest.mark.parametrize("spec, says", [("SIGMA:gru_cel=torch", "SIGMA has no config key gru_cel"),
                                        ("SIGMA:gru_cell", "write MODEL or MODEL:key=value")])
def test_the_script_refuses_a_bad_spec_in_one_line_before_timing_anything(spec, says):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--synthetic", "--models", "SIGMA", spec],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode != 0
    assert says in proc.stderr.splitlines()[-1]
    assert "| model |" not in proc.stdout and "#   SIGMA" not in proc.stdout
