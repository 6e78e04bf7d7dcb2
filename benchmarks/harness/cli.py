"""The harness's command line (``benchmarks/reproduce.py``): its flags, and ``main``, which plans the
jobs, refuses started ones whose settings changed, runs the rest and writes the report."""
import argparse
import shlex
import sys
from pathlib import Path

from .jobs import DEFAULT_MODELS, VARIANTS, plan_jobs, plan_lines, refuse_changed_jobs, variant_overrides
from .machine import ROOT

# Keys that say where a job's files are: each job keeps its own, so --set may not point them all at one.
SET_REFUSED = {
    "checkpoint_dir": "each job keeps its checkpoints in <runs-dir>/<job>/checkpoints (one folder for all would "
                      "let a job resume from another's); use --runs-dir",
    "checkpoint_name": "jobs name their checkpoints by model and dataset inside their own folders",
    "data_path": "use --data_path (resolved once; the jobs run from their own folders)",
    "seed": "use --seeds (one job a seed; one --set seed would give every job, and every mean and p-value, "
            "the same run)",
}


def parser():
    p = argparse.ArgumentParser(
        description="Train models on one dataset with identical settings, one job at a time, resumably; "
                    "write the Markdown report (overall table, grouped users, figure).",
    )
    p.add_argument("--dataset", default="amazon-beauty")
    p.add_argument("--data_path", "--data-path", default=str(ROOT / "dataset"),
                   help="folder that holds <dataset>/ (default: dataset/)")
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    p.add_argument("--seeds", nargs="+", type=int, default=[2020])
    p.add_argument("--one-seed", nargs="+", default=[], metavar="MODEL",
                   help="models that run the first of --seeds only (e.g. the baselines a report shows once)")
    p.add_argument("--variants", nargs="+", default=["default"],
                   help=f"{', '.join(VARIANTS)} or r<N> (SIGMA flip_remain = N); non-default ones apply to SIGMA")
    p.add_argument("--set", nargs="+", action="append", default=[], metavar="KEY=VALUE",
                   help="config key for every job (highest priority), e.g. --set epochs=1 hidden_size=16")
    p.add_argument("--against", nargs="+", default=["default"], metavar="VARIANT",
                   help="the report sets each other variant of a model against the one of these (each one of "
                        "--variants) that applies to it, its default where none does (default: default)")
    p.add_argument("--config_files", "--config-files", nargs="+", default=[], help="extra YAML for every job")
    p.add_argument("--runs-dir", type=Path, help="job folders (default: runs/<dataset>)")
    p.add_argument("--output", type=Path, help="the Markdown report (default: docs/results/<dataset>[...].md)")
    p.add_argument("--records", type=Path,
                   help="also copy each finished job's records (job.json, result.json, epochs.jsonl, attempts.jsonl; "
                        "what its report rows are built from, no checkpoints) to RECORDS/<job>/")
    p.add_argument("--rerun", action="store_true",
                   help="re-run finished jobs too; until a job is redone, the report counts it pending")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--report-only", action="store_true", help="rewrite the report from finished jobs; train nothing")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p


def parse_args(argv=None):
    from recbole_sigma.cli import parse_cli_value

    p = parser()
    args = p.parse_args(argv)
    if args.child:
        return args
    if args.rerun and args.report_only:
        p.error("--rerun redoes jobs and --report-only runs none; drop one")
    for variant in args.against:
        if variant not in args.variants + ["default"]:
            p.error(f"--against {variant} is not one of --variants")
    for model in args.models:  # one baseline a model: a second would be left unused without a word
        named = [v for v in args.against if variant_overrides(model, v) is not None]
        if len(named) > 1:
            p.error(f"--against names {len(named)} variants of {model} ({', '.join(named)}); name one a model")
    for flag, values in (("--models", args.models), ("--seeds", args.seeds), ("--variants", args.variants)):
        twice = sorted({str(v) for v in values if values.count(v) > 1})
        if twice:  # the same job twice would count its result twice in every mean, std and p-value
            p.error(f"{flag} names {', '.join(twice)} more than once")
    args.overrides = {}
    for item in (x for group in args.set for x in group):
        key, sep, value = item.partition("=")
        if not key or not sep:
            p.error(f"--set takes key=value, not {item!r}")
        if key in SET_REFUSED:
            p.error(f"--set {key}: {SET_REFUSED[key]}")
        args.overrides[key] = parse_cli_value(value)
    args.runs_dir = (args.runs_dir or ROOT / "runs" / args.dataset).resolve()
    if args.output is None:
        suffix = "" if args.variants == ["default"] else "-variants-" + "-".join(args.variants)
        if len(suffix) > 120:  # a file name (and its figures' longer ones) must stay under 255 bytes
            import hashlib

            suffix = suffix[:100] + "-" + hashlib.sha1(suffix.encode()).hexdigest()[:10]
        args.output = ROOT / "docs" / "results" / f"{args.dataset}{suffix}.md"
    args.output = args.output.resolve()
    args.records = args.records.resolve() if args.records else None
    args.config_files = [str(Path(p).resolve()) for p in args.config_files]
    return args


def preflight(jobs, args):
    """SystemExit, in one line, on a setting no job of a (model, variant) could run with, or on data that is not
    there: found now, not as one FAILED child a job with "run the same command again" to follow."""
    from recbole_sigma._recbole.process_state import kept_env, plain_argv
    from recbole_sigma.config import checked_config
    from recbole_sigma.errors import RecBoleSigmaError
    from recbole_sigma.pipeline import check_dataset_available

    from .jobs import job_state

    checked = set()
    for job in jobs:
        if job["key"] in checked or (job_state(job) == "done" and not args.rerun):
            continue
        checked.add(job["key"])
        try:  # RecBole's Config reads sys.argv (the harness's flags) and sets CUDA_VISIBLE_DEVICES
            with plain_argv(), kept_env("CUDA_VISIBLE_DEVICES"):
                config = checked_config(job["model"], args.dataset, args.config_files or None, job["config"])
            check_dataset_available(config)
        except RecBoleSigmaError as e:
            raise SystemExit(f"error: {job['name']}: {' '.join(str(e).split())}") from None


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        from .child import child_main

        return child_main(args.child)
    from .report import write_report
    from .results import save_records
    from .runner import run_jobs

    given = sys.argv[1:] if argv is None else argv
    line = " ".join(shlex.quote(a) for a in ["python", "benchmarks/reproduce.py"] + list(given))
    command = {"line": line, "dataset": args.dataset, "config_files": args.config_files}
    jobs = plan_jobs(args)
    refuse_changed_jobs(jobs, args.rerun)
    if not args.report_only and not args.dry_run:
        preflight(jobs, args)
    if args.dry_run:
        for plan_line in plan_lines(jobs, args.rerun):
            print(plan_line)
        return 0
    # --rerun: a job's old result stays out of the report until the job is redone (a report written meanwhile
    # would otherwise average old and new settings in one row)
    to_rerun = {job["name"] for job in jobs} if args.rerun else set()

    def report(job=None):
        if job is not None:
            to_rerun.discard(job["name"])
        if args.records:
            save_records(jobs, args.records)
        return write_report(args, command, jobs, stale=to_rerun)

    failed = []
    if not args.report_only:
        print(f"{len(jobs)} jobs in {args.runs_dir}; report: {args.output}", flush=True)
        failed, stop = run_jobs(jobs, command, args.rerun, report)
        if stop:
            report()
            return 128 + stop
    print(report())
    if failed:
        print(f"failed: {', '.join(failed)} (run the same command again to resume them)", file=sys.stderr)
        return 1
    return 0
