"""pull_dataset against a real HTTP server on 127.0.0.1 serving archives built from coco8; the CLI."""

from __future__ import annotations

import functools
import importlib.util
import io
import json
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml

from cvops.data.fetch import extract_archive, pull_dataset
from cvops.data.formats import DetectionDataset, read_dataset, read_yolo
from cvops.data.versions import dataset_manifest
from cvops.errors import (
    BackendUnavailableError,
    DatasetError,
    DatasetFetchError,
    DatasetNotFoundError,
    InvalidInputError,
)
from tests.conftest import fixture_path
from tests.unit.test_label_studio_export import build_export

pytestmark = pytest.mark.integration

CVOPS = [sys.executable, "-m", "cvops"]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 and a free port; returns its base URL and its folder."""
    folder = tmp_path_factory.mktemp("www")
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def coco8_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of coco8 (images, labels, coco8.yaml) to pack into archives."""
    target = tmp_path_factory.mktemp("src") / "coco8"
    shutil.copytree(
        fixture_path("coco8"), target, ignore=shutil.ignore_patterns("reference_detections", "*.json")
    )
    return target


@pytest.fixture(scope="module")
def coco8() -> DetectionDataset:
    return read_yolo(fixture_path("coco8/coco8.yaml"))


def _zip(tree: Path, archive: Path, edit: Callable[[str, bytes], bytes | None] = lambda _, d: d) -> Path:
    """Pack ``tree`` under its own folder name, passing each member through ``edit``."""
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                name = f"{tree.name}/{path.relative_to(tree).as_posix()}"
                data = edit(name, path.read_bytes())
                if data is not None:
                    bundle.writestr(name, data)
    return archive


