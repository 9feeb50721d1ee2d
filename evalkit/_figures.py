"""Plotly figures of a root's results (imported only when figures are asked for: plotly is slow to import)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from evalkit.aggregate import checkpoint_order
from evalkit.layout import STAGES

STAGE_COLOURS = dict(zip(STAGES, ["#7f7f7f", "#1f77b4", "#2ca02c", "#ff7f0e", "#d62728"]))


def figures(summary: pd.DataFrame, results: pd.DataFrame, checkpoints: pd.DataFrame) -> list[Any]:
    """Plotly figures: trends across steps coloured by stage (with CIs), score distributions."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    out = []
    detectors = sorted(summary["detector"].unique())
    if not detectors:
        return out
    meta = checkpoints.set_index("name")
    order = checkpoint_order(checkpoints)
    x_of = {c: (meta.loc[c, "step"] if c in meta.index and pd.notna(meta.loc[c, "step"]) else i) for i, c in enumerate(order)}
    trends = make_subplots(rows=len(detectors), cols=1, shared_xaxes=True, subplot_titles=detectors,
                           vertical_spacing=min(0.08, 0.3 / max(1, len(detectors))))
    seen_stage: set[str] = set()
    for r, detector in enumerate(detectors, start=1):
        part = summary[summary["detector"] == detector]
        trends.add_trace(go.Scatter(x=[x_of[c] for c in part["checkpoint"]], y=part["mean"], mode="lines",
                                    line={"color": "#bbbbbb"}, showlegend=False, hoverinfo="skip"), row=r, col=1)
        for stage in [*STAGES, None]:
            names = [c for c in part["checkpoint"] if (meta.loc[c, "stage"] if c in meta.index else None) == stage
                     or (stage is None and (c not in meta.index or pd.isna(meta.loc[c, "stage"])))]
            sel = part[part["checkpoint"].isin(names)]
            if sel.empty:
                continue
            label = stage or "unknown stage"
            trends.add_trace(go.Scatter(
                x=[x_of[c] for c in sel["checkpoint"]], y=sel["mean"], mode="markers", name=label,
                legendgroup=label, showlegend=label not in seen_stage,
                marker={"size": 10, "color": STAGE_COLOURS.get(stage or "", "#9467bd")},
                error_y={"type": "data", "symmetric": False, "array": sel["ci_high"] - sel["mean"],
                         "arrayminus": sel["mean"] - sel["ci_low"]},
                text=sel["checkpoint"], hovertemplate="%{text}: %{y:.3g}<extra>" + label + "</extra>"), row=r, col=1)
            seen_stage.add(label)
    trends.update_layout(height=260 * len(detectors), title="Mean score per checkpoint (95% bootstrap CI), by training step",
                         margin={"t": 60, "b": 30})
    out.append(trends)
    dist = make_subplots(rows=1, cols=len(detectors), subplot_titles=detectors)
    for c, detector in enumerate(detectors, start=1):
        part = results[results["detector"] == detector]
        for checkpoint in order:
            values = part.loc[part["checkpoint"] == checkpoint, "score"].dropna()
            if len(values):
                dist.add_trace(go.Box(y=values, name=str(checkpoint), showlegend=False, boxpoints="all",
                                      jitter=0.3, marker={"size": 4}), row=1, col=c)
    dist.update_layout(height=380, title="Score distributions per checkpoint", margin={"t": 60, "b": 30})
    out.append(dist)
    return out
