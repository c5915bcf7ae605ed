"""The A/B gate's evidence on disk: ``evidence.json`` (everything) and ``summary.html`` (one page)."""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any

EVIDENCE_FILE = "evidence.json"
SUMMARY_FILE = "summary.html"


def _finite(value: Any) -> Any:
    """Replace NaN and infinities (not JSON) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def write_evidence(out_dir: Path, evidence: dict[str, Any]) -> tuple[Path, Path]:
    """Write the evidence as JSON and an HTML summary into ``out_dir``; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / EVIDENCE_FILE, out_dir / SUMMARY_FILE
    for path, text in (
        (json_path, json.dumps(_finite(evidence), indent=2, sort_keys=True)),
        (html_path, render_summary(evidence)),
    ):
        staging = path.with_suffix(path.suffix + ".tmp")
        staging.write_text(text, encoding="utf-8")
        os.replace(staging, path)
    return json_path, html_path


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _interval(data: dict[str, Any] | None) -> str:
    if not data:
        return "-"
    return f"{_number(data['estimate'])} [{_number(data['low'])}, {_number(data['high'])}]"


def _checks_table(checks: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr class={'pass' if c.get('is_passed') else 'fail'}><td>{html.escape(str(c.get('name')))}</td>"
        f"<td>{'pass' if c.get('is_passed') else 'FAIL'}</td>"
        f"<td>{html.escape(str(c.get('detail', '')))}</td></tr>"
        for c in checks
    )
    return f"<h2>Checks</h2><table><tr><th>check</th><th>result</th><th>detail</th></tr>{rows}</table>"


def _heldout_section(heldout: dict[str, Any]) -> str:
    champion, challenger = heldout.get("champion", {}), heldout.get("challenger", {})
    deltas = {"map_50_95": heldout.get("map_50_95_delta"), "recall_50": heldout.get("recall_50_delta")}
    metrics = "".join(
        f"<tr><td>{key}</td><td>{_number(champion.get(key))}</td><td>{_number(challenger.get(key))}</td>"
        f"<td>{_interval(deltas.get(key))}</td></tr>"
        for key in ("map_50_95", "map_50", "recall_50")
    )
    classes = "".join(
        f"<tr><td>{html.escape(c['class_name'])}</td><td>{c['gt_count']}</td>"
        f"<td>{_number(c['champion_ap_50_95'])}</td><td>{_number(c['challenger_ap_50_95'])}</td>"
        f"<td>{_number(c['delta'])}</td></tr>"
        for c in heldout.get("per_class", [])
    )
    class_table = (
        "<table><tr><th>class</th><th>boxes</th><th>champion AP</th><th>challenger AP</th><th>delta</th></tr>"
        f"{classes}</table>"
        if classes
        else ""
    )
    return (
        f"<h2>Held-out set ({_number(heldout.get('image_count'))} images)</h2>"
        "<table><tr><th>metric</th><th>champion</th><th>challenger</th><th>delta [CI]</th></tr>"
        f"{metrics}</table>{class_table}"
    )


def _live_section(live: dict[str, Any]) -> str:
    variants = "".join(
        f"<tr><td>{v}</td><td>{live['requests'].get(v, 0)}</td><td>{_number(live['p50_ms'].get(v))}</td>"
        f"<td>{_interval(live['p99_ms'].get(v))}</td><td>{_number(live['throughput_per_s'].get(v))}</td>"
        f"<td>{_number(live['mean_score'].get(v))}</td></tr>"
        for v in ("champion", "challenger")
    )
    shadow = live.get("shadow", {})
    return (
        f"<h2>Replayed traffic ({live['frames']} frames, {_number(live['wall_s'])} s)</h2>"
        "<table><tr><th>variant</th><th>answered</th><th>p50 ms</th><th>p99 ms [CI]</th><th>req/s</th>"
        f"<th>mean score</th></tr>{variants}</table>"
        f"<p>Score KS statistic {_number(live['score_ks'])}, mean score shift "
        f"{_number(live['mean_score_shift'])}; shadow agreement on {shadow.get('frames', 0)} frames: "
        f"{html.escape(json.dumps(_finite(shadow.get('mean', {}))))}</p>"
    )


def render_summary(evidence: dict[str, Any]) -> str:
    """Return a self-contained HTML page: decision, checks, held-out and live numbers (those present)."""
    config = evidence.get("config") or {}
    champion = evidence.get("champion_version")
    title = (
        f"{html.escape(str(evidence.get('model_name')))}: v{evidence.get('challenger_version')} vs "
        f"{'champion v' + str(champion) if champion is not None else 'no champion'}: "
        f"{str(evidence.get('decision')).upper()}"
    )
    intervals = (
        f" Intervals: {config['confidence']:.0%} bootstrap ({config['n_resamples']} resamples)."
        if "confidence" in config and "n_resamples" in config
        else ""
    )
    actions = "".join(f"<li>{html.escape(str(a))}</li>" for a in evidence.get("actions", []))
    sections = [_checks_table(evidence.get("checks", []))]
    if evidence.get("heldout"):
        sections.append(_heldout_section(evidence["heldout"]))
    if evidence.get("live"):
        sections.append(_live_section(evidence["live"]))
    if actions:
        sections.append(f"<h2>Actions</h2><ul>{actions}</ul>")
    body = "\n".join(sections)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>A/B gate: {title}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:1.5em}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}.pass td:nth-child(2){{color:#070}}
.fail td:nth-child(2){{color:#b00;font-weight:bold}}</style></head><body>
<h1>{title}</h1>
<p>Decided {html.escape(str(evidence.get("at")))} by {html.escape(str(evidence.get("who")))}.{intervals}</p>
{body}
</body></html>
"""
