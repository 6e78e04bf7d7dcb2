"""The plan: one job per (model, variant, seed), its config and effective settings, its state on disk,
and the check that a started job ran with the settings of this invocation."""
import json
import re
from pathlib import Path

# The same for every job (over each model's YAML, under variants and --set).
COMMON = {
    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
    "metrics": ["Hit", "NDCG", "MRR"],
    "topk": [10],
    "valid_metric": "NDCG@10",
    "stopping_step": 10,
    "train_batch_size": 2048,
    "eval_batch_size": 4096,
    "learning_rate": 0.001,
    "hidden_size": 64,
    "show_progress": False,
}
# RecBole's own models: its YAML defaults, trained like ours (full-softmax CE, no sampled negatives).
BUILTIN = {"loss_type": "CE", "train_neg_sample_args": None}
# Named variants: (models they apply to, config overrides). r<N> is SIGMA with flip_remain = N.
VARIANTS = {
    "default": (None, {}),
    "no_flip": (("SIGMA",), {"use_partial_flip": False}),  # Table 4 "w/o partial flipping"
    "no_gate": (("SIGMA",), {"use_ds_gate": False}),  # Table 4 "w/o DS gate"
    "no_gru": (("SIGMA",), {"use_fe_gru": False}),  # Table 4 "w/o FE-GRU"
    # Mamba4Rec's Amazon dropout for SIGMA, whose authors ran Beauty at 0.2 (its paper gives none) and
    # which peaks early on Beauty at 0.2.
    "dropout04": (("SIGMA",), {"dropout_prob": 0.4}),
    # ECHO at the dropout its authors' code runs every dataset at; its default ('auto') gives 0.4 on Amazon data.
    "dropout02": (("EchoMamba4Rec",), {"dropout_prob": 0.2}),
    # Diagnostics beyond Table 4 (why SIGMA trails Mamba4Rec): all three parts off, leaving two Mamba
    # blocks on the same sequence, a1 (M0 + M0') W + b; and the public code's gate with mixing weights
    # frozen at softmax([0.1, 0.1, 0.8]) (0.50 forward / 0.25 flipped / 0.25 GRU; that code trains
    # them from the raw values instead) on the paper's flip, two Mambas and GRU.
    "two_mamba": (("SIGMA",), {"use_partial_flip": False, "use_ds_gate": False, "use_fe_gru": False}),
    "public_gate_mix": (("SIGMA",), {"gate_mode": "public_code", "mix_weights": "frozen_softmax"}),
    # The authors' SIGMA as their repository computes it at HEAD (recbole_sigma/model/sigma.py), at the
    # dropout of their Beauty runs (RecMamba.ipynb), whatever SIGMA's default.
    "public_code": (("SIGMA",), {"sigma_variant": "public_code", "dropout_prob": 0.2}),
}
# From the public code's SIGMA to the paper's, one change at a time, each step keeping those before
# it (which step loses?): the paper's length-aware flip, two Mamba blocks, the paper's DS gate, the
# paper's mixing scalars; walk4_mix differs from the paper's SIGMA at the authors' dropout 0.2 only in
# the GRU's biases.
_PUBLIC_CODE_BLOCK = {"share_mamba": True, "flip_mode": "fixed", "gate_mode": "public_code",
                      "mix_weights": "public_code", "gru_bias": False, "dropout_prob": 0.2}
_WALK_STEPS = (("walk1_flip", {"flip_mode": "length_aware"}), ("walk2_two_mambas", {"share_mamba": False}),
               ("walk3_gate", {"gate_mode": "paper"}), ("walk4_mix", {"mix_weights": "trainable"}))
_step = dict(_PUBLIC_CODE_BLOCK)
for _name, _change in _WALK_STEPS:
    _step = {**_step, **_change}
    VARIANTS[_name] = (("SIGMA",), _step)
