"""``ROOT/report.html``: one self-contained page (plotly inlined once, thumbnails as data URIs).

Sections: regression alerts; per-checkpoint table; trends across steps coloured by curriculum
stage with 95 % bootstrap CIs; per-detector score distributions; the worst clips per detector
with thumbnails at their worst frame; exemplar clips per score band (what a score means);
errors. Every text taken from the data (paths, prompts, messages) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalkit.registry import detector_facts
from evalkit.root import RootResults, open_root
from evalkit.store import SQLStore

log = logging.getLogger(__name__)


def format_summary(summary: Any) -> str:
    """Plain-text run summary for the terminal (a :class:`evalkit.batch.RunSummary`)."""
    lines = [f"evalkit run {summary.root}: {summary.computed} results computed, {summary.cached} already stored, "
             f"{len(summary.errors)} errors"]
    for problem in summary.problems:
        lines.append(f"  layout problem: {problem}")
    for error in summary.errors[:20]:
        lines.append(f"  error: {error}")
    if len(summary.errors) > 20:
        lines.append(f"  ... {len(summary.errors) - 20} more errors (see report)")
    df = summary.summary
    if df is not None and len(df):
        table = df.assign(
            cell=[f"{m:.3g} [{lo:.3g},{hi:.3g}] {100 * f:.0f}%" if np.isfinite(m) else "n/a"
                  for m, lo, hi, f in zip(df["mean"], df["ci_low"], df["ci_high"], df["flagged_rate"])]
        ).pivot(index="checkpoint", columns="detector", values="cell")
        table = table.reindex(list(dict.fromkeys(df["checkpoint"])))
        lines.append("mean score [95% CI] flagged% per checkpoint:")
        lines.append(table.to_string())
    aggregates = getattr(summary, "aggregates", None)
    if aggregates is not None and len(aggregates):
        for row in aggregates.to_dict("records"):
            describe = detector_facts(row["detector"]).describe_aggregate
            if describe is not None:
                lines.append(describe(row))
    view = getattr(summary, "view", None)
    if view is not None:
        for row in view.paired.to_dict("records"):  # detectors with a paired score, on shared clips
            lines.append(f"{row['detector']} paired {row['checkpoint']} vs {row['reference']}: {row['mean']:+.3g} "
                         f"[{row['ci_low']:+.3g},{row['ci_high']:+.3g}] over {row['paired']} shared clips, worse in {row['worse']}")
    for regression in summary.regressions:
        lines.append(regression.message())
    if summary.report:
        lines.append(f"report: {summary.report}")
    return "\n".join(lines)


def _thumbnail(path: str, frame: int, max_side: int = 192) -> str | None:
    """JPEG data URI of frame ``frame`` of ``path`` (None if it cannot be read)."""
    import cv2

    from evalkit.video import DecodeOptions, decode_video

    try:
        video = decode_video(path, DecodeOptions(max_side=max_side, max_frames=max(1, frame + 1)))
    except Exception as exc:  # a thumbnail must never break a report
        log.warning("%s: no thumbnail (%s)", path, exc)
        return None
    image = video.numpy_hwc()[min(frame, video.num_frames - 1)]
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode() if ok else None


def _worst_frame(row: pd.Series) -> int:
    events = row.get("events") or []
    if events:
        top = max(events, key=lambda e: e.get("score") or 0)
        return int(top["start"])
    return 0


def _clip_card(row: pd.Series, prompts: dict[str, str]) -> str:
    frame = _worst_frame(row)
    uri = _thumbnail(row["video"], frame)
    img = f'<img src="{uri}" alt="frame {frame}">' if uri else "<div class=noimg>no thumbnail</div>"
    prompt = prompts.get(str(row.get("prompt_id")), "")
    flagged = " flagged" if row.get("flagged") else ""
    return (f'<div class="card{flagged}">{img}<div><b>{row["score"]:.3g}</b> · {html.escape(str(row["checkpoint"]))} · '
            f'frame {frame}</div><div class=path>{html.escape(str(row["video"]))}</div>'
            f'<div class=prompt>{html.escape(prompt)}</div></div>')


def _summary_table(summary: pd.DataFrame, checkpoints: pd.DataFrame) -> str:
    meta = checkpoints.set_index("name")
    cells = summary.assign(cell=[
        "n/a" if not np.isfinite(m) else f"{m:.3g} [{lo:.3g}, {hi:.3g}]<br><small>{100 * f:.0f}% flagged · n={n}</small>"
        for m, lo, hi, f, n in zip(summary["mean"], summary["ci_low"], summary["ci_high"], summary["flagged_rate"], summary["n"])
    ])
    table = cells.pivot(index="checkpoint", columns="detector", values="cell")
    table = table.reindex(list(dict.fromkeys(summary["checkpoint"])))
    head = "".join(f"<th>{html.escape(str(d))}</th>" for d in table.columns)
    rows = []
    for checkpoint, row in table.iterrows():
        stage = meta.loc[checkpoint, "stage"] if checkpoint in meta.index else None
        step = meta.loc[checkpoint, "step"] if checkpoint in meta.index else None
        label = f"{html.escape(str(checkpoint))}<br><small>{html.escape(str(stage or ''))} {'' if step is None or pd.isna(step) else int(step)}</small>"
        rows.append(f"<tr><th>{label}</th>" + "".join(f"<td>{'' if pd.isna(v) else v}</td>" for v in row) + "</tr>")
    return f"<table><tr><th>checkpoint</th>{head}</tr>{''.join(rows)}</table>"


def _aggregate_table(aggregates: pd.DataFrame) -> str:
    def fmt(value: Any) -> str:
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(fmt(v) for v in value) + "]"
        if isinstance(value, float):
            return "" if not np.isfinite(value) else f"{value:.3g}"
        return html.escape("" if value is None else str(value))

    columns = [c for c in aggregates.columns if c not in ("confidence",)]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{fmt(row[c])}</td>" for c in columns) + "</tr>" for _, row in aggregates.iterrows())
    return f"<table><tr>{head}</tr>{body}</table>"


_CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f4f4f4}.alert{background:#fde2e1;
border-left:4px solid #d62728;padding:8px;margin:6px 0}.cards{display:flex;flex-wrap:wrap;gap:10px}.card{width:200px;
font-size:12px;border:1px solid #ddd;padding:4px}.card.flagged{border-color:#d62728}.card img{max-width:192px}
.path{color:#666;word-break:break-all}.prompt{font-style:italic}.err{font-family:monospace;font-size:12px}"""


