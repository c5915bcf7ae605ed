"""Alert and recording rules: promtool checks and unit tests, the PrometheusRule copy, runbooks.

``python -m tests.unit.test_alert_rules --write`` regenerates ``prometheusrule.yaml`` from the
plain rules file after an edit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import REPO_ROOT

MONITORING = REPO_ROOT / "manifests" / "monitoring"
RULES_FILE = MONITORING / "rules" / "cvops.rules.yml"
PROMETHEUS_RULE_FILE = MONITORING / "prometheusrule.yaml"
DASHBOARD_FILE = MONITORING / "dashboards" / "cvops-overview.json"
RULE_TESTS = sorted((MONITORING / "tests").glob("*.test.yml"))
RUNBOOK_URL_PREFIX = "https://github.com/cvops/cvops/blob/main/"
PROMTOOL = "/usr/bin/promtool"
_HEADER = "# Generated from rules/cvops.rules.yml (see README.md): edit that file, then regenerate.\n"


def prometheus_rule(rules: dict[str, Any]) -> dict[str, Any]:
    """The PrometheusRule resource holding the groups of a plain rules file."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "cvops",
            "labels": {"app.kubernetes.io/part-of": "cvops", "role": "alert-rules"},
        },
        "spec": rules,
    }


def write_prometheus_rule() -> None:
    """Regenerate ``prometheusrule.yaml`` (multi-line expressions as ``|`` blocks)."""

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)

    Dumper.add_representer(str, text)
    resource = prometheus_rule(yaml.safe_load(RULES_FILE.read_text()))
    PROMETHEUS_RULE_FILE.write_text(_HEADER + yaml.dump(resource, Dumper=Dumper, sort_keys=False, width=120))


def _rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES_FILE.read_text())["groups"] for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _promtool() -> str:
    if not Path(PROMTOOL).exists():
        pytest.skip(f"{PROMTOOL} missing (Debian package prometheus)")
    return PROMTOOL


def test_prometheus_rule_holds_the_same_groups_as_the_rules_file() -> None:
    resource = yaml.safe_load(PROMETHEUS_RULE_FILE.read_text())
    assert resource == prometheus_rule(yaml.safe_load(RULES_FILE.read_text())), (
        "prometheusrule.yaml is stale: run python -m tests.unit.test_alert_rules --write"
    )


