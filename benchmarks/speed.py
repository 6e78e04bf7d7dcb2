"""Training and evaluation speed of the sequential models, one table per run.

Dataset mode (RecBole's Trainer, one training epoch and one full-sort test evaluation):

    python benchmarks/speed.py --dataset=amazon-beauty --data_path=../shared/datasets

Synthetic mode (train steps on random full-length sequences, for long L):

    python benchmarks/speed.py --synthetic --max_len=200 --steps=3

A model may carry config keys, ``MODEL:key=value[,key=value]``, to time a switch against the
default in one table: ``--models SIGMA SIGMA:gru_cell=torch``.

Every model runs in a fresh child process, one after another, with the same data, batch size
and L, so that peak RSS is each model's own (the allocator keeps a process's high-water mark);
the driver prints a table: train s/epoch (or s/step), ratio to SASRec, eval ms/batch, peak RSS.
"""
import argparse
import itertools
import json
import subprocess
import sys
import time

from harness.machine import describe, peak_rss_mb  # this script's folder is first on sys.path

DEFAULT_MODELS = ["SASRec", "GRU4Rec", "Mamba4Rec", "SIGMA", "EchoMamba4Rec"]
# RecBole's built-in baselines trained with the same loss, width and batches as ours. SASRec is
# timed as RecBole ships it (its padded forward, length_buckets False): the reference of the
# "x SASRec" column and of the targets in docs/performance.md.
BASELINE_KEYS = {"loss_type": "CE", "train_neg_sample_args": None, "hidden_size": 64, "embedding_size": 64,
                 "length_buckets": False}


def model_spec(text):
    """``--models`` entry ``MODEL[:key=value,...]`` -> (model, {key: value}); values as on the command line."""
    from recbole_sigma.cli import parse_cli_value

    model, colon, rest = text.partition(":")
    pairs = [item.partition("=") for item in rest.split(",")] if colon else []
    if not model or any(not key or not sep for key, sep, _ in pairs):
        raise argparse.ArgumentTypeError(f"{text!r}: write MODEL or MODEL:key=value[,key=value]")
    return model, {key: parse_cli_value(value) for key, _, value in pairs}


def model_config(args, spec):
    import recbole_sigma

    model, overrides = model_spec(spec)
    keys = {
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        "train_batch_size": args.batch,
        "eval_batch_size": args.eval_batch,
        "show_progress": False,
        "checkpoint_dir": "/tmp/recbole_sigma_speed",
        "seed": 2020,
    }
    if model not in recbole_sigma.MODELS:
        keys.update(BASELINE_KEYS)
    if args.data_path:
        keys["data_path"] = args.data_path
    return recbole_sigma.build_config(model, args.dataset, config_dict={**keys, **overrides})


def unknown_keys(args, spec):
    """The keys of ``spec`` its model's config lacks: a misspelt key would time the default under its name."""
    model, overrides = model_spec(spec)
    return sorted(set(overrides) - set(model_config(args, model).final_config_dict)) if overrides else []