# From HEAD's SIGMA towards what the authors' notebook prints of theirs (RecMamba.ipynb; README.md
# "SIGMA: paper vs public code"), one change each on top of public_code: no projection after the
# mix, cell 26's gate activations, its gate dropout; cell26 has all three (900,355 parameters, as
# that cell prints). cell66 is HEAD with the activations and gate dropout cell 66 prints (the run
# the paper's SIGMA row matches; its 2 more parameters than HEAD's stay unknown).
_CELL_26 = {"gate_activations": ["sigmoid", "gelu"], "gate_dropout": 0.3, "output_projection": False}
# nb_one_gate (below): the settings of the notebook's SIGMA runs as their FLOPs read, which its
# diagnostics vary one at a time
_NB_ONE_GATE = {**_PUBLIC_CODE_BLOCK, "gate_flip": "shared", "gru_conv_kernel": 0, "output_projection": False,
                "gate_activations": ["sigmoid", "silu"], "gate_dropout": 0.3}
VARIANTS.update({
    "nb_no_projection": (("SIGMA",), {**_PUBLIC_CODE_BLOCK, "output_projection": False}),
    "nb_gate_activations": (("SIGMA",), {**_PUBLIC_CODE_BLOCK, "gate_activations": ["sigmoid", "gelu"]}),
    "nb_gate_dropout": (("SIGMA",), {**_PUBLIC_CODE_BLOCK, "gate_dropout": 0.3}),
    "cell26": (("SIGMA",), {**_PUBLIC_CODE_BLOCK, **_CELL_26}),
    "cell66": (("SIGMA",), {**_PUBLIC_CODE_BLOCK, "gate_activations": ["sigmoid", "silu"], "gate_dropout": 0.3}),
    # cell26 with a guess at where its parameter-free SiLU `ac` acts: on the forward gate's dense(X),
    # where the first commit of that code has the line commented out (README.md)
    "cell26_ac": (("SIGMA",), {**_PUBLIC_CODE_BLOCK, **_CELL_26, "gate_dense_act": "silu"}),
    # HEAD's SIGMA without its gate and projection: its FLOPs (RecBole's count, benchmarks/notebook_flops.py)
    # equal those the notebook prints for its SIGMA runs (cells 34-66), but its "without gate" run
    # (cell 64) counts one Linear call where nb_no_gate has its Conv1d: a coincidence.
    "nb_no_gate": (("SIGMA",), {**_PUBLIC_CODE_BLOCK, "use_ds_gate": False, "output_projection": False}),
    # What those FLOPs and cell 64's call for: one gate (dense, two Linear maps), here for both directions,
    # no Conv1d before the GRU, no projection; cell 66's gate activations and dropout
    "nb_one_gate": (("SIGMA",), _NB_ONE_GATE),
    # nb_one_gate mixing with HEAD's unused local copy, softmax(combining_weights.data) = (0.25, 0.25, 0.5)
    # over (GRU, flipped, forward): detached, so fixed (does the notebook's mix explain its higher peak?)
    "nb_one_gate_softmax_mix": (("SIGMA",), {**_NB_ONE_GATE, "mix_weights": "frozen_softmax"}),
    # nb_one_gate without its gate: the notebook's 'without gate' run (cell 64, valid NDCG@10 0.0592 against
    # cell 66's 0.0597) as nb_one_gate reads that run's FLOPs (the dense computed, its result unused)
    "nb_one_gate_no_gate": (("SIGMA",), {**_NB_ONE_GATE, "use_ds_gate": False}),
    # nb_one_gate without the flip: the notebook's 'without reverse' run (cell 62, valid NDCG@10 0.0571); here
    # the flipped branch reads the unflipped input through the same Mamba and gate, which adds it to the
    # forward branch (their two weights summed)
    "nb_one_gate_no_flip": (("SIGMA",), {**_NB_ONE_GATE, "use_partial_flip": False}),
    # nb_one_gate with the paper's flip, each user's first len - 5 items reversed: HEAD's reverses the
    # first 45 positions of the padded tensor, so for the users with 22 items or fewer its one-layer
    # flipped branch reads only padding up to the predicting position (does a real reversal add more?)
    "nb_one_gate_length_aware_flip": (("SIGMA",), {**_NB_ONE_GATE, "flip_mode": "length_aware"}),
    # nb_one_gate with the flipped branch's output flipped back before the gate, as the bidirectional
    # Mambas the paper cites do: a user of up to 45 items then predicts from a reversed scan of the
    # padding and its last item. The notebook's flip gains 0.0026 on valid over none (cell 66 against
    # cell 62), ours 0.0004: does its unshown forward flip back?
    "nb_one_gate_flip_back": (("SIGMA",), {**_NB_ONE_GATE, "flip_back": True}),
    # Mamba4Rec as the notebook's cell 68 ran it (dropout 0.2; our default gives 0.4 on Beauty): does our
    # pipeline reach that run's valid peak (0.0540), where our notebook-like SIGMAs stay under cell 66's?
    "cell68": (("Mamba4Rec",), {"dropout_prob": 0.2}),
    # cell26 without the Conv1d before its GRU: what cell 26's FLOPs count
    "cell26_no_conv": (("SIGMA",), {**_PUBLIC_CODE_BLOCK, **_CELL_26, "gru_conv_kernel": 0}),
    # The paper's SIGMA without Eq. 9's projection (what nb_no_projection takes from HEAD's)
    "no_projection": (("SIGMA",), {"output_projection": False}),
    # and at dropout 0.4, the other change that gained on the paper's SIGMA (dropout04): together, a
    # preset's candidate (one needs Mamba4Rec's level)
    "no_projection_dropout04": (("SIGMA",), {"output_projection": False, "dropout_prob": 0.4}),
    # and with the FE-GRU's GRU on H0 (no Conv1d), as the notebook's SIGMA runs (nb_one_gate)
    "no_projection_no_gru_conv": (("SIGMA",), {"output_projection": False, "gru_conv_kernel": 0}),
    # and that at dropout 0.4, Mamba4Rec's on Beauty (no_projection_dropout04 gained 3 % on test over
    # no_projection): does the one that reached Mamba4Rec's level pass it there?
    "no_projection_no_gru_conv_dropout04": (("SIGMA",), {"output_projection": False, "gru_conv_kernel": 0,
                                                         "dropout_prob": 0.4}),
})
# Defaults that moved after the variants above had run, each pinned in them at the value they ran with
# (README.md, "Where the defaults come from"). Every SIGMA variant ran while SIGMA's default GRU was torch's
# nn.GRU (HEAD's), before it took Eq. 7's as the paper writes it (gru_cell: paper); every ECHO variant with the
# structure ECHO's default had until it took its authors' code's (7 December 2026): its backward Mamba on each
# user's items reversed (the code's reads the whole padded sequence reversed), dropout on the GLU's branch (the
# code's on the sum), one Mamba pair a layer (the same at one layer), LayerNorm eps 1e-12 after the pairs (the
# code's 1e-5). gru_cell_torch and item_flip are the defaults as they were: the default's runs before each move
# (the code's structure ran as code_structure).
_ITEM_FLIP = {"backward_flip": "valid_items", "glu_dropout": "branch", "mamba_pairs": "one", "bimamba_norm_eps": 1e-12}
_RAN_WITH = {"SIGMA": {"gru_cell": "torch"}, "EchoMamba4Rec": _ITEM_FLIP}
for _models, _overrides in VARIANTS.values():
    for _model in _models or ():
        for _key, _value in _RAN_WITH.get(_model, {}).items():
            _overrides.setdefault(_key, _value)
