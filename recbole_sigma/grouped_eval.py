"""HR/NDCG/MRR@10 by user history length (the SIGMA paper's Fig. 3), from RecBole's own evaluation.

    python -m recbole_sigma.grouped_eval saved/SIGMA-xxx.pth [more.pth ...] [--plot groups.png] [--json out.json]

Users are grouped by their history length: the number of their interactions before the test target,
counted over the whole (filtered) sequence, not truncated by ``MAX_ITEM_LIST_LENGTH``. The paper's
groups are Short (<= 5), Medium (6-20) and Long (> 20); ``--bounds`` changes the 5 and 20.

The ranking is RecBole's full-sort evaluation of the test split, step for step: the model's
``full_sort_predict`` on the ``FullSortEvalDataLoader``'s batches, the padding item 0 and the
loader's ``history_index`` set to -inf (``Trainer._full_sort_batch_eval``), ``torch.topk`` and the
positive mask as the ``Collector`` builds them, and RecBole's own ``Hit``/``NDCG``/``MRR``
per-user formulas. So the group metrics, weighted by group size, equal RecBole's overall test
metric (before RecBole rounds it to ``metric_decimal_place``).

Note: for sequential models RecBole's loader gives ``history_index = None``: items the user has
already seen are *not* masked, so this module does not mask them either.
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

DEFAULT_BOUNDS = (5, 20)
GROUP_NAMES = ("short", "medium", "long")
METRICS = ("hit", "ndcg", "mrr")


def group_labels(bounds=DEFAULT_BOUNDS):
    """{'short': '<= 5', 'medium': '6-20', 'long': '> 20'} for bounds (5, 20)."""
    low, high = bounds
    return {"short": f"<= {low}", "medium": f"{low + 1}-{high}", "long": f"> {high}"}


def assign_groups(lengths, bounds=DEFAULT_BOUNDS):
    """Group index of each history length: 0 short (<= low), 1 medium (low+1 .. high), 2 long (> high)."""
    low, high = bounds
    if not 0 <= low < high:
        raise ValueError(f"bounds must be two integers 0 <= low < high, not {bounds}")
    return np.searchsorted(np.array([low, high]), np.asarray(lengths), side="left")


def _dataset(data):
    """A RecBole dataset from a dataset or a dataloader."""
    return getattr(data, "_dataset", data)


def history_lengths(train, valid, test):
    """Untruncated history length of every test row, in the test split's order.

    RecBole's sequential augmentation makes one row per interaction after a user's first (its
    target, with the items before it), and with ``eval_args.order: TO`` the train, valid and test
    splits hold each user's rows in time order. A test row's history length is therefore 1 + the
    user's rows in train and valid + the user's earlier test rows. Checked against RecBole's own
    (truncated) ``item_length`` field: they agree for every row, or this raises.
    """
    train, valid, test = (_dataset(d) for d in (train, valid, test))
    uid_field = test.uid_field
    n_users = test.user_num
    before = np.zeros(n_users, dtype=np.int64)
    for split in (train, valid):
        if split is not None and len(split) > 0:
            before += np.bincount(split.inter_feat[uid_field].numpy(), minlength=n_users)
    test_uid = test.inter_feat[uid_field].numpy()
    order = np.argsort(test_uid, kind="stable")
    sorted_uid = test_uid[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_uid)) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(sorted_uid)]))
    earlier = np.empty_like(test_uid)
    earlier[order] = np.arange(len(sorted_uid)) - run_start
    hist = 1 + before[test_uid] + earlier

    truncated = test.inter_feat[test.item_list_length_field].numpy()
    max_len = test.config["MAX_ITEM_LIST_LENGTH"]
    if not np.array_equal(np.minimum(hist, max_len), truncated):
        bad = int(np.sum(np.minimum(hist, max_len) != truncated))
        raise ValueError(
            f"history lengths disagree with RecBole's item_length for {bad} of {len(hist)} test rows: "
            "grouped evaluation needs the sequential splits in time order "
            f"(eval_args order 'TO'; this run has {test.config['eval_args'].get('order')!r})"
        )
    return hist


def per_user_metrics(pos_index, pos_len, k=10):
    """RecBole's per-user Hit/NDCG/MRR@k from the Collector's ``rec.topk`` columns.

    pos_index: bool (n_users, >= k), True where the ranked item is a positive; pos_len: (n_users,).
    Returns {'hit@k': array, 'ndcg@k': array, 'mrr@k': array}.
    """
    from recbole.evaluator.metrics import MRR, NDCG, Hit

    pos_index = np.asarray(pos_index, dtype=bool)
    pos_len = np.asarray(pos_len).astype(np.int64)
    cfg = {"topk": [pos_index.shape[1]], "metric_decimal_place": 4}
    return {
        f"hit@{k}": Hit(cfg).metric_info(pos_index)[:, k - 1].astype(np.float64),
        f"ndcg@{k}": NDCG(cfg).metric_info(pos_index, pos_len)[:, k - 1].astype(np.float64),
        f"mrr@{k}": MRR(cfg).metric_info(pos_index)[:, k - 1].astype(np.float64),
    }


def group_metrics(lengths, user_metrics, bounds=DEFAULT_BOUNDS):
    """Mean of each per-user metric inside each group, the group sizes, and the overall mean.

    Returns {'bounds', 'groups': {name: {'label', 'users', metric: mean}}, 'overall': {...}}; an
    empty group has its metrics as None.
    """
    lengths = np.asarray(lengths)
    groups = assign_groups(lengths, bounds)
    labels = group_labels(bounds)
    result = {"bounds": list(bounds), "groups": {}, "overall": {"users": int(len(lengths))}}
    for index, name in enumerate(GROUP_NAMES):
        mask = groups == index
        entry = {"label": labels[name], "users": int(mask.sum())}
        for metric, values in user_metrics.items():
            entry[metric] = float(values[mask].mean()) if mask.any() else None
        result["groups"][name] = entry
    for metric, values in user_metrics.items():
        result["overall"][metric] = float(values.mean()) if len(values) else None
    return result


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _full_sort_scores(model, interaction, history_index, n_items, device):
    """``Trainer._full_sort_batch_eval``'s scores for one batch (full_sort_predict path)."""
    try:
        scores = model.full_sort_predict(interaction.to(device))
    except NotImplementedError:
        raise ValueError(f"{type(model).__name__} has no full_sort_predict: grouped evaluation needs one") from None
    scores = scores.view(-1, n_items)
    scores[:, 0] = -np.inf
    if history_index is not None:
        scores[history_index] = -np.inf
    return scores