def child_dataset(args, model):
    """One training epoch and one full-sort test evaluation through RecBole's Trainer."""
    import torch
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_trainer, init_seed

    import recbole_sigma

    config = model_config(args, model)
    init_seed(config["seed"], config["reproducibility"])
    train_data, _, test_data = data_preparation(config, create_dataset(config))
    net = recbole_sigma.resolve_model(config["model"])(config, train_data._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    rss_before = peak_rss_mb()
    if args.max_batches:
        train_s = timed_batches(net, trainer.optimizer, train_data, args.max_batches) * len(train_data)
    else:
        start = time.perf_counter()
        trainer._train_epoch(train_data, 0)
        train_s = time.perf_counter() - start
    start = time.perf_counter()
    with torch.no_grad():
        trainer.evaluate(test_data, load_best_model=False)
    eval_ms = (time.perf_counter() - start) * 1000 / len(test_data)
    return {"train_s": train_s, "batches": len(train_data), "eval_ms": eval_ms,
            "eval_batches": len(test_data), "rss_data_mib": rss_before, "peak_rss_mib": peak_rss_mb()}


def timed_batches(model, optimizer, batches, n):
    """Mean seconds per training step (forward, backward, optimizer step) over ``n`` batches
    after one untimed warm-up batch (which also compiles the numba kernels)."""
    model.train()
    times = []
    for i, interaction in enumerate(batches):
        start = time.perf_counter()
        optimizer.zero_grad()
        model.calculate_loss(interaction).backward()
        optimizer.step()
        if i:
            times.append(time.perf_counter() - start)
        if len(times) == n:
            break
    return sum(times) / len(times)


def child_synthetic(args, model):
    """Train steps (forward, backward, Adam) on random sequences of full length L."""
    import torch
    from recbole.data.interaction import Interaction
    import recbole_sigma
    from recbole_sigma.gpu_check import FakeDataset  # Amazon's interactions per user, for dropout 'auto'

    config = model_config(args, model)
    torch.manual_seed(0)
    net = recbole_sigma.resolve_model(config["model"])(config, FakeDataset(args.n_items))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    batch = Interaction({
        net.ITEM_SEQ: torch.randint(1, args.n_items, (args.batch, args.max_len)),
        net.ITEM_SEQ_LEN: torch.full((args.batch,), args.max_len),
        net.POS_ITEM_ID: torch.randint(1, args.n_items, (args.batch,)),
    })
    train_s = timed_batches(net, optimizer, itertools.repeat(batch), args.steps)
    users = Interaction({  # the eval batch the header names (--eval_batch users), not the training batch
        net.ITEM_SEQ: torch.randint(1, args.n_items, (args.eval_batch, args.max_len)),
        net.ITEM_SEQ_LEN: torch.full((args.eval_batch,), args.max_len),
    })
    net.eval()
    with torch.no_grad():
        net.full_sort_predict(users)  # warm-up
        start = time.perf_counter()
        net.full_sort_predict(users)
    eval_ms = (time.perf_counter() - start) * 1000
    return {"train_s": train_s, "batches": 1, "eval_ms": eval_ms,
            "eval_batches": 1, "rss_data_mib": 0.0, "peak_rss_mib": peak_rss_mb()}


def run_child(args, model):
    shared = {k: v for k, v in vars(args).items() if k not in ("models", "child", "synthetic") and v is not None}
    cmd = [sys.executable, __file__, f"--child={model}"] + [f"--{k}={v}" for k, v in shared.items()]
    cmd += ["--synthetic"] if args.synthetic else []
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"{model} failed:\n{proc.stderr[-3000:]}")


def table(args, results):
    unit = "s/step" if args.synthetic else "s/epoch"
    base = results.get("SASRec", {}).get("train_s")
    lines = [
        f"| model | train {unit} | × SASRec | eval ms/batch | peak RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for model, r in results.items():
        ratio = f"{r['train_s'] / base:.2f}" if base else "-"
        lines.append(f"| {model} | {r['train_s']:.2f} | {ratio} | {r['eval_ms']:.0f} | {r['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


def positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS, metavar="MODEL[:key=value,...]",
                   help="models to time, one child each; config keys after a colon, e.g. SIGMA:gru_cell=torch")
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--data_path", default=None)
    p.add_argument("--batch", type=positive, default=2048, help="train batch size")
    p.add_argument("--eval_batch", type=positive, default=4096)
    p.add_argument("--max_len", type=positive, default=50, help="MAX_ITEM_LIST_LENGTH")
    p.add_argument("--synthetic", action="store_true", help="random sequences instead of a dataset")
    p.add_argument("--n_items", type=positive, default=12102, help="synthetic: item vocabulary")
    p.add_argument("--steps", type=positive, default=3, help="synthetic: timed train steps")
    p.add_argument("--max_batches", type=int, default=0,
                   help="dataset: time this many batches (after a warm-up) and scale to the epoch; 0 = a full epoch")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    for spec in args.models:
        try:
            model_spec(spec)
        except argparse.ArgumentTypeError as e:
            p.error(f"--models {e}")
    return args


def main():
    args = parse_args()
    if args.child:
        from recbole_sigma.malloc import keep_freed_memory

        keep_freed_memory()
        result = (child_synthetic if args.synthetic else child_dataset)(args, args.child)
        print(json.dumps(result))
        return
    for spec in args.models:
        unknown = unknown_keys(args, spec)
        if unknown:
            sys.exit(f"error: --models {spec}: {model_spec(spec)[0]} has no config key {', '.join(unknown)}")
    what = f"synthetic L={args.max_len}" if args.synthetic else f"{args.dataset} L={args.max_len}"
    if args.max_batches and not args.synthetic:
        what += f", train s/epoch = mean of {args.max_batches} batches x batches per epoch"
    print(f"# speed: {what}, train batch {args.batch}, eval batch {args.eval_batch}")
    print(f"# {describe()}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}  python {' '.join(sys.argv)}")
    results = {}
    for model in args.models:
        results[model] = run_child(args, model)
        r = results[model]
        print(f"#   {model}: {r['train_s']:.2f} s ({r['batches']} batches), eval {r['eval_ms']:.0f} ms/batch, "
              f"peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)
    print(table(args, results))


if __name__ == "__main__":
    main()