VARIANTS["gru_cell_torch"] = (("SIGMA",), dict(_RAN_WITH["SIGMA"]))
VARIANTS["item_flip"] = (("EchoMamba4Rec",), dict(_ITEM_FLIP))
# Variants that a shipped ``sigma_variant`` preset builds weight for weight (tests/test_sigma_public_code.py
# checks nb_one_gate_softmax_mix against 'notebook', which built nb_one_gate before its mix moved to
# frozen_softmax): variant -> preset.
PRESET_OF = {"nb_one_gate_softmax_mix": "notebook"}
# Keys a model's YAML gained after jobs had run, each at the value that computes what those jobs
# computed: a record without the key ran with that value (config_mismatch).
# ECHO's four structural keys came with its default structure of then (item_flip's).
KEYS_ADDED = {"EchoMamba4Rec": dict(_ITEM_FLIP),
              "SIGMA": {"gate_activations": ["silu", "sigmoid"], "gate_dropout": 0.2, "output_projection": True,
                        "gate_dense_act": "none", "gate_flip": "own", "flip_back": False, "gru_cell": "torch"}}
DEFAULT_MODELS = ["SIGMA", "Mamba4Rec", "EchoMamba4Rec", "SASRec", "GRU4Rec", "BERT4Rec", "FEARec"]
OURS = ("SIGMA", "Mamba4Rec", "EchoMamba4Rec")
METRICS = ("hit@10", "ndcg@10", "mrr@10")
# Keys that name where a job lives, not what it computes: ignored when checking a started job's config.
PATH_KEYS = ("checkpoint_dir", "data_path")


