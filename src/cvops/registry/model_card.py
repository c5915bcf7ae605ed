"""Model cards: one page per registered version, in Markdown and HTML, built from its tags.

Sections: summary, data and lineage, metrics, per-class results (``per_class/<class>/<metric>``
metrics), export variants and their results (``variant/<variant>/<metric>``, e.g. latency),
then *Intended use* and *Limitations* from a template whose ``$placeholders`` are filled from the
version (``$name``, ``$version``, ``$classes``, ``$class_count``, ``$input_size``, ``$family``,
``$precision``, ``$dataset_version``, ``$dataset_uri``, ...; unknown values read ``unknown``).
The template understands ``## headings``, ``- bullets`` and paragraphs.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from cvops.registry.records import RegisteredVersion

if TYPE_CHECKING:
    from cvops.registry.mlflow_registry import ModelRegistry

MARKDOWN_FILE = "model_card.md"
HTML_FILE = "model_card.html"
UNKNOWN = "unknown"

DEFAULT_TEMPLATE = """\
## Intended use

$name version $version detects $classes in images resized to $input_size pixels \
($family, $precision). It was trained on dataset version $dataset_version ($dataset_uri) and is \
meant for images like those: the same kind of cameras, viewpoints, lighting and object sizes.

- Serve the current champion through `models:/$name@champion`; pin `models:/$name/$version` for \
reproducible results.
- Use its detections as input to counting, tracking and alerting that a person reviews.

## Limitations

- Measured only on data from $dataset_version; accuracy on other cameras, scenes, weather or \
night footage is unknown until measured there.
- Knows only its $class_count classes; other objects are missed or given the nearest class.
- Small, distant or heavily occluded objects are detected less reliably than the averages above suggest.
- Not validated for identifying individuals or for safety-critical decisions without a human check.
"""


@dataclass(frozen=True, slots=True)
class ModelCard:
    """A rendered model card."""

    markdown: str
    html: str


@dataclass(frozen=True, slots=True)
class ModelCardFiles:
    """Where a model card was written: local files and the artifact folder of the version's run."""

    markdown: Path
    html: Path
    artifact_uri: str


# -- a tiny document model, rendered twice ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Heading:
    level: int
    text: str


@dataclass(frozen=True, slots=True)
class _Paragraph:
    text: str


@dataclass(frozen=True, slots=True)
class _Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


_Block = _Heading | _Paragraph | _Bullets | _Table


def _number(value: float) -> str:
    return f"{value:.4g}"


