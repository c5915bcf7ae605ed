"""Who is calling, and may they use this model: API keys (stored hashed) and JWT bearer tokens.

API keys live in a JSON file of SHA-256 digests, re-read when the file changes, so keys rotate
without a restart::

    {"keys": [{"id": "camera-team", "sha256": "<hex digest of the key>", "models": ["detector"]}]}

``models`` lists the models a key may call (``"*"``: all). JWTs are HS256 (shared secret) or
RS256 (public key); they must carry ``exp`` and ``sub``, and may carry ``models`` like a key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cvops.errors import CvopsError, InvalidInputError


class AuthenticationError(CvopsError, PermissionError):
    """No credentials, or credentials that are not valid (HTTP 401)."""


class ForbiddenError(CvopsError, PermissionError):
    """Valid credentials without access to the requested model (HTTP 403)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller and the models it may use."""

    id: str
    models: frozenset[str]

    def check_model(self, model: str | None) -> None:
        """Raise :class:`ForbiddenError` unless this caller may use ``model``."""
        if model is not None and "*" not in self.models and model not in self.models:
            raise ForbiddenError(f"caller {self.id!r} has no access to model {model!r}")


class _KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    models: tuple[str, ...] = Field(min_length=1)


class _KeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: tuple[_KeyEntry, ...]


def hash_api_key(key: str) -> str:
    """Return the hex SHA-256 digest stored for ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyStore:
    """API keys from a JSON file, reloaded whenever the file's modification time changes.

    Keys given as JSON text (an environment variable) are fixed for the process's life.
    """

    def __init__(self, path: Path | None = None, text: str | None = None) -> None:
        """Load the key file at ``path``, or the keys in ``text``.

        Raises:
            InvalidInputError: When the file is missing or the keys break the format.
        """
        if (path is None) == (text is None):
            raise InvalidInputError("API keys: expected a file or JSON text, exactly one")
        self.path = path
        self._lock = threading.Lock()
        self._mtime_ns = -1
        self._entries: tuple[_KeyEntry, ...] = ()
        if text is not None:
            self._entries = _parse_keys(text, "API keys")
        self._reload_if_changed()

    def _reload_if_changed(self) -> None:
        if self.path is None:
            return
        try:
            mtime_ns = self.path.stat().st_mtime_ns
        except FileNotFoundError as error:
            raise InvalidInputError(f"{self.path}: API key file not found") from error
        if mtime_ns == self._mtime_ns:
            return
        self._entries, self._mtime_ns = _parse_keys(self.path.read_text(), str(self.path)), mtime_ns

    def authenticate(self, key: str) -> Principal:
        """Return the caller owning ``key``.

        Raises:
            AuthenticationError: When no stored digest matches.
        """
        digest = hash_api_key(key)
        with self._lock:
            self._reload_if_changed()
            entries = self._entries
        for entry in entries:
            if hmac.compare_digest(entry.sha256, digest):
                return Principal(entry.id, frozenset(entry.models))
        raise AuthenticationError("API key not recognized")


def _parse_keys(text: str, source: str) -> tuple[_KeyEntry, ...]:
    try:
        return _KeyFile.model_validate(json.loads(text)).keys
    except (json.JSONDecodeError, ValidationError) as error:
        raise InvalidInputError(f"{source}: not a valid API key list: {error}") from error


class JwtVerifier:
    """Verifies HS256 or RS256 bearer tokens."""

    def __init__(self, key: str, algorithm: str, audience: str | None = None) -> None:
        """Configure the verifier.

        Args:
            key: The HS256 shared secret, or the RS256 public key in PEM.
            algorithm: ``HS256`` or ``RS256``.
            audience: When set, tokens must name it in ``aud``.
        """
        if algorithm not in ("HS256", "RS256"):
            raise InvalidInputError(f"algorithm: expected HS256 or RS256, got {algorithm!r}")
        self._key = key
        self._algorithm = algorithm
        self._audience = audience

    def authenticate(self, token: str) -> Principal:
        """Return the caller named by a valid token.

        Raises:
            AuthenticationError: For a malformed, expired or wrongly signed token.
        """
        import jwt

        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                audience=self._audience,
                options={"require": ["exp", "sub"]},
            )
        except jwt.PyJWTError as error:
            raise AuthenticationError(f"bearer token rejected: {error}") from error
        models = claims.get("models", ["*"])
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise AuthenticationError("bearer token rejected: 'models' must be a list of names")
        return Principal(str(claims["sub"]), frozenset(models))


class Authenticator:
    """Accepts an ``X-API-Key`` header or an ``Authorization: Bearer`` token."""

    def __init__(self, keys: ApiKeyStore | None, jwt: JwtVerifier | None) -> None:
        """Use either or both credential kinds."""
        if keys is None and jwt is None:
            raise InvalidInputError("authentication: expected an API key file or a JWT key, got neither")
        self._keys = keys
        self._jwt = jwt

    def authenticate(self, api_key: str | None, authorization: str | None) -> Principal:
        """Return the caller, or raise :class:`AuthenticationError`."""
        if api_key is not None and self._keys is not None:
            return self._keys.authenticate(api_key)
        if authorization is not None and self._jwt is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise AuthenticationError("Authorization: expected 'Bearer <token>'")
            return self._jwt.authenticate(token.strip())
        raise AuthenticationError("credentials required: X-API-Key header or Authorization: Bearer token")