def differing_keys(a, b):
    """The keys, sorted, whose values differ between mappings ``a`` and ``b`` (missing counts as None)."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def variant_overrides(model, variant):
    """Config overrides of ``variant`` for ``model``, or None when it does not apply to it."""
    match = re.fullmatch(r"r(\d+)", variant)
    if match:
        return {"flip_remain": int(match.group(1))} if model == "SIGMA" else None
    if variant not in VARIANTS:
        raise SystemExit(f"error: unknown variant {variant!r}: {', '.join(VARIANTS)} or r<N> (SIGMA's flip_remain = N)")
    models, overrides = VARIANTS[variant]
    return dict(overrides) if models is None or model in models else None


def job_name(model, variant, seed):
    return f"{model}-s{seed}" if variant == "default" else f"{model}-{variant}-s{seed}"


def yaml_defaults(model, dataset, extra_files=()):
    """What our YAML files (model, then dataset) and ``--config_files`` set for a job,
    merged in RecBole's order: recorded in job.json, so that a finished job whose YAML defaults
    changed since is not taken for a run of today's defaults."""
    import recbole_sigma
    from recbole_sigma.config import check_config_file

    merged = {}
    for path in recbole_sigma.config_files(model, dataset) + list(extra_files):
        merged.update(check_config_file(path))
    return json.loads(json.dumps(merged))


def job_config(model, variant, seed, args, job_dir):
    """COMMON, BUILTIN for RecBole's models, the variant, the seed and where the job lives, then ``--set``."""
    config = json.loads(json.dumps(COMMON))
    if model not in OURS:
        config.update(BUILTIN)
    config.update(variant_overrides(model, variant))
    config["seed"] = seed
    config["data_path"] = str(Path(args.data_path).resolve())
    config["checkpoint_dir"] = str(job_dir / "checkpoints")
    config.update(args.overrides)
    return config


def check_models(models):
    """Refuse (SystemExit) a model that is unknown or not a sequential recommender."""
    from recbole.model.abstract_recommender import SequentialRecommender

    from recbole_sigma.config import resolve_model
    from recbole_sigma.errors import UnknownModelError

    for model in models:
        try:
            model_class = resolve_model(model)
        except UnknownModelError as e:
            raise SystemExit(f"error: {e}") from None
        if not issubclass(model_class, SequentialRecommender):
            raise SystemExit(f"error: {model} is not a sequential recommender; the harness compares sequential "
                             "models (leave-one-out next-item prediction, grouped by history length)")


def model_variants(models, variants):
    """The (model, variant) pairs that apply, in order; refuses a model that none applies to."""
    pairs = [(model, variant) for model in models for variant in variants
             if variant_overrides(model, variant) is not None]
    for model in models:
        if not any(m == model for m, _ in pairs):
            raise SystemExit(f"error: none of the variants {variants} applies to {model}")
    return pairs


def plan_jobs(args):
    """[(key=(model, variant), seed, name, dir, config)], seeds outermost (a complete table sooner)."""
    check_models(args.models)
    pairs = model_variants(args.models, args.variants)
    stray = sorted(set(args.one_seed) - set(args.models))
    if stray:
        raise SystemExit(f"error: --one-seed names {', '.join(stray)}, not among --models")
    jobs = []
    for seed in args.seeds:
        for model, variant in pairs:
            if model in args.one_seed and seed != args.seeds[0]:
                continue
            name = job_name(model, variant, seed)
            job_dir = args.runs_dir / name
            jobs.append({
                "key": (model, variant), "model": model, "variant": variant, "seed": seed, "name": name,
                "dataset": args.dataset, "dir": job_dir, "config": job_config(model, variant, seed, args, job_dir),
                "yaml_defaults": yaml_defaults(model, args.dataset, args.config_files),
            })
    return jobs


def job_state(job):
    """'done' (result.json), 'partial' (started, unfinished), or 'new'."""
    if (job["dir"] / "result.json").is_file():
        return "done"
    return "partial" if (job["dir"] / "job.json").is_file() else "new"


def has_checkpoint(job):
    return any((job["dir"] / "checkpoints").glob("*.pth"))


