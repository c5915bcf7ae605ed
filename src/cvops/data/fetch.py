"""Pull a dataset from a folder, an archive, an HTTP(S) URL or S3 into a local folder, checked.

Archives (.zip, .tar, .tar.gz/.tgz, .tar.bz2, .tar.xz; recognized by content, not name) are
extracted safely: a member with an absolute path, a ``..`` part, a link or a device is refused
before anything is written, and the total size is capped. The pulled dataset is then read with
:func:`~cvops.data.formats.read_dataset`, so a malformed one fails here, naming the bad file
inside the source (``https://host/coco8.zip/coco8/labels/train/a.txt:3: ...``).
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from cvops.data.formats import locate_dataset_files, read_dataset
from cvops.errors import (
    BackendUnavailableError,
    CvopsError,
    DatasetError,
    DatasetFetchError,
    DatasetNotFoundError,
    InvalidInputError,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 64 * 2**30
"""Largest download and largest extracted archive accepted (a guard against archive bombs)."""

_CHUNK_BYTES = 1 << 20
_YAML_PATH_LINE = re.compile(r"^path:.*$", re.MULTILINE)


def pull_dataset(
    uri: str, dest: Path, *, timeout_s: float = 60.0, max_bytes: int = DEFAULT_MAX_BYTES
) -> Path:
    """Fetch a dataset into ``dest``, check it, and return its root folder.

    Args:
        uri: A local folder or archive (a path or ``file://`` URL), an ``http(s)://`` URL of an
            archive, or ``s3://bucket/prefix`` (a folder or an archive; needs ``s3fs``).
        dest: Folder to fill; it must not exist or be empty.
        timeout_s: Network timeout per read, in seconds.
        max_bytes: Largest download and largest total extracted size accepted.

    Returns:
        The folder holding the dataset file (``dest`` itself, or the single folder an archive
        wrapped the dataset in). A YOLO YAML there gets ``path`` set to that folder, so
        Ultralytics and :func:`~cvops.data.formats.read_yolo` use the pulled images.

    Raises:
        InvalidInputError: For a non-empty ``dest`` or an unsupported URL scheme.
        DatasetNotFoundError: For a missing path, HTTP 404 or a missing S3 key.
        DatasetFetchError: For other HTTP errors and unreachable hosts.
        DatasetError: For a corrupt or unsafe archive, or a malformed dataset (naming the file).
        BackendUnavailableError: For ``s3://`` without ``s3fs`` installed.
    """
    dest = dest.resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InvalidInputError(f"{dest}: expected a new or empty folder to pull into")
    scheme = urlparse(uri).scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter, not a scheme
        scheme = ""
    if scheme not in ("", "file", "http", "https", "s3"):
        raise InvalidInputError(f"{uri}: unsupported scheme {scheme!r}, expected a path, http(s):// or s3://")
    existed = dest.exists()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pull-", dir=dest.parent) as tmp:
        staging = Path(tmp)
        tree = staging / "tree"
        if scheme in ("http", "https"):
            archive = staging / "download"
            _download_http(uri, archive, timeout_s, max_bytes)
            extract_archive(archive, tree, uri, max_bytes)
        elif scheme == "s3":
            _pull_s3(uri, staging, tree, max_bytes)
        else:
            source = Path(unquote(urlparse(uri).path)) if scheme == "file" else Path(uri)
            if not source.exists():
                raise DatasetNotFoundError(f"{uri}: no such file or folder")
            if source.is_dir():
                shutil.copytree(source, tree, symlinks=False)
            else:
                extract_archive(source, tree, uri, max_bytes)
        if existed:
            dest.rmdir()
        shutil.move(tree, dest)
    source_name = uri.rstrip("/") if scheme else str(Path(uri).resolve())
    try:
        root = _dataset_root(dest)
        files = locate_dataset_files(root)
        if files[0].suffix in (".yaml", ".yml"):
            _point_yaml_at(files[0], root)
        read_dataset(root)
    except CvopsError as error:
        # What was pulled is unusable: take it away, so a retry starts clean, and name the bad
        # file by its place in the source rather than in a folder that no longer exists.
        shutil.rmtree(dest)
        if existed:
            dest.mkdir()
        message = str(error).replace(str(dest), source_name)
        raise type(error)(message) from error
    logger.debug("pulled %s into %s", uri, root)
    return root


def _dataset_root(tree: Path) -> Path:
    """Descend through folders that hold one folder and nothing else (archive wrappers)."""
    folder = tree
    for _ in range(4):
        if any(p.suffix in (".yaml", ".yml", ".json") for p in folder.iterdir() if p.is_file()):
            return folder
        children = [p for p in folder.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
        if len(children) != 1 or not children[0].is_dir():
            return folder
        folder = children[0]
    return folder


def _point_yaml_at(data_yaml: Path, root: Path) -> None:
    """Set a YOLO YAML's ``path`` to ``root`` (absolute), keeping the rest of the text."""
    text = data_yaml.read_text(encoding="utf-8")
    line = f"path: {json.dumps(root.as_posix())}"  # a JSON string is a valid YAML scalar
    if _YAML_PATH_LINE.search(text):
        text = _YAML_PATH_LINE.sub(lambda _: line, text, count=1)
    else:
        text = f"{line}\n{text}"
    data_yaml.write_text(text, encoding="utf-8")


def _download_http(url: str, target: Path, timeout_s: float, max_bytes: int) -> None:
    import httpx

    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=timeout_s) as response:
            if response.status_code == 404:
                raise DatasetNotFoundError(f"{url}: HTTP 404 Not Found (no dataset at this URL)")
            if response.status_code >= 400:
                raise DatasetFetchError(f"{url}: HTTP {response.status_code} {response.reason_phrase}")
            declared = int(response.headers.get("content-length", "0") or 0)
            if declared > max_bytes:
                raise DatasetError(f"{url}: {declared} bytes is larger than the {max_bytes}-byte limit")
            size = 0
            with target.open("wb") as out:
                for chunk in response.iter_bytes(_CHUNK_BYTES):
                    size += len(chunk)
                    if size > max_bytes:
                        raise DatasetError(f"{url}: download exceeds the {max_bytes}-byte limit")
                    out.write(chunk)
    except httpx.HTTPError as error:
        raise DatasetFetchError(f"{url}: download failed: {error}") from error