@torch.no_grad()
def evaluate(model, config, train_data, valid_data, test_data, k=10, bounds=DEFAULT_BOUNDS, time_batches=False):
    """Grouped full-sort test metrics of a trained RecBole model.

    The data are the three dataloaders of ``data_preparation`` (or ``load_data_and_model``).
    With ``time_batches`` one untimed warm-up batch runs first (JIT compilation, caches), then
    each batch's scoring (the model's full-sort forward and the masking) is timed.
    Returns the ``group_metrics`` dict plus 'model', 'dataset', 'k', 'max_item_list_length',
    'history' (mean / max history length) and, when timed, 'eval' (ms per batch).
    """
    from recbole.data.dataloader import FullSortEvalDataLoader

    if not isinstance(test_data, FullSortEvalDataLoader):
        raise ValueError("grouped evaluation needs full-sort evaluation (eval_args mode: full)")
    dataset = _dataset(test_data)
    if not hasattr(dataset, "item_list_length_field"):
        raise ValueError("grouped evaluation is for sequential models (history lengths of a sequential dataset)")
    model.eval()
    topk = max(max(config["topk"] or [k]), k)  # the Collector's torch.topk(scores, max(topk))
    ranked = _rank_test_split(model, config["device"], test_data, topk, time_batches)
    if not np.array_equal(ranked["uids"], dataset.inter_feat[dataset.uid_field].numpy()):
        raise RuntimeError("the test loader's rows are not in the test split's order")
    hist = history_lengths(train_data, valid_data, test_data)
    report = group_metrics(hist, per_user_metrics(ranked["pos_index"], ranked["pos_len"], k), bounds)
    report.update(
        model=config["model"],
        dataset=config["dataset"],
        k=k,
        max_item_list_length=config["MAX_ITEM_LIST_LENGTH"],
        history={"mean": float(hist.mean()), "max": int(hist.max())},
    )
    if time_batches:
        report["eval"] = _timing_report(config, ranked["timings"], ranked["sizes"])
    return report