def effective_config(config, yaml_values):
    """The settings a job runs with: its YAML defaults under its config (variant, --set, COMMON),
    less the keys that only say where it lives (``PATH_KEYS``)."""
    merged = json.loads(json.dumps({**(yaml_values or {}), **config}))
    return {k: v for k, v in merged.items() if k not in PATH_KEYS}


def stored_settings(model, stored):
    """The effective settings a stored job of ``model`` (its job.json) ran with; a key the model's YAML
    gained since holds the value that computes what the job computed (``KEYS_ADDED``)."""
    return {**KEYS_ADDED.get(model, {}),
            **effective_config(stored.get("config", {}), stored.get("yaml_defaults"))}


def config_mismatch(job):
    """Keys whose effective value differs between the stored job.json and this invocation.

    Compared are the effective settings, not how they were given: a job run with
    ``dropout_prob: 0.4`` as a variant override matches one where the YAML now says 0.4, or says
    'auto' and the rule gives 0.4 on this job's data (:func:`resolved_dropout`)."""
    try:
        stored = json.loads((job["dir"] / "job.json").read_text())
    except (OSError, ValueError):
        return []
    if stored.get("dataset", job["dataset"]) != job["dataset"]:  # another dataset's job of the same name
        return ["dataset"]
    old = stored_settings(job["model"], stored)
    new = effective_config(job["config"], job["yaml_defaults"])
    mismatch = differing_keys(old, new)
    if "dropout_prob" in mismatch and "auto" in (old.get("dropout_prob"), new.get("dropout_prob")):
        auto, number = (old, new) if old.get("dropout_prob") == "auto" else (new, old)
        from recbole_sigma.errors import RecBoleSigmaError

        paths = {k: job["config"][k] for k in PATH_KEYS if k in job["config"]}  # the data as it is here
        try:
            resolved = resolved_dropout(job["model"], job["dataset"], {**auto, **paths})
        except RecBoleSigmaError as e:
            raise SystemExit(f"error: {job['name']}: comparing its dropout_prob {number.get('dropout_prob')!r} "
                             f"with 'auto' needs its data: {e}") from None
        if resolved == number.get("dropout_prob"):
            mismatch.remove("dropout_prob")
    return mismatch


_RESOLVED = {}


def resolved_dropout(model, dataset, settings):
    """The number ``dropout_prob: 'auto'`` becomes for a model trained with ``settings`` (YAML
    defaults and config merged): the model's own per-domain rule on the training split it would
    get, so the data is loaded and split by training's own path (a few seconds on Beauty; kept)."""
    key = (model, dataset, json.dumps(settings, sort_keys=True))
    if key not in _RESOLVED:
        from recbole_sigma._recbole.process_state import plain_argv
        from recbole_sigma.config import build_config
        from recbole_sigma.model.base import domain_dropout
        from recbole_sigma.pipeline import load_splits

        with plain_argv():  # the job's settings alone: RecBole's Config also reads this process's --key=value
            config = build_config(model, dataset, config_dict=settings)
        train_data, _, _ = load_splits(config)
        _RESOLVED[key] = domain_dropout("auto", train_data._dataset)  # what run builds the model on
    return _RESOLVED[key]


def refuse_changed_jobs(jobs, rerun):
    """SystemExit naming the first started job (finished, or with a checkpoint) whose settings changed."""
    for job in jobs:
        state = job_state(job)
        if rerun or state == "new" or (state == "partial" and not has_checkpoint(job)):
            continue
        mismatch = config_mismatch(job)
        if mismatch:
            what = "finished" if state == "done" else "was started (and has a checkpoint)"
            raise SystemExit(
                f"error: {job['name']} {what} with a different config ({', '.join(mismatch)}) in {job['dir']}; "
                "use another --runs-dir, or --rerun to redo it"
            )


def plan_lines(jobs, rerun):
    """``--dry-run``: one line per job, what this invocation would do with it."""
    lines = []
    for job in jobs:
        state = job_state(job)
        action = {"done": "skip (finished)", "new": "run"}.get(state, "resume" if has_checkpoint(job) else "restart")
        if state != "new" and rerun:
            action = "rerun from scratch"
        lines.append(f"{job['name']:<32} {action:<16} {job['dir']}")
    return lines