def _tar_gz(tree: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as bundle:
        bundle.add(tree, arcname=tree.name)
    return archive


@pytest.mark.parametrize("pack", [_zip, _tar_gz], ids=["zip", "tar.gz"])
def test_pulls_an_archive_over_http_and_checks_it(
    served: tuple[str, Path],
    coco8_tree: Path,
    coco8: DetectionDataset,
    tmp_path: Path,
    pack: Callable[[Path, Path], Path],
) -> None:
    base, folder = served
    archive = pack(coco8_tree, folder / f"coco8-{pack.__name__}.bin")
    root = pull_dataset(f"{base}/{archive.name}", tmp_path / "pulled")
    assert root == tmp_path / "pulled" / "coco8"  # the archive's wrapper folder
    assert yaml.safe_load((root / "coco8.yaml").read_text())["path"] == str(root)
    pulled = read_dataset(root)
    assert all(item.image_path.is_relative_to(root) for item in pulled.items)
    for got, expected in zip(pulled.items, coco8.items, strict=True):
        np.testing.assert_array_equal(got.xyxy, expected.xyxy)
    # Content-addressed: the pulled copy is the same version as the fixture.
    assert dataset_manifest(pulled).version_id == dataset_manifest(coco8).version_id
    assert not list(tmp_path.glob(".pull-*"))  # no staging left behind


def test_missing_dataset_is_a_404_error(served: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = served
    with pytest.raises(DatasetNotFoundError, match=r"/nope\.zip: HTTP 404 Not Found"):
        pull_dataset(f"{base}/nope.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _bad_label(name: str, data: bytes) -> bytes:
    return b"0 0.5 0.5 1.7 0.2\n" if name.endswith("000000000009.txt") else data


MALFORMED_CASES = [
    ("no-dataset-file", lambda n, d: None if n.endswith(".yaml") else d,
     r"coco8-no-dataset-file\.zip/coco8: no data\.yaml or COCO annotations JSON found"),
    ("bad-label", _bad_label,
     r"coco8-bad-label\.zip/coco8/labels/train/000000000009\.txt:1: non-normalized coordinates"),
    ("label-without-image", lambda n, d: None if n.endswith("000000000030.jpg") else d,
     r"coco8-label-without-image\.zip/coco8/labels/train/000000000030\.txt: missing image for this label"),
    ("bad-yaml", lambda n, d: b"names: [a\n" if n.endswith(".yaml") else d,
     r"coco8-bad-yaml\.zip/coco8/coco8\.yaml: not valid YAML"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "message"), [c[1:] for c in MALFORMED_CASES], ids=[c[0] for c in MALFORMED_CASES]
)
def test_malformed_archive_names_the_bad_file_and_leaves_nothing(
    served: tuple[str, Path],
    coco8_tree: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    edit: Callable[[str, bytes], bytes | None],
    message: str,
) -> None:
    base, folder = served
    case = request.node.callspec.id
    archive = _zip(coco8_tree, folder / f"coco8-{case}.zip", edit)
    dest = tmp_path / "out"
    dest.mkdir()  # an existing empty folder stays, empty
    with pytest.raises(DatasetError, match=message):
        pull_dataset(f"{base}/{archive.name}", dest)
    assert dest.is_dir()
    assert not any(dest.iterdir())


def _evil_zip(member: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("data.yaml", "names: [a]\n")
        bundle.writestr(member, "owned")
    return buffer.getvalue()


def _tar_with(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        bundle.addfile(member, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def _file(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


UNSAFE_CASES = [
    ("zip-dot-dot", _evil_zip("../../evil.txt"), r"member '\.\./\.\./evil\.txt' would be written outside"),
    ("zip-absolute", _evil_zip("/tmp/evil.txt"), r"member '/tmp/evil\.txt' would be written outside"),
    ("zip-backslash", _evil_zip("..\\evil.txt"), r"would be written outside"),
    ("tar-dot-dot", _tar_with(_file("../evil.txt", 5), b"owned"),
     r"member '\.\./evil\.txt' would be written outside"),
    ("tar-symlink", _tar_with(_symlink("data", "/etc")), r"member 'data' is a link or special file"),
    ("not-an-archive", b"<html>hello</html>", r"not a \.zip or \.tar"),
    ("truncated-zip", _evil_zip("a.txt")[:-30], r"corrupt archive|not a \.zip"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "message"), [c[1:] for c in UNSAFE_CASES], ids=[c[0] for c in UNSAFE_CASES]
)
def test_unsafe_or_corrupt_archives_are_refused_before_writing(
    served: tuple[str, Path], tmp_path: Path, request: pytest.FixtureRequest, payload: bytes, message: str
) -> None:
    base, folder = served
    name = f"{request.node.callspec.id}.zip"
    (folder / name).write_bytes(payload)
    with pytest.raises(DatasetError, match=message):
        pull_dataset(f"{base}/{name}", tmp_path / "deep" / "out")
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "deep" / "evil.txt").exists()
    assert not (tmp_path / "deep" / "out").exists()


def test_extract_archive_enforces_the_size_limit(tmp_path: Path) -> None:
    archive = tmp_path / "big.zip"
    archive.write_bytes(_evil_zip("a.bin"))
    with pytest.raises(DatasetError, match="more than the 10-byte limit"):
        extract_archive(archive, tmp_path / "out", "big.zip", max_bytes=10)


def test_pulls_a_local_folder_and_a_local_archive(coco8_tree: Path, tmp_path: Path) -> None:
    from_folder = pull_dataset(str(coco8_tree), tmp_path / "a")
    assert from_folder == tmp_path / "a"
    from_archive = pull_dataset(_zip(coco8_tree, tmp_path / "c.zip").as_uri(), tmp_path / "b")
    assert from_archive == tmp_path / "b" / "coco8"
    assert len(read_dataset(from_folder)) == len(read_dataset(from_archive)) == 8
    assert (coco8_tree / "coco8.yaml").read_text().startswith("# Ultralytics")  # the source is untouched


@pytest.mark.parametrize(
    ("uri", "error", "message"),
    [
        ("{tmp}/missing", DatasetNotFoundError, "missing: no such file or folder"),
        ("ftp://example.org/x.zip", InvalidInputError, "unsupported scheme 'ftp'"),
        ("http://127.0.0.1:{closed_port}/x.zip", DatasetFetchError, "download failed"),
    ],
    ids=["missing-path", "unsupported-scheme", "connection-refused"],
)
def test_fetch_errors(tmp_path: Path, uri: str, error: type[Exception], message: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(error, match=message):
        pull_dataset(uri.format(tmp=tmp_path, closed_port=closed_port), tmp_path / "out", timeout_s=5)


def test_non_empty_destination_is_refused(coco8_tree: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="expected a new or empty folder"):
        pull_dataset(str(coco8_tree), tmp_path / "out")


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed here")
def test_s3_without_s3fs_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match=r"s3fs package \(pip install s3fs\)"):
        pull_dataset("s3://bucket/datasets/coco8/", tmp_path / "out")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CVOPS, *args], capture_output=True, text=True, timeout=120, check=False)


def test_cli_pull_version_and_convert(
    served: tuple[str, Path], coco8_tree: Path, coco8: DetectionDataset, tmp_path: Path
) -> None:
    base, folder = served
    archive = _zip(coco8_tree, folder / "cli.zip")
    pulled = _run("dataset", "pull", f"{base}/{archive.name}", "--out", str(tmp_path / "pulled"))
    assert pulled.returncode == 0, pulled.stderr
    root = Path(pulled.stdout.strip())
    assert root == tmp_path / "pulled" / "coco8"
    assert "30" in pulled.stderr  # the summary table's box count

    versioned = _run("dataset", "version", str(root))
    assert versioned.returncode == 0, versioned.stderr
    assert versioned.stdout.strip() == dataset_manifest(coco8).version_id
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["entries"][0]["path"] == "images/train/000000000009.jpg"

    export = tmp_path / "export.json"
    export.write_text(json.dumps(build_export(coco8)))
    names = tmp_path / "names.txt"
    names.write_text("\n".join(coco8.class_names))
    converted = _run(
        "dataset", "convert", str(export), "--from", "labelstudio", "--to", "yolo",
        "--out", str(tmp_path / "ls"), "--images-root", str(root), "--names", str(names),
        "--split-fractions", "train=0.5,val=0.5",
    )  # fmt: skip
    assert converted.returncode == 0, converted.stderr
    from_ls = read_yolo(tmp_path / "ls" / "data.yaml")
    assert (len(from_ls), from_ls.box_count) == (8, 30)
    assert set(from_ls.splits) == {"train", "val"}

    to_coco = _run(
        "dataset",
        "convert",
        str(tmp_path / "ls"),
        "--from",
        "yolo",
        "--to",
        "coco",
        "--out",
        str(tmp_path / "c"),
    )
    assert to_coco.returncode == 0, to_coco.stderr
    assert read_dataset(tmp_path / "c").box_count == 30


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("dataset", "pull", "{base}/absent.zip", "--out", "{tmp}/o"),
         "error: {base}/absent.zip: HTTP 404 Not Found (no dataset at this URL)"),
        (("dataset", "version", "{tmp}"), "error: {tmp}: no data.yaml or COCO annotations JSON found"),
        (("dataset", "convert", "{tmp}/x.json", "--from", "labelstudio", "--to", "yolo", "--out", "{tmp}/o"),
         "error: --images-root: a Label Studio export needs the folder of its images"),
    ],
    ids=["pull-404", "version-no-dataset", "convert-missing-option"],
)  # fmt: skip
def test_cli_errors_are_one_line(
    served: tuple[str, Path], tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    base, _ = served
    result = _run(*(a.format(base=base, tmp=tmp_path) for a in args))
    assert result.returncode == 2
    assert result.stderr.strip() == message.format(base=base, tmp=tmp_path)
