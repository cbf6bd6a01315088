"""Evaluation reports: a terminal table, and a markdown report with a bar chart of the headline scores."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from cvd_sim.agents.evaluation import HEADLINE, EpisodeResult, aggregate

COLUMNS = ("scenario", "planner", "steps", "end", *HEADLINE)


def table_rows(results: list[EpisodeResult]) -> list[list[str]]:
    """Rows (strings) for every (scenario, planner) episode, then one MEAN row per planner."""
    rows = [
        [r.name, r.planner, str(r.steps), r.end, *(f"{r.scores[k]:.3f}" for k in HEADLINE)] for r in results
    ]
    for planner in dict.fromkeys(r.planner for r in results):
        agg = aggregate([r for r in results if r.planner == planner])
        rows.append(["MEAN", planner, "", "", *(f"{agg[k]:.3f}" for k in HEADLINE)])
    return rows


def format_table(results: list[EpisodeResult]) -> str:
    rows = [list(COLUMNS), *table_rows(results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot_scores(results: list[EpisodeResult], path: Path) -> Path:
    """Grouped bars: one group per scenario, one bar per headline score (per planner, side by side)."""
    planners = list(dict.fromkeys(r.planner for r in results))
    names = list(dict.fromkeys(r.name for r in results))
    fig, axes = plt.subplots(
        len(HEADLINE), 1, figsize=(max(6, 0.9 * len(names) + 2), 2.2 * len(HEADLINE)), sharex=True
    )
    width = 0.8 / len(planners)
    for ax, key in zip(axes, HEADLINE):
        for j, planner in enumerate(planners):
            by_name = {r.name: r.scores[key] for r in results if r.planner == planner}
            ax.bar(
                np.arange(len(names)) + j * width,
                [by_name.get(n, np.nan) for n in names],
                width,
                label=planner,
            )
        ax.set_ylabel(key)
        ax.set_ylim(0, 1.05)
    axes[0].legend(loc="upper right", fontsize="small")
    axes[-1].set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, rotation=30, ha="right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_markdown(results: list[EpisodeResult], out_dir: Path, command: str) -> Path:
    """`out_dir/report.md`: the table, the score plot and links to the videos."""
    out_dir = Path(out_dir)
    plot = plot_scores(results, out_dir / "scores.png")
    lines = [
        "# cvd-sim closed-loop evaluation",
        "",
        f"Command: `{command}`",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    lines += ["", f"![scores]({plot.name})", ""]
    videos = [r for r in results if r.video]
    if videos:
        lines += ["## Videos", ""]
        lines += [
            f"- {r.name} / {r.planner}: [{Path(r.video).name}]({os.path.relpath(r.video, out_dir)})"
            for r in videos
        ]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