def _rank_test_split(model, device, test_data, topk, time_batches):
    """RecBole's full-sort ranking of every test row: {'pos_index' (rows, topk) bool, 'pos_len' (rows,),
    'uids' (rows,), 'timings' (ms per batch), 'sizes' (users per batch)}."""
    dataset = _dataset(test_data)
    n_items, uid_field = dataset.item_num, dataset.uid_field
    if time_batches:  # the untimed warm-up batch
        batch = next(iter(test_data))
        _full_sort_scores(model, batch[0], batch[1], n_items, device)
    rows, lens, uids, timings, sizes = [], [], [], [], []
    for interaction, history_index, positive_u, positive_i in test_data:
        _sync(device)
        start = time.perf_counter()
        scores = _full_sort_scores(model, interaction, history_index, n_items, device)
        _sync(device)
        timings.append((time.perf_counter() - start) * 1000.0)
        sizes.append(len(interaction))
        _, topk_idx = torch.topk(scores, topk, dim=-1)
        pos_matrix = torch.zeros_like(scores, dtype=torch.int)
        pos_matrix[positive_u, positive_i] = 1
        pos_len = pos_matrix.sum(dim=1, keepdim=True)
        rows.append(torch.gather(pos_matrix, dim=1, index=topk_idx).cpu())
        lens.append(pos_len.squeeze(-1).cpu())
        uids.append(interaction[uid_field].cpu())
    return {"pos_index": torch.cat(rows).numpy().astype(bool), "pos_len": torch.cat(lens).numpy(),
            "uids": torch.cat(uids).numpy(), "timings": timings, "sizes": sizes}


def _timing_report(config, timings, sizes):
    """The 'eval' entry of a timed report."""
    full = [t for t, n in zip(timings, sizes) if n == sizes[0]]
    return {
        "batch_size": int(config["eval_batch_size"]),
        "batch_users": int(sizes[0]),  # users in the timed (full) batches: fewer if the test split is smaller
        "batches": len(timings),
        "ms_per_batch": float(np.mean(full)),  # full-size batches; the last one is smaller
        "batch_ms": [round(t, 3) for t in timings],
        "device": str(config["device"]),
    }


def evaluate_checkpoint(path, k=10, bounds=DEFAULT_BOUNDS, time_batches=False):
    """``evaluate`` on a checkpoint RecBole saved (ours or RecBole's models)."""
    from recbole_sigma.pipeline import load_data_and_model

    config, model, _dataset_, train_data, valid_data, test_data = load_data_and_model(str(path))
    report = evaluate(model, config, train_data, valid_data, test_data, k, bounds, time_batches)
    report["checkpoint"] = str(path)
    return report


