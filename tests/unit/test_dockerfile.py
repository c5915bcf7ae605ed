"""The image definitions (serving, pipeline components): linted, non-root, pinned, buildable context.

No Docker daemon runs here, so the images are not built: the checks read the Dockerfiles, run
hadolint on them, and run the components image's own requirement-listing step against this tree.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

HADOLINT = Path(sys.executable).parent / "hadolint"
DOCKERFILES = {
    "serving": REPO_ROOT / "serving" / "Dockerfile",
    "components": REPO_ROOT / "components" / "Dockerfile",
}
COMPONENT_EXTRAS = {"train", "pipelines", "registry"}


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined as Docker joins them."""
    text = re.sub(r"\\\n", "", dockerfile.read_text())
    pairs = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, arguments = line.strip().partition(" ")
            pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def _locked_names() -> set[str]:
    return {
        _normalized(line.split("==")[0])
        for line in (REPO_ROOT / "requirements" / "lock.txt").read_text().splitlines()
        if "==" in line
    }


def _normalized(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_dockerfile_passes_hadolint(image: str) -> None:
    result = subprocess.run(
        [str(HADOLINT), str(DOCKERFILES[image])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    result = subprocess.run([str(HADOLINT), str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # :latest


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_image_runs_as_its_own_non_root_user(image: str) -> None:
    instructions = _instructions(DOCKERFILES[image])
    users = [arguments for instruction, arguments in instructions if instruction == "USER"]
    assert users, "no USER: the image would run as root"
    created = re.search(r"useradd .*--uid (\d+)", DOCKERFILES[image].read_text())
    assert created is not None
    assert users[-1] == created.group(1) != "0"


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_build_context_keeps_what_the_image_copies(image: str) -> None:
    ignored = [
        line.strip().rstrip("/")
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def is_ignored(path: str) -> bool:
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return any(fnmatch.fnmatch(prefix, pattern) for pattern in ignored for prefix in prefixes)

    for heavy in (".git", ".venv", ".venv-labelstudio", ".cache", "runs", "demo-output", "model.onnx"):
        assert is_ignored(heavy), heavy
    for instruction, arguments in _instructions(DOCKERFILES[image]):
        if instruction != "COPY":
            continue
        for source in shlex.split(arguments)[:-1]:
            assert (REPO_ROOT / source).exists(), source
            assert not is_ignored(source.rstrip("/")), source


def test_serving_image_installs_no_torch_and_only_pinned_versions() -> None:
    wanted = [
        line.strip().lower()
        for line in (REPO_ROOT / "requirements" / "serving.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not {"torch", "torchvision", "ultralytics"} & set(wanted)
    assert {name.replace("_", "-") for name in wanted} <= _locked_names()


def test_components_image_lists_cvops_with_its_extras_all_pinned() -> None:
    """Run the image's own requirement-listing step here, on this tree's pyproject.toml."""
    (step,) = [
        arguments
        for instruction, arguments in _instructions(DOCKERFILES["components"])
        if instruction == "RUN" and "tomllib" in arguments
    ]
    words = shlex.split(step)
    program = words[words.index("-c") + 1]
    assert words[words.index("-c") - 1] == "python"
    assert "-c requirements/lock.txt" in step  # every version from the lock
    extras = set(re.findall(r"'(\w+)'", program.partition(" for e in ")[2].partition(")")[0]))
    assert extras == COMPONENT_EXTRAS
    listed = subprocess.run(
        [sys.executable, "-c", program], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    names = {_normalized(requirement) for requirement in listed}
    assert {"torch", "ultralytics", "kfp", "mlflow", "numpy"} <= names
    assert names <= _locked_names()