def write_report(root: str | Path | RootResults, store: SQLStore | None = None, worst_n: int = 6) -> Path:
    """Write ``ROOT/report.html`` from a root's results (a path, read through
    :func:`evalkit.root.open_root`, or one already open) and return its path."""
    board = root if isinstance(root, RootResults) else open_root(root, store=store)
    root, layout, results, summary, checkpoints = board.root, board.layout, board.results, board.summary, board.checkpoints
    prompts = {k: v.prompt for k, v in layout.prompts.items()}
    parts = [f"<!doctype html><html><head><meta charset=utf-8><title>evalkit report: {html.escape(root.name)}</title>"
             f"<style>{_CSS}</style></head><body><h1>evalkit report: {html.escape(str(root))}</h1>"]
    parts.append(f"<p>{len(layout.checkpoints)} checkpoints, {len(layout.items)} videos, {len(results)} stored results, "
                 f"{len(board.errors)} errors recorded.</p>")
    if board.regressions:
        parts.append("<h2>Regression alerts</h2>" + "".join(
            f"<div class=alert>{html.escape(r.message())}</div>" for r in board.regressions))
    for problem in layout.problems:
        parts.append(f"<div class=alert>layout problem: {html.escape(str(problem))}</div>")
    if len(summary):
        parts.append("<h2>Per checkpoint</h2><p>Mean score [95% bootstrap CI], share of clips flagged, clips scored. "
                     "Direction per detector: " + html.escape(", ".join(
                         f"{d} ({detector_facts(d).direction})"
                         for d in sorted(summary["detector"].unique()))) + "</p>")
        parts.append(_summary_table(summary, checkpoints))
        aggregates = board.aggregates
        if len(aggregates):
            parts.append("<h2>Checkpoint-level verdicts</h2><p>Pooled over each checkpoint's clips.</p>")
            parts.append(_aggregate_table(aggregates))
        paired = board.paired
        if len(paired):
            parts.append("<h2>Paired with the previous checkpoint</h2><p>Clips with the same prompt id and seed: "
                         "the detector's paired score (expression: log2 of how much further faces deform), mean "
                         "[95% bootstrap CI], and in how many clips the checkpoint is worse.</p>")
            parts.append(_aggregate_table(paired))
        for i, fig in enumerate(board.figures()):
            parts.append(fig.to_html(full_html=False, include_plotlyjs=i == 0))  # plotly.js inlined once
        parts.append("<h2>Worst clips per detector</h2>")
        for detector in sorted(results["detector"].unique()):
            worst = board.worst_clips(detector, worst_n)
            parts.append(f"<h3>{html.escape(str(detector))}</h3><p>{html.escape(detector_facts(detector).score_meaning)}</p><div class=cards>")
            parts.extend(_clip_card(row, prompts) for _, row in worst.iterrows())
            parts.append("</div>")
            part = results[results["detector"] == detector].dropna(subset=["score"])
            if len(part) >= 3:
                parts.append("<p>Exemplars per score band (low / middle / high third): what a score looks like.</p><div class=cards>")
                scores = part["score"].to_numpy(float)
                for low, high in ((0, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 1)):
                    lo, hi = np.quantile(scores, [low, high])
                    band = part[(part["score"] >= lo) & (part["score"] <= hi)]
                    if len(band):
                        mid = band.iloc[(band["score"] - band["score"].median()).abs().argsort().iloc[0]]
                        parts.append(_clip_card(mid, prompts))
                parts.append("</div>")
    if len(board.errors):
        parts.append("<h2>Errors</h2>" + "".join(
            f"<div class=err>{html.escape(str(e.detector))}: {html.escape(str(e.message))}</div>" for e in board.errors.itertuples()))
    parts.append("</body></html>")
    path = root / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(path)  # readers never see a half-written report
    return path
