"""Score distributions as PNG, drawn with matplotlib's headless Agg backend (no display)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

_BINS = [float(b) for b in range(0, 105, 5)]
_SERIES = (("otrf", False, "OTRF background", "tab:blue"),
           ("otrf", True, "OTRF adversary", "tab:red"),
           ("evtx", True, "EVTX-ATTACK-SAMPLES (all attack)", "tab:orange"))  # fmt: skip


def plot_windows(windows: pl.DataFrame, path: Path, thresholds: tuple[float, ...]) -> Path:
    """Histogram of window scores per corpus and side, the alert bands as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for corpus, attack, label, colour in _SERIES:
        part = windows.filter((pl.col("corpus") == corpus) & (pl.col("attack") == attack))
        if part.height:
            scores = part.get_column("score").to_list()
            ax.hist(scores, bins=_BINS, histtype="step", linewidth=1.8, color=colour,
                    weights=[100.0 / len(scores)] * len(scores),
                    label=f"{label} ({len(scores):,} windows)")  # fmt: skip
    for t, name in zip(thresholds, ("alert", "high", "critical"), strict=False):
        ax.axvline(t, color="grey", linestyle="--", linewidth=1)
        ax.text(t + 0.5, ax.get_ylim()[1] * 0.95, name, fontsize=8, color="grey")
    ax.set(xlabel="ensemble score (highest per host, minute and side)",
           ylabel="% of windows", xlim=(0, 100),
           title="Endpoint ensemble: adversary vs background windows")  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
