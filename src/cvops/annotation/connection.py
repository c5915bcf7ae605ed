"""How to reach a Label Studio server: URL, API token, and the folder it serves local files from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cvops.annotation.client import DEFAULT_RETRY, LabelStudioClient
from cvops.annotation.server import ServerInfo
from cvops.errors import InvalidInputError
from cvops.registry.retry import RetryPolicy


@dataclass(frozen=True, slots=True)
class LabelStudioConnection:
    """A Label Studio server as the annotation functions need it.

    Attributes:
        url: Base URL (``http://127.0.0.1:8080``).
        token: API token (``Authorization: Token ...``).
        document_root: The server's ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``, as seen from
            this process (frames are placed under it; synced images are read from it).
        retry: Attempts, backoff and per-request timeout of each REST call.
    """

    url: str
    token: str
    document_root: Path
    retry: RetryPolicy = field(default=DEFAULT_RETRY)

    def __post_init__(self) -> None:
        """Reject a URL that is not http(s) and an empty token."""
        if not self.url.startswith(("http://", "https://")):
            raise InvalidInputError(f"label studio url: expected http(s)://host:port, got {self.url!r}")
        if not self.token:
            raise InvalidInputError("label studio token: expected an API token, got ''")

    @classmethod
    def from_server(cls, info: ServerInfo, retry: RetryPolicy = DEFAULT_RETRY) -> LabelStudioConnection:
        """Return the connection of a server started by :func:`~cvops.annotation.server.start_server`."""
        return cls(info.url, info.token, Path(info.document_root), retry)

    def client(self) -> LabelStudioClient:
        """Return a new REST client (close it, or use it as a context manager)."""
        return LabelStudioClient(self.url, self.token, self.retry)
