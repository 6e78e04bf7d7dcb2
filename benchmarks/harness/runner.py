"""Running the jobs: one child process at a time under a lock on its folder, SIGTERM passed on to it,
a heartbeat while it runs and one record per attempt (``attempts.jsonl``)."""
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from .jobs import METRICS, differing_keys, has_checkpoint, job_state, yaml_defaults
from .machine import iso, now

# The child: this checkout's command line with ``--child <job folder>`` (benchmarks/harness/child.py).
REPRODUCE_SCRIPT = Path(__file__).resolve().parents[1] / "reproduce.py"
# A running attempt rewrites HEARTBEAT_FILE every HEARTBEAT_S seconds. When the whole process tree
# dies (a session ends, the machine stops) nothing else records the attempt: the next run finds the
# file and records that attempt up to its last heartbeat, so wall times lose at most HEARTBEAT_S.
ATTEMPT_MARK = "attempt:"
HEARTBEAT_FILE = "attempt.json"
HEARTBEAT_S = 60

_CHILD = {"proc": None, "stop": None}


@contextlib.contextmanager
def job_lock(job_dir):
    """An exclusive lock on the job's folder while its child runs; yields False if another harness holds it."""
    import fcntl

    job_dir.mkdir(parents=True, exist_ok=True)
    with open(job_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _on_sigterm(signum, frame):
    """Pass SIGTERM to the running child and stop after it exits (the job resumes next time)."""
    _CHILD["stop"] = signum
    proc = _CHILD["proc"]
    if proc is None:
        sys.exit(128 + signum)
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signum)  # not proc.terminate(): the main thread's proc.wait() holds its lock


def child_command(job_dir):
    return [sys.executable, str(REPRODUCE_SCRIPT), "--child", str(job_dir)]


def run_job(job, command):
    """Write job.json, run the child (reproduce.py --child <dir>) with its output in train.log; its exit code."""
    job_dir = job["dir"]
    spec = {
        "name": job["name"], "model": job["model"], "variant": job["variant"], "seed": job["seed"],
        "dataset": command["dataset"], "config": job["config"], "config_files": command["config_files"],
        "yaml_defaults": job["yaml_defaults"], "command": command["line"],
    }
    (job_dir / "job.json").write_text(json.dumps(spec, indent=2))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    record_lost_attempt(job_dir)
    started = time.time()
    with open(job_dir / "train.log", "a") as log:
        log.write(f"\n===== {now()} {ATTEMPT_MARK} {' '.join(map(shlex.quote, child_command(job_dir)))}\n")
        log.flush()
        proc = subprocess.Popen(child_command(job_dir), cwd=job_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
        _CHILD["proc"] = proc
        try:
            rc = wait_with_heartbeat(proc, job_dir / HEARTBEAT_FILE, started)
        finally:
            _CHILD["proc"] = None
    record_attempt(job_dir, started, time.time(), rc)
    (job_dir / HEARTBEAT_FILE).unlink(missing_ok=True)
    return rc


def wait_with_heartbeat(proc, heartbeat, started, every=None):
    """proc.wait(), rewriting ``heartbeat`` with {started, alive} meanwhile; the exit code."""
    while True:
        fresh = heartbeat.with_suffix(".tmp")  # whole or not at all: a kill mid-write must not leave half
        fresh.write_text(json.dumps({"started": started, "alive": time.time()}))
        os.replace(fresh, heartbeat)
        try:
            return proc.wait(timeout=every or HEARTBEAT_S)
        except subprocess.TimeoutExpired:
            pass


def record_attempt(job_dir, started, finished, rc):
    with open(job_dir / "attempts.jsonl", "a") as f:
        attempt = {"started": iso(started), "finished": iso(finished), "wall_s": finished - started, "rc": rc}
        f.write(json.dumps(attempt) + "\n")


def record_lost_attempt(job_dir):
    """An attempt killed with this process left its heartbeat: record it up to its last sign of life."""
    heartbeat = job_dir / HEARTBEAT_FILE
    if heartbeat.is_file():
        try:
            beat = json.loads(heartbeat.read_text())
            record_attempt(job_dir, beat["started"], beat["alive"], "lost")
        except (ValueError, KeyError):  # unreadable: the report counts the attempt as unrecorded (train.log)
            pass
        heartbeat.unlink()


def say(job, what):
    print(f"[{now()}] {job['name']}: {what}", flush=True)


def clear_for_rerun(job_dir):
    """``--rerun`` of a started job: its result, epochs, attempts (their log and heartbeat too) and checkpoints
    go; it starts from scratch."""
    for stale in ("result.json", "epochs.jsonl", "attempts.jsonl", "attempt.json", "train.log"):
        (job_dir / stale).unlink(missing_ok=True)
    for checkpoint in (job_dir / "checkpoints").glob("*.pth"):
        checkpoint.unlink()


def attempt(job, command, rerun):
    """Run ``job`` once under its lock; its exit code, or None when it was skipped (finished, or locked)."""
    if job_state(job) == "done" and not rerun:
        say(job, "finished earlier, skipped")
        return None
    with job_lock(job["dir"]) as locked:
        if not locked:
            say(job, "running in another harness, skipped")
            return None
        state = job_state(job)  # another harness may have finished it meanwhile
        if state == "done" and not rerun:
            say(job, "finished earlier, skipped")
            return None
        # the child reads the YAML files again: edited since this harness planned its jobs (hours ago, maybe),
        # they would train it with other defaults than job.json records
        now_defaults = yaml_defaults(job["model"], command["dataset"], command["config_files"])
        if now_defaults != job["yaml_defaults"]:
            changed = differing_keys(now_defaults, job["yaml_defaults"])
            say(job, f"not started: {job['model']}'s YAML defaults changed since this harness planned its jobs "
                     f"({', '.join(changed)}); run the command again to plan with them")
            return 2
        if rerun and state != "new":
            clear_for_rerun(job["dir"])
        how = "resuming" if state == "partial" and has_checkpoint(job) and not rerun else "starting"
        say(job, f"{how} (log: {job['dir'] / 'train.log'})")
        return run_job(job, command)


def outcome(job, rc, start):
    """Print how the job ended; True when it failed."""
    if rc != 0 or job_state(job) != "done":
        say(job, f"FAILED (exit {rc}); see {job['dir'] / 'train.log'}")
        return True
    result = json.loads((job["dir"] / "result.json").read_text())
    say(job, f"done in {(time.time() - start) / 60:.1f} min, test "
        + ", ".join(f"{m} {result['test'][m]:.4f}" for m in METRICS))
    return False


def run_jobs(jobs, command, rerun, after_job):
    """Every job in turn, ``after_job(job)`` after each that ran; (names of the failed jobs, the signal that
    stopped the harness or None). SIGTERM stops it after the running child has exited."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    failed = []
    for job in jobs:
        start = time.time()
        rc = attempt(job, command, rerun)
        if rc is None:
            continue
        if _CHILD["stop"]:
            say(job, f"stopped by signal {_CHILD['stop']}; run the same command to resume")
            return failed, _CHILD["stop"]
        if outcome(job, rc, start):
            failed.append(job["name"])
        after_job(job)
    return failed, None
