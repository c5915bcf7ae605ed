"""``python -m serving.router``: the local canary router, KServe's canaryTrafficPercent on one machine.

It starts a model server for the champion and one for the challenger (``python -m serving`` on
free loopback ports), then routes REST v1/v2 requests between them: sticky per ``stream_id``
(a stream's tracks stay on one model), by ``canaryTrafficPercent``; it mirrors
``shadowTrafficPercent`` of champion traffic to the challenger and records their agreement
without touching the response. Each upstream sits behind a circuit breaker: an open challenger
breaker sends its traffic to the champion, an open champion breaker answers 503 at once. The
answering variant is named in the ``x-cvops-variant`` header.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import REGISTRY, Counter, Histogram, generate_latest

from cvops.contracts.wire import FrameResult
from cvops.errors import CvopsError, InvalidInputError
from cvops.processes import die_with_parent, free_port, wait_until_ready
from cvops.serving.breaker import BreakerOpenError, CircuitBreaker
from cvops.serving.gateway import Gateway
from cvops.serving.metrics import BREAKER_STATE, ServingMetrics
from cvops.serving.routing import RouterConfig, Variant, choose_variant, compare_frames
from serving.__main__ import add_security_arguments, gateway_options

logger = logging.getLogger("serving.router")

VARIANT_HEADER = "x-cvops-variant"
MODEL_NAME = "detector"  # both variants serve under this name, so clients never see which is which

REQUESTS = Counter("cvops_router_requests", "Routed requests.", ["variant", "code"])
LATENCY = Histogram("cvops_router_request_seconds", "Routed request latency.", ["variant"])
FALLBACKS = Counter("cvops_router_fallbacks", "Challenger requests answered by the champion.", ["reason"])
SHADOW_IOU = Histogram("cvops_shadow_mean_iou", "Mean matched-box IoU, challenger vs champion.")
SHADOW_CLASS = Histogram("cvops_shadow_class_agreement", "Share of matched boxes with the same class.")
SHADOW_SHIFT = Histogram(
    "cvops_shadow_score_shift",
    "Mean score change, challenger minus champion.",
    buckets=(-0.5, -0.2, -0.1, -0.05, 0, 0.05, 0.1, 0.2, 0.5),
)


class Upstream:
    """One model server behind a circuit breaker."""

    def __init__(self, variant: Variant, url: str, client: httpx.AsyncClient) -> None:
        self.variant = variant
        self.url = url
        self.client = client
        self.breaker = CircuitBreaker(
            f"upstream-{variant.value}", failure_threshold=3, reset_timeout_s=5.0,
            on_state=lambda name, state: BREAKER_STATE.labels(name).set(int(state)),
        )  # fmt: skip

    async def forward(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        """Send the request on; a transport error or 5xx counts as a failure."""
        self.breaker.before_call()
        try:
            response = await self.client.post(self.url + path, content=body, headers=headers)
        except httpx.TransportError:
            self.breaker.record_failure()
            raise
        if response.status_code >= 500:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()
        return response


class Router:
    """Picks the variant, forwards, falls back, mirrors."""

    def __init__(self, config: RouterConfig, champion: Upstream, challenger: Upstream) -> None:
        self.config = config
        self.upstreams = {Variant.CHAMPION: champion, Variant.CHALLENGER: challenger}
        self.shadow_results: list[dict[str, float]] = []
        self._shadow_tasks: set[asyncio.Task[None]] = set()

    async def route(self, path: str, body: bytes, content_type: str) -> Response:
        """Answer one model request from the chosen variant, with fallback and mirroring."""
        stream_id = _stream_id(path, body)
        variant = choose_variant(stream_id, self.config.canaryTrafficPercent, random.random())
        headers = {"content-type": content_type}
        start = time.perf_counter()
        try:
            response = await self.upstreams[variant].forward(path, body, headers)
        except (BreakerOpenError, httpx.TransportError) as error:
            if variant is Variant.CHAMPION:
                REQUESTS.labels(variant.value, "503").inc()
                return JSONResponse({"error": f"champion unavailable: {error}"}, status_code=503)
            FALLBACKS.labels("breaker_open" if isinstance(error, BreakerOpenError) else "transport").inc()
            variant = Variant.CHAMPION
            try:
                response = await self.upstreams[variant].forward(path, body, headers)
            except (BreakerOpenError, httpx.TransportError) as second:
                REQUESTS.labels(variant.value, "503").inc()
                return JSONResponse({"error": f"no upstream available: {second}"}, status_code=503)
        LATENCY.labels(variant.value).observe(time.perf_counter() - start)
        REQUESTS.labels(variant.value, str(response.status_code)).inc()
        if (
            variant is Variant.CHAMPION
            and response.status_code == 200
            and random.random() * 100 < self.config.shadowTrafficPercent
        ):
            task = asyncio.create_task(self._shadow(path, body, headers, response.content))
            self._shadow_tasks.add(task)
            task.add_done_callback(self._shadow_tasks.discard)
        passed = {k: v for k, v in response.headers.items() if k.lower() == "content-type"}
        return Response(response.content, response.status_code, {**passed, VARIANT_HEADER: variant.value})

    async def _shadow(self, path: str, body: bytes, headers: dict[str, str], champion_body: bytes) -> None:
        try:
            response = await self.upstreams[Variant.CHALLENGER].forward(path, body, headers)
        except (BreakerOpenError, httpx.TransportError):
            return
        if response.status_code != 200:
            return
        for champion, challenger in zip(
            _results(path, champion_body), _results(path, response.content), strict=False
        ):
            agreement = compare_frames(champion, challenger)
            SHADOW_IOU.observe(agreement.mean_iou)
            SHADOW_CLASS.observe(agreement.class_agreement)
            SHADOW_SHIFT.observe(agreement.score_shift)
            self.shadow_results = [*self.shadow_results[-999:], asdict(agreement)]

    def stats(self) -> dict[str, Any]:
        """Return the split, breaker states and the shadow agreement summary."""
        shadow = self.shadow_results
        summary = {key: sum(r[key] for r in shadow) / len(shadow) for key in shadow[0]} if shadow else {}
        return {
            "config": self.config.model_dump(),
            "breakers": {v.value: self.upstreams[v].breaker.state.name.lower() for v in Variant},
            "shadow": {"frames": len(shadow), "mean": summary},
        }


def _stream_id(path: str, body: bytes) -> str | None:
    """Find the stream of a v1 body (first instance) or a v2 body (request parameters)."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict):
        return None
    if path.startswith("/v1/"):
        instances = payload.get("instances")
        first = instances[0] if isinstance(instances, list) and instances else {}
        value = first.get("stream_id") if isinstance(first, dict) else None
    else:
        parameters = payload.get("parameters")
        value = parameters.get("stream_id") if isinstance(parameters, dict) else None
    return value if isinstance(value, str) else None


