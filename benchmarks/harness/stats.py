"""Over seeds: mean and sample standard deviation, their table cell, the one-sided Welch and paired
tests and their cell, where one more seed would land, and the grouped metrics' means."""
import math
import warnings

from .jobs import METRICS


def mean_std(values):
    """(mean, sample std) of the values that are not None; std None for one value, both None for none."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return mean, std


def fmt(values, digits=4):
    """``mean ± std`` (``mean`` alone for one value, ``-`` for none)."""
    mean, std = mean_std(values)
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def welch_p(a, b):
    """One-sided Welch t-test p-value for mean(a) > mean(b); None with fewer than 2 values in either."""
    from scipy import stats

    a, b = [x for x in a if x is not None], [x for x in b if x is not None]
    if len(a) < 2 or len(b) < 2:
        return None
    with warnings.catch_warnings():  # scipy warns on (near-)constant samples; their p is nan or extreme
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue)
    return None if math.isnan(p) else p


def paired_p(a, b):
    """One-sided paired t-test p-value for mean(a - b) > 0 over the pairs (a[i], b[i]) with neither None
    (``scipy.stats.ttest_rel(alternative='greater')``); None with fewer than 2 pairs or every difference 0.
    Every difference the same and not 0 (no spread: t is infinite): 0.0 if it is positive, else 1.0."""
    from scipy import stats

    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    differences = {round(x - y, 12) for x, y in pairs}  # (equal up to float noise)
    if len(pairs) < 2 or differences == {0}:
        return None
    if len(differences) == 1:
        return 0.0 if differences.pop() > 0 else 1.0
    p = float(stats.ttest_rel(*zip(*pairs), alternative="greater").pvalue)
    return None if math.isnan(p) else p


def one_more_seed(values, x, level=0.95):
    """Where one more seed would land, seeds taken as normal draws: the two-sided ``level`` prediction
    interval mean ± t(n-1) s sqrt(1 + 1/n), and the one-sided p of a seed reaching ``x`` or more,
    P(T(n-1) >= (x - mean) / (s sqrt(1 + 1/n))). None with fewer than 2 values or no spread."""
    from scipy import stats

    values = [v for v in values if v is not None]
    mean, std = mean_std(values)
    if std is None or std == 0:
        return None
    n = len(values)
    scale = std * math.sqrt(1 + 1 / n)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * scale
    return (mean - half, mean + half), float(stats.t.sf((x - mean) / scale, n - 1))


def fmt_p(p):
    """A p-value's table cell: 3 decimals, scientific below 0.001, ``-`` for None, and ``0 (no spread)`` for
    :func:`paired_p`'s 0 (every pair differs by the same positive amount)."""
    if p is None:
        return "-"
    return "0 (no spread)" if p == 0 else f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def fmt_change(value, base):
    """``value`` relative to ``base`` as a table cell: ``+x.x %``, ``-`` where either is None."""
    return "-" if value is None or base is None else f"{100 * (value / base - 1):+.1f} %"


def grouped_means(rows):
    """The mean over seeds of each group's metrics, as a grouped_eval report (for its table and plot)."""
    from recbole_sigma.grouped_eval import GROUP_NAMES

    first = rows[0]["grouped"]
    report = {"model": first["model"], "dataset": first["dataset"], "groups": {}, "overall": {}}
    for group in GROUP_NAMES + ("overall",):
        entries = [r["grouped"]["groups"][group] if group != "overall" else r["grouped"]["overall"] for r in rows]
        merged = {"label": entries[0].get("label"), "users": entries[0]["users"]}
        for metric in METRICS:
            merged[metric] = mean_std([e.get(metric) for e in entries])[0]
        if group == "overall":
            report["overall"] = merged
        else:
            report["groups"][group] = merged
    return report
