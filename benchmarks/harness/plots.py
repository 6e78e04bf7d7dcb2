"""The training curves figure: valid NDCG@10 per epoch of each job, beside the authors' quoted curves."""
from recbole_sigma.grouped_eval import new_figure, save_figure


def plot_curves(curves, path, title=None, references=None):
    """Valid NDCG@10 per epoch, one line per job, its best epoch marked: {label: {epoch: score}};
    ``references`` ({label: scores from epoch 0}) are drawn dashed, unmarked."""
    fig, ax = new_figure()
    for label, scores in curves.items():
        epochs = sorted(scores)
        line, = ax.plot([e + 1 for e in epochs], [scores[e] for e in epochs], linewidth=1.6, label=label)
        best = min(epochs, key=lambda e: (-scores[e], e))  # RecBole keeps the first best
        ax.plot([best + 1], [scores[best]], marker="o", color=line.get_color())
    for (label, scores), color in zip((references or {}).items(), ("black", "dimgray", "darkgray")):
        ax.plot(range(1, len(scores) + 1), scores, linestyle="--", linewidth=1.2, color=color, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("valid NDCG@10")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, ax, path, title)
