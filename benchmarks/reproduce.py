#!/usr/bin/env python
"""Reproduce the SIGMA paper's comparisons on one dataset, one job at a time, resumably.

    # Table 2 + Fig. 3 (all models, 3 seeds), in the background:
    nohup python benchmarks/reproduce.py --dataset amazon-beauty --data_path /work/shared/datasets \\
        --models SIGMA Mamba4Rec EchoMamba4Rec SASRec GRU4Rec BERT4Rec FEARec --seeds 2020 2021 2022 \\
        > runs/beauty.out 2>&1 &
    # Table 4 ablations and the r sweep (SIGMA only; r = 5 is the default, no_flip is r >= L):
    python benchmarks/reproduce.py --dataset amazon-beauty --data_path /work/shared/datasets \\
        --models SIGMA --variants default no_flip no_gate no_gru r0 --seeds 2020 2021 2022
    # anything else: --set key=value (every job, highest priority), --dry-run, --report-only

Every (model, variant, seed) is one job, trained in its own child process (this script with
``--child``: ``harness/child.py``, which calls ``recbole_sigma.run``), one at a time. A job lives in
``<runs-dir>/<job>/`` (default ``runs/<dataset>/``): ``job.json`` (its config and the YAML
defaults it ran with; a started job whose effective settings differ from this invocation's is refused),
``train.log`` (the child's output; RecBole's own log is under ``log/`` there),
``checkpoints/``, ``epochs.jsonl`` (per-epoch train time, loss, valid score), ``attempts.jsonl``
and, once finished, ``result.json``. A job with a ``result.json`` is skipped (``--rerun`` redoes
it); an unfinished one is resumed from its checkpoint (``harness.child.train``). After every job the report
(``--output``, default ``docs/results/<dataset>.md``) is rewritten from the ``result.json`` files:
the overall table (mean +- std over seeds), the seeds table (best valid and test metrics beside the
paper's, which are validation numbers), one-sided Welch p-values of SIGMA against each multi-seed
model, measured / paper percentages, the training curves (with the authors' own curves, quoted, where
``harness/paper.py`` quotes them for the dataset) and the grouped-user table, with their figures (PNGs next to it),
and ``<report>.reading.md`` if present.

Identical data and evaluation settings for every model (``harness.jobs.COMMON``): leave-one-out, time order,
full-sort ranking over all items, the dataset YAML's MAX_ITEM_LIST_LENGTH, HR/NDCG/MRR@10,
NDCG@10 for early stopping (patience 10), batch 2048, Adam lr 1e-3, hidden size 64. Each model
keeps its own YAML defaults (``recbole_sigma.config_files``); RecBole's built-ins (SASRec,
GRU4Rec, BERT4Rec, FEARec) keep RecBole's, with CE loss and no negative sampling (``harness.jobs.BUILTIN``);
SASRec runs as ``recbole_sigma.model.SASRec`` (RecBole's, length-bucketed: same outputs, faster).

The harness is the package ``benchmarks/harness`` (one job a module: jobs, runner, child, results, stats,
report, plots, paper, machine, cli); Python puts this script's folder first on ``sys.path``, so it is
importable here as ``harness`` (and as ``benchmarks.harness`` from the repository root, as the tests
import it). recbole_sigma is the installed package (``pip install -e .``).
"""
import sys

from harness.cli import main

if __name__ == "__main__":
    sys.exit(main())
