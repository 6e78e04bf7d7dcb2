#!/usr/bin/env python
"""Rename finished jobs when a default moves onto a variant's settings, so that each job's name keeps
saying what it computed (docs/results/README.md: a record's numbers are never edited).

    # SIGMA's default takes the paper's GRU: its old default's jobs become gru_cell_torch's, then
    # gru_cell_paper's become the default's (the pairs apply in order, so names can swap)
    python benchmarks/rename_records.py --model SIGMA --seeds 2020 2021 2022 2023 2024 \\
        --rename default=gru_cell_torch gru_cell_paper=default --why "SIGMA's default GRU became ..." \\
        docs/results/runs/amazon-beauty ../runs/amazon-beauty

In each folder given (the committed records, and the runs folder with the checkpoints), each job
folder ``<model>[-<variant>]-s<seed>`` is renamed, and its ``job.json`` and ``result.json`` (where
present) get the new name and variant and ``renamed_from``: the name and variant the job ran as (kept
from an earlier renaming, which also ran it as that) and why. Settings, command, metrics and checkpoint
paths stay as the job ran. Everything is checked before anything moves: a pair whose job is missing from
the first folder, or whose new name is taken and not freed by an earlier pair, stops it with one line.
The harness then takes the renamed jobs as finished when their effective settings are the new variant's
(tests/test_reproduce.py checks every committed record's name against its settings).
"""
import argparse
import json
import sys
from pathlib import Path

from harness.jobs import job_name  # this script's folder is first on sys.path, as for reproduce.py

from recbole_sigma.trainer import atomic_write


def parse_pair(text):
    old, sep, new = text.partition("=")
    if not (old and sep and new) or old == new:
        raise argparse.ArgumentTypeError(f"--rename takes OLD=NEW (two different variants), not {text!r}")
    return old, new


def moves(folders, model, seeds, pairs):
    """[(from dir, to dir, new variant)] in the order they must run; SystemExit if one cannot."""
    if not folders[0].is_dir():
        raise SystemExit(f"error: {folders[0]} is not a folder")
    planned = []
    for n, folder in enumerate(folders):
        present = {p.name for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else set()
        for old, new in pairs:
            for seed in seeds:
                src, dst = job_name(model, old, seed), job_name(model, new, seed)
                if src not in present:
                    if n == 0:  # the records must hold every job; a runs folder may have lost some
                        raise SystemExit(f"error: {folder / src} does not exist: nothing to rename to {dst}")
                    continue
                if dst in present:
                    raise SystemExit(f"error: {folder / dst} exists (rename it first, in an earlier pair)")
                present = present - {src} | {dst}
                planned.append((folder / src, folder / dst, new))
    return planned


def rename(src, dst, new_variant, why):
    src.rename(dst)
    for file in ("job.json", "result.json"):
        path = dst / file
        if not path.exists():
            continue
        record = json.loads(path.read_text())
        ran_as = record.get("renamed_from", {"name": record["name"], "variant": record["variant"]})
        reasons = [ran_as["why"].rstrip(".") + "."] if "why" in ran_as else []  # one sentence each
        why_all = " ".join(reasons + [why])
        record["renamed_from"] = {"name": ran_as["name"], "variant": ran_as["variant"], "why": why_all}
        record["name"], record["variant"] = dst.name, new_variant
        atomic_write(path, lambda f: f.write(json.dumps(record, indent=2).encode()))  # as the harness writes them


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path, help="the records folder first, then any runs folder")
    p.add_argument("--model", required=True)
    p.add_argument("--seeds", nargs="+", type=int, required=True)
    p.add_argument("--rename", nargs="+", type=parse_pair, required=True, metavar="OLD=NEW")
    p.add_argument("--why", required=True, help="what moved, for renamed_from")
    args = p.parse_args(argv)
    for src, dst, new in moves(args.folders, args.model, args.seeds, args.rename):
        rename(src, dst, new, args.why)
        print(f"{src} -> {dst.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