def _split_metrics(
    metrics: Mapping[str, float],
) -> tuple[dict[str, float], dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Split metrics into headline, per-class ``{class: {metric: v}}`` and per-variant ones."""
    headline: dict[str, float] = {}
    per_class: dict[str, dict[str, float]] = {}
    per_variant: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "per_class":
            per_class.setdefault(parts[1], {})[parts[2]] = value
        elif len(parts) == 3 and parts[0] == "variant":
            per_variant.setdefault(parts[1], {})[parts[2]] = value
        else:
            headline[key] = value
    return headline, per_class, per_variant


def _grid(rows: Mapping[str, Mapping[str, float]], first_header: str) -> _Table:
    columns = sorted({metric for values in rows.values() for metric in values})
    return _Table(
        (first_header, *columns),
        tuple(
            (row, *(_number(values[c]) if c in values else "" for c in columns))
            for row, values in rows.items()
        ),
    )


def placeholders(record: RegisteredVersion) -> dict[str, str]:
    """Return the template's values for one version (``unknown`` where a value is missing)."""
    names = [name for name in record.package.get("class_names", "").split(",") if name]
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more classes" if len(names) > 8 else "")
    values = {
        "name": record.name,
        "version": str(record.version),
        "classes": shown or UNKNOWN,
        "class_count": record.package.get("class_count", UNKNOWN),
        "input_size": record.package.get("input_size", UNKNOWN),
        "family": record.package.get("family", UNKNOWN),
        "precision": record.package.get("precision", UNKNOWN),
        "format": record.package.get("format", UNKNOWN),
    }
    for item in fields(record.lineage):
        values[item.name] = getattr(record.lineage, item.name) or UNKNOWN
    return values


def _template_blocks(text: str) -> list[_Block]:
    blocks: list[_Block] = []
    for chunk in text.strip().split("\n\n"):
        lines = [line.strip() for line in chunk.strip().splitlines() if line.strip()]
        if not lines:
            continue
        if lines[0].startswith("#"):
            marks, _, title = lines[0].partition(" ")
            blocks.append(_Heading(len(marks), title.strip()))
            lines = lines[1:]
        if lines and all(line.startswith("- ") for line in lines):
            blocks.append(_Bullets(tuple(line[2:] for line in lines)))
        elif lines:
            blocks.append(_Paragraph(" ".join(lines)))
    return blocks


def _blocks(record: RegisteredVersion, template: str) -> list[_Block]:
    lineage = record.lineage
    headline, per_class, per_variant = _split_metrics(record.metrics)
    blocks: list[_Block] = [
        _Heading(1, f"Model card: {record.name} version {record.version}"),
        _Table(
            ("Field", "Value"),
            (
                ("Model URI", record.uri),
                ("Registered", record.created_at.strftime("%Y-%m-%d %H:%M UTC")),
                ("Aliases", ", ".join(record.aliases) or "none"),
                ("Family", record.package.get("family", UNKNOWN)),
                ("Task", record.package.get("task", UNKNOWN)),
                (
                    "Format / precision",
                    f"{record.package.get('format', UNKNOWN)} / {record.package.get('precision', UNKNOWN)}",
                ),
                ("Input size (w x h, pixels)", record.package.get("input_size", UNKNOWN)),
                ("Classes", record.package.get("class_count", UNKNOWN)),
                ("Artifacts", record.source),
            ),
        ),
        _Heading(2, "Data and lineage"),
        _Table(
            ("Field", "Value"),
            (
                ("Dataset version", lineage.dataset_version or UNKNOWN),
                ("Dataset URI", lineage.dataset_uri or UNKNOWN),
                ("Parent model version", lineage.parent_version or "none"),
                ("Training run", lineage.training_run_id or UNKNOWN),
                ("Code revision", lineage.code_revision or UNKNOWN),
                ("Pipeline run", lineage.pipeline_run_id or UNKNOWN),
            ),
        ),
        _Heading(2, "Metrics"),
    ]
    if headline:
        blocks.append(
            _Table(("Metric", "Value"), tuple((key, _number(value)) for key, value in headline.items()))
        )
    else:
        blocks.append(_Paragraph("No metrics were recorded at registration."))
    if per_class:
        blocks += [_Heading(2, "Per-class results"), _grid(per_class, "Class")]
    if record.variants or per_variant:
        rows = {variant: per_variant.get(variant, {}) for variant in (*record.variants, *per_variant)}
        blocks += [
            _Heading(2, "Export variants"),
            _Paragraph(f"Stored beside the main package under variants/<name>/ of run {record.run_id}."),
            _grid(rows, "Variant"),
        ]
    blocks += _template_blocks(Template(template).safe_substitute(placeholders(record)))
    return blocks


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _to_markdown(blocks: Sequence[_Block]) -> str:
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, _Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, _Paragraph):
            parts.append(block.text)
        elif isinstance(block, _Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        else:
            lines = [
                "| " + " | ".join(map(_markdown_cell, block.headers)) + " |",
                "|" + "|".join("---" for _ in block.headers) + "|",
                *("| " + " | ".join(map(_markdown_cell, row)) + " |" for row in block.rows),
            ]
            parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _inline_html(text: str) -> str:
    """Escape, then turn `code` spans into <code>."""
    pieces = html.escape(text).split("`")
    return "".join(f"<code>{piece}</code>" if index % 2 else piece for index, piece in enumerate(pieces))


def _to_html(blocks: Sequence[_Block], title: str) -> str:
    body: list[str] = []
    for block in blocks:
        if isinstance(block, _Heading):
            body.append(f"<h{block.level}>{_inline_html(block.text)}</h{block.level}>")
        elif isinstance(block, _Paragraph):
            body.append(f"<p>{_inline_html(block.text)}</p>")
        elif isinstance(block, _Bullets):
            items = "".join(f"<li>{_inline_html(item)}</li>" for item in block.items)
            body.append(f"<ul>{items}</ul>")
        else:
            head = "".join(f"<th>{html.escape(cell)}</th>" for cell in block.headers)
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
                for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    style = (
        "body{font-family:sans-serif;max-width:60rem;margin:2rem auto;line-height:1.4}"
        "table{border-collapse:collapse;margin:0.5rem 0}td,th{border:1px solid #ccc;padding:0.2rem 0.5rem;"
        "text-align:left}code{background:#f4f4f4}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{style}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def render_model_card(record: RegisteredVersion, template: str = DEFAULT_TEMPLATE) -> ModelCard:
    """Render a version's model card as Markdown and as a self-contained HTML page.

    Args:
        record: The registered version (from :meth:`ModelRegistry.show`).
        template: Intended use and limitations, with ``$placeholders`` (see the module doc).
    """
    blocks = _blocks(record, template)
    title = f"Model card: {record.name} version {record.version}"
    return ModelCard(markdown=_to_markdown(blocks), html=_to_html(blocks, title))


def write_model_card(
    registry: ModelRegistry,
    name: str,
    version: int | str,
    out_dir: Path,
    template: str = DEFAULT_TEMPLATE,
) -> ModelCardFiles:
    """Render a version's card, write it to ``out_dir`` and store it with the version.

    The files are also logged under ``model_card/`` of the version's run, and the version is
    tagged ``cvops.model_card`` with that artifact URI.

    Returns:
        The local files and the artifact URI.
    """
    record = registry.show(name, version)
    card = render_model_card(record, template)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / MARKDOWN_FILE
    page = out_dir / HTML_FILE
    markdown.write_text(card.markdown, encoding="utf-8")
    page.write_text(card.html, encoding="utf-8")
    artifact_uri = registry.log_model_card(record, [markdown, page])
    return ModelCardFiles(markdown=markdown, html=page, artifact_uri=artifact_uri)