def _results(path: str, body: bytes) -> list[FrameResult]:
    payload = json.loads(body)
    if path.startswith("/v1/"):
        return [FrameResult.model_validate(p) for p in payload["predictions"]]
    return [FrameResult.model_validate_json(item) for item in payload["outputs"][0]["data"]]


def build_app(router: Router) -> FastAPI:
    """The router's HTTP app: model routes are proxied; health, stats and metrics are local."""
    app = FastAPI(title="cvops canary router", docs_url=None, redoc_url=None)

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.get("/router/stats")
    async def stats() -> dict[str, Any]:
        return router.stats()

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(REGISTRY).decode())

    @app.post("/v1/models/{model}:predict")
    @app.post("/v2/models/{model}/infer")
    async def proxy(request: Request) -> Response:
        return await router.route(
            request.url.path, await request.body(), request.headers.get("content-type", "")
        )

    return app


def start_model_server(
    package: Path, log_dir: Path, name: str, extra: list[str]
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m serving`` for one package on a free loopback port; return it and its URL."""
    port = free_port()
    command = [
        sys.executable, "-m", "serving", "--model-dir", str(package), "--model-name", MODEL_NAME,
        "--http-port", str(port),
        "--grpc-port", "0", "--allow-anonymous", *extra,
    ]  # fmt: skip
    with (log_dir / f"{name}.log").open("wb") as log:
        # The servers stop with the router even when a signal ends it before its cleanup runs.
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(process, f"{url}/v2/health/ready", log_dir / f"{name}.log")
    return process, url


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(prog="python -m serving.router", description=__doc__)
    parser.add_argument("--champion", type=Path, required=True, help="Champion model package.")
    parser.add_argument("--challenger", type=Path, required=True, help="Challenger model package.")
    parser.add_argument("--canary-percent", type=int, default=None, help="canaryTrafficPercent (0-100).")
    parser.add_argument(
        "--shadow-percent", type=int, default=None, help="Share of champion traffic mirrored."
    )
    parser.add_argument(
        "--inference-service",
        type=Path,
        help="Read the split from this InferenceService (YAML or JSON, e.g. kubectl kustomize output).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--server-arg", action="append", default=[], help="Extra argument for both model servers."
    )
    add_security_arguments(parser)
    return parser.parse_args(argv)


def router_config(args: argparse.Namespace) -> RouterConfig:
    """The split from --inference-service, then overridden by the percent options."""
    base = RouterConfig()
    if args.inference_service is not None:
        documents = [d for d in yaml.safe_load_all(args.inference_service.read_text()) if isinstance(d, dict)]
        services = [d for d in documents if d.get("kind") == "InferenceService"]
        if len(services) != 1:
            raise InvalidInputError(
                f"{args.inference_service}: expected one InferenceService, found {len(services)}"
            )
        base = RouterConfig.from_inference_service(services[0])
    changes = {"canaryTrafficPercent": args.canary_percent, "shadowTrafficPercent": args.shadow_percent}
    try:
        return RouterConfig.model_validate(
            {**base.model_dump(), **{k: v for k, v in changes.items() if v is not None}}
        )
    except ValueError as error:
        raise InvalidInputError(f"traffic split: {error}") from error


def main(argv: list[str] | None = None) -> None:
    """Start both model servers and the router; stop the servers by PID on exit."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    children: list[subprocess.Popen[bytes]] = []
    log_dir = Path(tempfile.mkdtemp(prefix="cvops-router-"))
    try:
        config = router_config(args)
        champion_process, champion_url = start_model_server(
            args.champion, log_dir, "champion", args.server_arg
        )
        children.append(champion_process)
        challenger_process, challenger_url = start_model_server(
            args.challenger, log_dir, "challenger", args.server_arg
        )
        children.append(challenger_process)

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            async with httpx.AsyncClient(timeout=30) as client:
                router = Router(
                    config,
                    Upstream(Variant.CHAMPION, champion_url, client),
                    Upstream(Variant.CHALLENGER, challenger_url, client),
                )
                app.router.routes.extend(build_app(router).router.routes)
                yield

        app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None)
        app.add_middleware(Gateway, **gateway_options(args, ServingMetrics(), frozenset({MODEL_NAME})))  # type: ignore[arg-type]
        logger.info("router on http://%s:%d, logs of the model servers in %s", args.host, args.port, log_dir)
        uvicorn.run(app, host=args.host, port=args.port, log_config=None)
    except CvopsError as error:
        sys.stderr.write(f"error: {error}\n")
        sys.exit(2)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    main()
