"""The gRPC side of the gate: the same credentials and rate limits as REST.

Health RPCs (ServerLive, ServerReady, ModelReady) stay open. Others need ``x-api-key`` or
``authorization: Bearer ...`` metadata; a caller without access to the request's model gets
PERMISSION_DENIED, a caller over its rate RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from cvops.serving.auth import AuthenticationError, Authenticator, ForbiddenError
from cvops.serving.limits import RateLimiter
from cvops.serving.metrics import ServingMetrics

OPEN_METHODS = frozenset({"ServerLive", "ServerReady", "ModelReady"})


class GrpcGate(aio.ServerInterceptor):  # type: ignore[misc]
    """Checks every non-health RPC before its handler runs."""

    def __init__(
        self, authenticator: Authenticator | None, rate_limiter: RateLimiter | None, metrics: ServingMetrics
    ) -> None:
        """Use the same authenticator and limiter as the REST gateway."""
        self._authenticator = authenticator
        self._rate_limiter = rate_limiter
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Wrap unary handlers of protected methods with the checks."""
        handler = await continuation(details)
        method = details.method.rsplit("/", 1)[-1]
        if handler is None or handler.unary_unary is None or method in OPEN_METHODS:
            return handler
        metadata = {key.lower(): value for key, value in (details.invocation_metadata or ())}
        inner = handler.unary_unary

        async def checked(request: Any, context: aio.ServicerContext) -> Any:
            await self._admit(metadata, getattr(request, "model_name", None) or None, context)
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            checked,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    async def _admit(self, metadata: dict[str, Any], model: str | None, context: aio.ServicerContext) -> None:
        caller = "anonymous"
        if self._authenticator is not None:
            try:
                principal = self._authenticator.authenticate(
                    metadata.get("x-api-key"), metadata.get("authorization")
                )
                principal.check_model(model)
            except AuthenticationError as error:
                self._metrics.rejected.labels(reason="auth").inc()
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(error))
            except ForbiddenError as error:
                self._metrics.rejected.labels(reason="forbidden").inc()
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(error))
            else:
                caller = principal.id
        if self._rate_limiter is not None and self._rate_limiter.retry_after_s(caller) > 0:
            self._metrics.rejected.labels(reason="rate").inc()
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"rate limit exceeded for {caller!r}")