def test_promtool_accepts_the_rules_file_and_the_prometheus_rule_groups(tmp_path: Path) -> None:
    spec_file = tmp_path / "from-prometheusrule.yml"
    spec_file.write_text(yaml.safe_dump(yaml.safe_load(PROMETHEUS_RULE_FILE.read_text())["spec"]))
    result = subprocess.run(
        [_promtool(), "check", "rules", str(RULES_FILE), str(spec_file)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        yaml.safe_dump({"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "rate(x[5m]"}]}]})
    )
    result = subprocess.run([_promtool(), "check", "rules", str(broken)], capture_output=True, text=True)
    assert result.returncode != 0


def test_promtool_unit_tests_of_every_rule_pass() -> None:
    result = subprocess.run(
        [_promtool(), "test", "rules", *map(str, RULE_TESTS)], capture_output=True, text=True, cwd=MONITORING
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_every_alert_has_a_test_where_it_fires_and_one_where_it_does_not() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {alert["alert"] for alert in _alerts()}
    assert names - firing == set(), "alerts without a test that fires them"
    assert names - silent == set(), "alerts without a test where they stay silent"


def test_every_recording_rule_is_tested_directly_or_through_an_alert() -> None:
    tested_text = ""
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested_text += " ".join(check["expr"] for check in case.get("promql_expr_test", []))
            tested_text += " ".join(check["alertname"] for check in case.get("alert_rule_test", []))
    alert_exprs = {alert["alert"]: alert["expr"] for alert in _alerts()}
    covered = tested_text + " ".join(expr for name, expr in alert_exprs.items() if name in tested_text)
    untested = [rule["record"] for rule in _rules() if "record" in rule and rule["record"] not in covered]
    assert untested == []


@pytest.mark.parametrize("alert", _alerts(), ids=lambda alert: alert["alert"])
def test_alert_has_summary_description_severity_and_a_runbook_page(alert: dict[str, Any]) -> None:
    annotations = alert["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    assert alert["labels"]["severity"] in {"page", "ticket"}
    url = annotations["runbook_url"]
    assert url.startswith(RUNBOOK_URL_PREFIX + "docs/runbooks/"), url
    page = REPO_ROOT / url.removeprefix(RUNBOOK_URL_PREFIX)
    assert page.is_file(), f"{alert['alert']}: runbook {page} missing"
    assert alert["alert"] in page.read_text(), f"{page} does not name the alert it explains"


@pytest.mark.parametrize("page", ["canary-failed.md", "stuck-pipeline-run.md", "README.md"])
def test_runbooks_beyond_alerts_exist(page: str) -> None:
    assert (REPO_ROOT / "docs" / "runbooks" / page).is_file()


def _render() -> dict[str, dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl missing: needed for `kubectl kustomize`")
    out = subprocess.run(
        ["kubectl", "kustomize", str(MONITORING)], capture_output=True, text=True, check=True
    )
    return {d["kind"]: d for d in yaml.safe_load_all(out.stdout) if d}


def test_kustomization_renders_the_rules_the_pod_monitor_and_the_dashboard_config_map() -> None:
    resources = _render()
    assert set(resources) == {"PrometheusRule", "PodMonitor", "ConfigMap"}
    config_map = resources["ConfigMap"]
    assert config_map["metadata"]["name"] == "cvops-grafana-dashboard"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["cvops-overview.json"]) == json.loads(DASHBOARD_FILE.read_text())
    assert resources["PrometheusRule"]["spec"] == yaml.safe_load(RULES_FILE.read_text())
    kubernetes_validate.validate(config_map, "1.32", strict=True)


def _python_patterns(schema: Any) -> Any:
    """Move inline ``(?i)`` flags to the front: Go accepts ``^(?i)x``, Python's ``re`` does not."""
    if isinstance(schema, dict):
        return {
            key: "(?i)" + value.replace("(?i)", "")
            if key == "pattern" and isinstance(value, str) and "(?i)" in value
            else _python_patterns(value)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_python_patterns(item) for item in schema]
    return schema


def _spec_schema(plural: str) -> dict[str, Any]:
    from tests.unit.test_manifests import CRDS_DIR, _strict

    crd_file = CRDS_DIR / "prometheus-operator" / f"monitoring.coreos.com_{plural}.yaml"
    if not crd_file.is_file():
        pytest.skip(f"CRD schema missing: {crd_file} (set CVOPS_CRDS)")
    (version,) = yaml.load(crd_file.read_text(), Loader=yaml.CSafeLoader)["spec"]["versions"]
    spec = _strict(version["schema"]["openAPIV3Schema"])["properties"]["spec"]
    return {"type": "object", "properties": {"spec": _python_patterns(spec)}}


@pytest.mark.parametrize(
    ("kind", "plural"), [("PrometheusRule", "prometheusrules"), ("PodMonitor", "podmonitors")]
)
def test_rendered_resource_matches_its_crd_schema_and_a_misspelled_field_fails(
    kind: str, plural: str
) -> None:
    import jsonschema

    schema = _spec_schema(plural)
    resource = _render()[kind]
    jsonschema.validate({"spec": resource["spec"]}, schema)
    resource["spec"]["selectr"] = {}  # misspelled
    with pytest.raises(jsonschema.ValidationError, match="selectr"):
        jsonschema.validate({"spec": resource["spec"]}, schema)


def test_dashboard_has_the_panels_operators_need() -> None:
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    exprs = " ".join(t["expr"] for panel in dashboard["panels"] for t in panel["targets"])
    for metric in (
        "cvops_request_seconds_bucket", "cvops_request_seconds_count", "cvops_gpu_utilization_percent",
        "cvops_gpu_memory_used_bytes", "cvops_detection_score_bucket", "cvops_detections_per_frame",
        "cvops_video_frames_dropped_total", "cvops_breaker_state", "cvops_drift_share",
    ):  # fmt: skip
        assert metric in exprs, f"no panel shows {metric}"
    assert any(panel["type"] == "heatmap" for panel in dashboard["panels"])
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.unit.test_alert_rules --write")
    write_prometheus_rule()