def _fmt(value, digits=4):
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def format_table(reports, k=10):
    """A Markdown table: one row per model; per group (and all users) a cell "HR / NDCG / MRR @k".

    reports: {label: report}. The header gives each group's users (from the first report).
    """
    first = next(iter(reports.values()))
    metrics = [f"{m}@{k}" for m in METRICS]
    entries = lambda report: [report["groups"][g] for g in GROUP_NAMES] + [report["overall"]]  # noqa: E731
    header = [f"model: HR / NDCG / MRR @{k}"]
    for name, entry in zip(GROUP_NAMES + ("all",), entries(first)):
        label = f", {entry['label']}" if entry.get("label") else ""
        header.append(f"{name}{label} ({entry['users']} users)")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for label, report in reports.items():
        cells = [label] + [" / ".join(_fmt(entry.get(m)) for m in metrics) for entry in entries(report)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_groups(reports, path, metric="hit@10", title=None):
    """The paper's Fig. 3: bars = users per group (left axis), one line per model = metric (right axis).

    reports: {label: report}. Uses matplotlib's Agg canvas (no display, no global backend change).
    """
    first = next(iter(reports.values()))
    x = np.arange(len(GROUP_NAMES))
    fig, ax = new_figure()
    users = [first["groups"][g]["users"] for g in GROUP_NAMES]
    bars = ax.bar(x, users, width=0.55, color="#c9d6ea", edgecolor="#7f93b3", label="users")
    ax.bar_label(bars, labels=[str(n) for n in users], label_type="center", fontsize=8, color="#4a5d7e")
    ax.set_ylabel("users")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{g.capitalize()} ({first['groups'][g]['label']})" for g in GROUP_NAMES])
    ax.set_xlabel("history length (interactions before the test item)")
    right = ax.twinx()
    markers = "osD^v<>pP*hX"
    for i, (label, report) in enumerate(reports.items()):
        values = [report["groups"][g].get(metric) for g in GROUP_NAMES]
        values = [np.nan if v is None else v for v in values]
        right.plot(x, values, marker=markers[i % len(markers)], linewidth=1.8, label=label)
    name = {"hit": "HR", "ndcg": "NDCG", "mrr": "MRR"}.get(metric.split("@")[0], metric)
    right.set_ylim(bottom=0)
    right.set_ylabel(f"{name}@{metric.split('@')[1]}" if "@" in metric else metric)
    right.legend(loc="best", fontsize=8)
    return save_figure(fig, ax, path, title)


def new_figure():
    """A 6.4 x 4.2 in figure on matplotlib's Agg canvas (no display, no global backend change) and its axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def save_figure(fig, ax, path, title=None):
    """Title ``ax``, lay ``fig`` out and write it to ``path`` (PNG, 120 dpi); the path as a string."""
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(str(path), dpi=120)
    return str(path)


def _labels(reports_in_order, given=None):
    """One distinct label a checkpoint (its rows are keyed by it): the model's name; where two share it,
    with the file's name, then its path, then its place in the list."""
    if given:
        return list(given)
    names = [r["model"] for r, _ in reports_in_order]
    labels = [name if names.count(name) == 1 else f"{name} ({Path(path).stem})"
              for name, (_, path) in zip(names, reports_in_order)]
    if len(set(labels)) < len(labels):  # the same file name in two folders (two runs' -best.pth)
        labels = [label if labels.count(label) == 1 else f"{name} ({path})"
                  for label, name, (_, path) in zip(labels, names, reports_in_order)]
    if len(set(labels)) < len(labels):  # the same file twice
        labels = [f"{label} #{i}" for i, label in enumerate(labels, 1)]
    return labels


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m recbole_sigma.grouped_eval",
        description="HR/NDCG/MRR@10 of saved RecBole checkpoints by user history length (SIGMA Fig. 3).",
    )
    parser.add_argument("checkpoints", nargs="+", help=".pth files RecBole saved (e.g. saved/SIGMA-xxx.pth)")
    parser.add_argument("--plot", help="write the figure (PNG): bars = users per group, lines = HR@10 per model")
    parser.add_argument("--metric", default="hit@10", help="metric of the plot's lines (default hit@10)")
    parser.add_argument("--json", help="write the reports as JSON")
    parser.add_argument("--labels", nargs="+", help="one name per checkpoint (default: the model names)")
    parser.add_argument("--bounds", nargs=2, type=int, default=list(DEFAULT_BOUNDS), metavar=("SHORT", "MEDIUM"),
                        help="short <= SHORT < medium <= MEDIUM < long (default 5 20)")
    parser.add_argument("--time", action="store_true", help="also time the full-sort scoring per test batch")
    args = parser.parse_args(argv)
    metric = args.metric.lower().replace("hr@", "hit@")
    if metric not in [f"{m}@10" for m in METRICS]:
        parser.error(f"--metric {args.metric!r}: expected one of {', '.join(f'{m}@10' for m in METRICS)}")
    if not 0 <= args.bounds[0] < args.bounds[1]:
        parser.error(f"--bounds {args.bounds[0]} {args.bounds[1]}: expected two integers 0 <= SHORT < MEDIUM")
    if args.labels and len(args.labels) != len(args.checkpoints):
        parser.error("--labels needs one name per checkpoint")
    if args.labels and len(set(args.labels)) < len(args.labels):
        parser.error("--labels names a checkpoint's label twice (its rows would replace the other's)")
    for path in args.checkpoints:
        if not Path(path).is_file():
            print(f"error: checkpoint {path!r} does not exist", file=sys.stderr)
            return 2
    import recbole_sigma  # noqa: F401  (RecBole fixes for today's stack)
    from recbole_sigma.errors import RecBoleSigmaError

    done = []
    for path in args.checkpoints:
        try:
            done.append((evaluate_checkpoint(path, bounds=tuple(args.bounds), time_batches=args.time), path))
        except (RecBoleSigmaError, ValueError) as e:  # not a checkpoint, not a sequential full-sort model, ...
            print(f"error: {path}: {' '.join(str(e).split())}", file=sys.stderr)
            return 2
    reports = dict(zip(_labels(done, args.labels), (r for r, _ in done)))
    datasets = {r["dataset"] for r in reports.values()}
    if len(datasets) > 1:
        print(f"warning: the checkpoints are on different datasets ({', '.join(sorted(datasets))})", file=sys.stderr)
    print(format_table(reports))
    for label, report in reports.items():
        if "eval" in report:
            timing = report["eval"]
            print(f"{label}: {timing['ms_per_batch']:.1f} ms per test batch of {timing['batch_users']} users")
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2))
    if args.plot:
        plot_groups(reports, args.plot, metric=metric)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
