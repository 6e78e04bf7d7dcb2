"""benchmarks/rename_records.py: finished jobs renamed when a default moves onto a variant's settings."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rename(*argv):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "rename_records.py"), *map(str, argv)],
                          capture_output=True, text=True, timeout=120)


def make_job(folder, name, variant, ndcg, **extra):
    job_dir = folder / name
    (job_dir / "checkpoints").mkdir(parents=True)
    (job_dir / "checkpoints" / "SIGMA-amazon-beauty-best.pth").write_bytes(b"weights")
    common = {"name": name, "model": "SIGMA", "variant": variant, "seed": 2020, **extra}
    (job_dir / "job.json").write_text(json.dumps({**common, "config": {"gru_cell": "x"}}, indent=2))
    (job_dir / "result.json").write_text(json.dumps({**common, "test": {"ndcg@10": ndcg}}, indent=2))


def read(job_dir):
    return [json.loads((job_dir / f).read_text()) for f in ("job.json", "result.json")]


def test_two_names_swap_in_the_records_and_the_runs_folder_metrics_and_settings_as_they_ran(tmp_path):
    records, runs = tmp_path / "records", tmp_path / "runs"
    make_job(records, "SIGMA-s2020", "default", 0.0345)
    make_job(records, "SIGMA-gru_cell_paper-s2020", "gru_cell_paper", 0.0362)
    make_job(runs, "SIGMA-s2020", "default", 0.0345)  # the runs folder lacks the other: it is skipped there
    proc = rename(records, runs, "--model", "SIGMA", "--seeds", 2020, "--why", "the default moved",
                  "--rename", "default=gru_cell_torch", "gru_cell_paper=default")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in records.iterdir()) == ["SIGMA-gru_cell_torch-s2020", "SIGMA-s2020"]
    assert sorted(p.name for p in runs.iterdir()) == ["SIGMA-gru_cell_torch-s2020"]
    assert (runs / "SIGMA-gru_cell_torch-s2020" / "checkpoints" / "SIGMA-amazon-beauty-best.pth").exists()
    for folder in (records, runs):
        job, result = read(folder / "SIGMA-gru_cell_torch-s2020")
        assert job["name"] == result["name"] == "SIGMA-gru_cell_torch-s2020"
        assert job["variant"] == result["variant"] == "gru_cell_torch"
        assert job["renamed_from"] == result["renamed_from"] == {"name": "SIGMA-s2020", "variant": "default",
                                                                 "why": "the default moved"}
        assert result["test"] == {"ndcg@10": 0.0345} and job["config"] == {"gru_cell": "x"}
    job, result = read(records / "SIGMA-s2020")
    assert (job["variant"], result["test"]["ndcg@10"]) == ("default", 0.0362)
    assert result["renamed_from"]["name"] == "SIGMA-gru_cell_paper-s2020"
    # written as the harness writes them (indent 2, no newline at the end)
    text = (records / "SIGMA-s2020" / "result.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2)


def test_a_record_renamed_before_keeps_the_name_it_ran_as_and_both_reasons(tmp_path):
    before = {"name": "SIGMA-dropout04-s2020", "variant": "dropout04", "why": "first move"}  # no full stop
    make_job(tmp_path, "SIGMA-s2020", "default", 0.04, renamed_from=before)
    proc = rename(tmp_path, "--model", "SIGMA", "--seeds", 2020, "--rename", "default=old", "--why", "second move.")
    assert proc.returncode == 0, proc.stderr
    for record in read(tmp_path / "SIGMA-old-s2020"):
        assert record["renamed_from"] == {**before, "why": "first move. second move."}


def test_nothing_moves_when_one_new_name_is_taken_or_a_record_is_missing(tmp_path):
    make_job(tmp_path, "SIGMA-s2020", "default", 0.04)
    make_job(tmp_path, "SIGMA-old-s2020", "old", 0.03)
    proc = rename(tmp_path, "--model", "SIGMA", "--seeds", 2020, "--rename", "default=old", "--why", "w")
    assert proc.returncode != 0 and "SIGMA-old-s2020 exists" in proc.stderr
    proc = rename(tmp_path, "--model", "SIGMA", "--seeds", 2020, 2021, "--rename", "old=older", "--why", "w")
    assert proc.returncode != 0 and "SIGMA-old-s2021 does not exist" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SIGMA-old-s2020", "SIGMA-s2020"]  # the 2020 one too
    assert read(tmp_path / "SIGMA-s2020")[0]["variant"] == "default"
    proc = rename(tmp_path, "--model", "SIGMA", "--seeds", 2020, "--rename", "default", "--why", "w")
    assert proc.returncode == 2 and "--rename takes OLD=NEW" in proc.stderr
