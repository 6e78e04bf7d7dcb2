"""python -m recbole_sigma.gpu_check on a machine without CUDA: CPU against CPU at a small size."""
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from recbole_sigma import gpu_check

ROOT = Path(__file__).resolve().parents[1]


def test_quick_check_writes_both_reports(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "recbole_sigma.gpu_check", "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0].startswith("gpu_check: no CUDA device")
    report = json.loads((tmp_path / "gpu_report.json").read_text())
    assert report["device"] == "cpu" and report["tolerance"] == gpu_check.TOLERANCE
    assert {"torch", "mamba-ssm", "causal-conv1d", "kernels"} <= set(report["environment"])
    labels = [label for label, _, _ in gpu_check.mamba_variants()]
    assert [r["model"] for r in report["comparisons"]] == labels and set(report["backends"]) == set(labels)
    for row in report["comparisons"]:
        assert row["pass"] and row["strict_load"] == "ok" and row["grads_compared"] > 10, row
    timed = {(r["model"], r["L"]) for r in report["timings"] if "error" not in r}
    assert timed == {(label, 12) for label, _, _ in gpu_check.timed_models()}
    markdown = (tmp_path / "gpu_report.md").read_text()
    assert markdown.splitlines()[2] == proc.stdout.splitlines()[0]
    for text in ("| SASRec padded | 12 |", "| SIGMA bucketed | 12 |", "Tolerance: max |difference| <= 0.001",
                 "| EchoMamba4Rec | ", "Paper Table 3"):
        assert text in markdown


def test_a_wrongly_called_kernel_fails_the_comparison(monkeypatch):
    """The comparison can fail: a stand-in kernel that drops the dt bias is caught (mamba-ssm's own
    init, since mamba_init public_code zeroes that bias)."""
    reference = gpu_check.reference_inner_fn
    monkeypatch.setattr(gpu_check, "reference_inner_fn", lambda *a, **k: reference(*a, **dict(k, delta_bias=None)))
    size = gpu_check.SIZES[("cpu", True)]
    row = gpu_check.compare_paths("Mamba4Rec", "Mamba4Rec", {"mamba_init": "native"}, torch.device("cpu"), size)
    assert not row["pass"] and row["forward_rel_err"] > gpu_check.TOLERANCE


def test_the_sigma_variant_row_appears_only_where_the_key_exists(monkeypatch):
    """SIGMA's YAML default (the paper's), the public code's and the recommended preset each get a row; a
    checkout whose YAML lacks the key gets one plain SIGMA row, and one whose default is public_code no second
    public_code row."""
    real = gpu_check.yaml_defaults
    assert gpu_check.mamba_variants() == [
        ("Mamba4Rec", "Mamba4Rec", {}), ("SIGMA (sigma_variant paper)", "SIGMA", {}),
        ("SIGMA (sigma_variant public_code)", "SIGMA", {"sigma_variant": "public_code"}),
        ("SIGMA (sigma_variant notebook)", "SIGMA", {"sigma_variant": "notebook"}),
        ("EchoMamba4Rec", "EchoMamba4Rec", {})]
    without = {key: value for key, value in real("SIGMA").items() if key != "sigma_variant"}
    monkeypatch.setattr(gpu_check, "yaml_defaults", lambda name: without if name == "SIGMA" else real(name))
    assert [row for row in gpu_check.mamba_variants() if row[1] == "SIGMA"] == [("SIGMA", "SIGMA", {})]
    monkeypatch.setattr(gpu_check, "yaml_defaults", lambda name: dict(real(name), sigma_variant="public_code"))
    assert [row for row in gpu_check.mamba_variants() if row[1] == "SIGMA"] == [
        ("SIGMA (sigma_variant public_code)", "SIGMA", {}),
        ("SIGMA (sigma_variant notebook)", "SIGMA", {"sigma_variant": "notebook"})]
