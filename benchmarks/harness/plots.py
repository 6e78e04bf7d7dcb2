"""The training curves figure: valid NDCG@10 per epoch of each model's seeds, beside the authors' quoted curves."""
from recbole_sigma.grouped_eval import new_figure, save_figure

from .results import kept_best_epoch

LEGEND_INSIDE = 8  # legend entries the lower right corner holds without hiding the curves


def plot_curves(curves, path, title=None, references=None):
    """Valid NDCG@10 per epoch, one colour per model: ``curves`` is {label: [{epoch: score}, ...]},
    one dict per seed; ``references`` ({label: scores from epoch 0}) are drawn dashed, unmarked."""
    fig, ax = new_figure()
    draw_curves(ax, curves, references)
    ax.set_xlabel("epoch")
    ax.set_ylabel("valid NDCG@10")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if len(curves) + len(references or {}) > LEGEND_INSIDE:  # beside the axes, where it hides no curve
        fig.set_size_inches(9.6, 4.2)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    else:
        ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, ax, path, title)


def draw_curves(ax, curves, references=None):
    """Each seed a line in its model's colour (the legend names the model once), its best epoch
    marked with a dot; then the references, dashed in grey. Past 20 models the colours come round again,
    dash-dotted, then dotted; past 3 references the greys come round in other dashes."""
    from matplotlib import colormaps

    palette = colormaps["tab10" if len(curves) <= 10 else "tab20"].colors  # a colour each, up to 20 models
    for index, (label, runs) in enumerate(curves.items()):
        color = palette[index % len(palette)]
        style = ("-", "-.", ":")[index // len(palette) % 3]  # "--" is the references'
        for seed, scores in enumerate(runs):
            epochs = sorted(scores)
            ax.plot([e + 1 for e in epochs], [scores[e] for e in epochs], linewidth=1.4, color=color,
                    linestyle=style, alpha=1.0 if len(runs) == 1 else 0.75, label=label if seed == 0 else None)
            best = kept_best_epoch(scores)
            ax.plot([best + 1], [scores[best]], marker="o", markersize=4, color=color)
    greys, dashes = ("black", "dimgray", "darkgray"), ((4, 2), (1.5, 1.5), (6, 2, 1, 2))
    for index, (label, scores) in enumerate((references or {}).items()):  # past 3, in other dashes
        color, dash = greys[index % len(greys)], dashes[index // len(greys) % len(dashes)]
        ax.plot(range(1, len(scores) + 1), scores, linestyle=(0, dash), linewidth=1.2, color=color, label=label)
