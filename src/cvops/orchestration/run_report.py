"""The run report of a local pipeline run: the page a person opens to see what one loop iteration did.

One self-contained HTML file (figures inlined): the chain of steps with timings, every step's
returned values and logged metrics, links to the evaluation report and the A/B gate's evidence,
the decision, and where to look further (MLflow, Label Studio).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cvops.orchestration.kfp_runner import LocalRun, TaskRecord

REPORT_FILE = "run_report.html"
SUMMARY_FILE = "run_summary.json"


def task_values(task: TaskRecord) -> dict[str, Any]:
    """Return a task's returned parameters and its artifacts' metadata, flattened by name."""
    values: dict[str, Any] = dict(task.outputs.get("parameterValues", {}))
    for name, group in task.outputs.get("artifacts", {}).items():
        for artifact in group.get("artifacts", []):
            for key, value in artifact.get("metadata", {}).items():
                if key != "display_name":
                    values[f"{name}.{key}"] = value
    return values


def task_artifacts(task: TaskRecord) -> dict[str, str]:
    """Return a task's artifact URIs by output name."""
    found: dict[str, str] = {}
    for name, group in task.outputs.get("artifacts", {}).items():
        for artifact in group.get("artifacts", []):
            found[name] = str(artifact.get("uri", ""))
    return found


def write_run_report(run: LocalRun, out_dir: Path, links: Mapping[str, str] | None = None) -> Path:
    """Write ``run_report.html`` and ``run_summary.json`` for ``run`` into ``out_dir``; return the HTML path.

    Args:
        run: The finished local run.
        out_dir: Folder for the report.
        links: Where to look further, by label (e.g. ``{"MLflow": "mlflow ui --backend-store-uri ..."}``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        "pipeline": run.pipeline,
        "run_dir": str(run.run_dir),
        "succeeded": run.is_succeeded,
        "error": run.error,
        "elapsed_s": round(run.elapsed_s, 1),
        "outputs": run.outputs,
        "tasks": [
            {
                "name": t.name,
                "duration_s": None if t.duration_s is None else round(t.duration_s, 1),
                "values": task_values(t),
                "artifacts": task_artifacts(t),
            }
            for t in run.tasks
        ],
        "links": dict(links or {}),
    }
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    target = out_dir / REPORT_FILE
    target.write_text(_page(run, summary), encoding="utf-8")
    return target


def _page(run: LocalRun, summary: dict[str, Any]) -> str:
    status = "succeeded" if run.is_succeeded else f"FAILED: {run.error}"
    decision = _decision(run.tasks)
    rows = "".join(_task_row(task) for task in summary["tasks"])
    pages = "".join(
        f'<li><a href="{html.escape(Path(uri).as_uri())}/{page}">{html.escape(task.name)}: {page}</a></li>'
        for task in run.tasks
        for uri in task_artifacts(task).values()
        for page in ("report.html", "summary.html")
        if uri and (Path(uri) / page).is_file()
    )
    links = "".join(
        f"<li><b>{html.escape(k)}</b>: <code>{html.escape(v)}</code></li>"
        for k, v in summary["links"].items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cvops run report: {html.escape(run.pipeline)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}code{{font-size:90%}}
.decision{{font-size:140%;font-weight:bold}}</style></head><body>
<h1>{html.escape(run.pipeline)}</h1>
<p>Run {status} in {run.elapsed_s:.0f} s. Artifacts: <code>{html.escape(str(run.run_dir))}</code></p>
<p class="decision">Decision: {html.escape(decision)}</p>
<h2>The chain</h2>
<img alt="step timings" src="data:image/png;base64,{_timeline_png(run.tasks)}">
<table><tr><th>step</th><th>time</th><th>results</th></tr>{rows}</table>
<h2>Reports</h2><ul>{pages or "<li>none written</li>"}</ul>
<h2>Where to look further</h2><ul>{links or "<li>nothing configured</li>"}</ul>
</body></html>
"""


def _decision(tasks: Sequence[TaskRecord]) -> str:
    for task in tasks:
        value = task.outputs.get("parameterValues", {}).get("decision")
        if value is not None:
            return str(value)
    return "none (the gate did not run)"


def _task_row(task: Mapping[str, Any]) -> str:
    took = "unfinished" if task["duration_s"] is None else f"{task['duration_s']:.1f} s"
    values = "<br>".join(
        f"{html.escape(str(k))} = {html.escape(_short(v))}" for k, v in sorted(task["values"].items())
    )
    return f"<tr><td>{html.escape(task['name'])}</td><td>{took}</td><td>{values}</td></tr>"


def _short(value: Any) -> str:
    text = (
        f"{value:.4g}"
        if isinstance(value, float)
        else json.dumps(value, default=str)
        if not isinstance(value, str)
        else value
    )
    return text if len(text) <= 160 else text[:157] + "..."


def _timeline_png(tasks: Sequence[TaskRecord]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = min((t.started_at for t in tasks), default=0.0)
    figure, axes = plt.subplots(figsize=(9, 0.35 * max(len(tasks), 1) + 1))
    for row, task in enumerate(tasks):
        end = task.finished_at if task.finished_at is not None else task.started_at
        axes.barh(row, max(end - task.started_at, 0.1), left=task.started_at - start, color="tab:blue")
    axes.set_yticks(range(len(tasks)), [t.name for t in tasks])
    axes.invert_yaxis()
    axes.set_xlabel("seconds since the run started")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