def _pull_s3(uri: str, staging: Path, tree: Path, max_bytes: int) -> None:
    """Copy an S3 prefix (a dataset folder) or object (an archive) through fsspec."""
    try:
        importlib.import_module("s3fs")
    except ImportError as error:
        raise BackendUnavailableError(
            f"{uri}: s3:// datasets need the s3fs package (pip install s3fs); "
            "credentials come from the usual AWS variables or files"
        ) from error
    fsspec: Any = importlib.import_module("fsspec")
    fs = fsspec.filesystem("s3")
    try:
        exists, is_dir = fs.exists(uri), fs.isdir(uri)
    except OSError as error:
        raise DatasetFetchError(f"{uri}: cannot list: {error}") from error
    if not exists:
        raise DatasetNotFoundError(f"{uri}: no such S3 object or prefix")
    try:
        if is_dir:
            fs.get(uri.rstrip("/") + "/", f"{tree}/", recursive=True)
            return
        if fs.size(uri) > max_bytes:
            raise DatasetError(f"{uri}: larger than the {max_bytes}-byte limit")
        archive = staging / "download"
        fs.get(uri, str(archive))
    except OSError as error:
        raise DatasetFetchError(f"{uri}: download failed: {error}") from error
    extract_archive(archive, tree, uri, max_bytes)


def extract_archive(archive: Path, out_dir: Path, source: str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Extract a zip or tar archive into ``out_dir``, refusing unsafe members before writing any.

    Args:
        archive: The archive file.
        out_dir: Folder to create and fill.
        source: What to name in errors (the URL or path the archive came from).
        max_bytes: Largest total size of the extracted files.

    Raises:
        DatasetError: For an unknown or corrupt archive, a member that would land outside
            ``out_dir`` (absolute path, ``..``), a link or special file, or too many bytes.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, out_dir, source, max_bytes)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, out_dir, source, max_bytes)
        else:
            raise DatasetError(f"{source}: not a .zip or .tar(.gz, .bz2, .xz) archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as error:
        raise DatasetError(f"{source}: corrupt archive: {error}") from error


def _check_member(name: str, out_dir: Path, source: str) -> Path:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or parts[0] == "/" or ":" in parts[0] or ".." in parts:
        raise DatasetError(f"{source}: member {name!r} would be written outside the dataset folder")
    target = out_dir.joinpath(*parts).resolve()
    if not target.is_relative_to(out_dir.resolve()):
        raise DatasetError(f"{source}: member {name!r} would be written outside the dataset folder")
    return target


def _extract_zip(archive: Path, out_dir: Path, source: str, max_bytes: int) -> None:
    with zipfile.ZipFile(archive) as bundle:
        members = bundle.infolist()
        total = 0
        for info in members:
            _check_member(info.filename, out_dir, source)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise DatasetError(f"{source}: member {info.filename!r} is a link; links are not allowed")
            total += info.file_size
            if total > max_bytes:
                raise DatasetError(f"{source}: extracts to more than the {max_bytes}-byte limit")
        for info in members:
            target = _check_member(info.filename, out_dir, source)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(info) as stream, target.open("wb") as out:
                shutil.copyfileobj(stream, out, _CHUNK_BYTES)


def _extract_tar(archive: Path, out_dir: Path, source: str, max_bytes: int) -> None:
    with tarfile.open(archive, "r:*") as bundle:
        members = bundle.getmembers()
        total = 0
        for member in members:
            _check_member(member.name, out_dir, source)
            if not (member.isfile() or member.isdir()):
                raise DatasetError(
                    f"{source}: member {member.name!r} is a link or special file; only files and folders "
                    "are allowed"
                )
            total += member.size
            if total > max_bytes:
                raise DatasetError(f"{source}: extracts to more than the {max_bytes}-byte limit")
        # The "data" filter re-checks every member (paths, links, modes) as a second line.
        bundle.extractall(out_dir, members=members, filter="data")
