"""``python -m serving``: serve a model package over REST v1/v2 and gRPC v2.

KServe's own ModelServer binds every interface; this entry point builds the same application
and binds ``--host`` (127.0.0.1 by default). It is the only place that reads arguments and
picks the real runtime and tracker.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from concurrent import futures
from dataclasses import replace
from pathlib import Path

from kserve.model_server import ModelServer
from kserve.model_server import app as kserve_app
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.rest.server import RESTServer

from cvops.config import DetectorSettings
from cvops.detection.detector import Detector
from cvops.detection.loader import load_detector
from cvops.errors import InvalidInputError
from cvops.serving.auth import ApiKeyStore, Authenticator, JwtVerifier
from cvops.serving.batching import BatchingConfig
from cvops.serving.breaker import CircuitBreaker
from cvops.serving.gateway import Gateway, GatewayConfig
from cvops.serving.gpu import gpu_count
from cvops.serving.limits import RateLimiter
from cvops.serving.metrics import BREAKER_STATE, ServingMetrics
from cvops.serving.pool import DetectorPool
from cvops.tracking.bytetrack import ByteTracker
from cvops.tracking.gallery import CrossCameraGallery
from cvops.tracking.image_tracker import ImageTracker
from cvops.tracking.motion_compensation import SparseFlowCompensator
from cvops.tracking.reid import OnnxEmbedder
from serving.grpc_gate import GrpcGate
from serving.predictor import DetectModel

logger = logging.getLogger("serving")

MAX_GRPC_MESSAGE_BYTES = 64 * 1024 * 1024


class _BoundGRPCServer(GRPCServer):  # type: ignore[misc]
    """KServe's gRPC server, listening on a chosen host instead of every interface."""

    def __init__(self, host: str, gate: GrpcGate, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._host = host
        self._gate = gate

    async def start(self, max_workers: int) -> None:
        from grpc import aio

        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=[self._gate],
            options=[
                ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_BYTES),
            ],
        )
        servicer = InferenceServicer(self._data_plane, self._model_repository_extension)
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        self._server.add_insecure_port(f"{self._host}:{self._port}")
        await self._server.start()
        await self._server.wait_for_termination()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__)
    parser.add_argument(
        "--model-dir", required=True,
        help="Model package folder, or a registry URI (models:/NAME@ALIAS, models:/NAME/VERSION) that is "
        "resolved at start and on every reload (SIGHUP), so a promotion is picked up.",
    )  # fmt: skip
    parser.add_argument(
        "--tracking-uri", help="MLflow tracking URI for models:/ (default: the embedded sqlite registry)."
    )
    parser.add_argument("--model-name", default="detector", help="Name in /v1/models/NAME.")
    parser.add_argument("--host", default="127.0.0.1", help="Interface to bind (default: loopback only).")
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--grpc-port", type=int, default=8081, help="0 disables gRPC.")
    defaults = DetectorSettings()
    parser.add_argument("--score-threshold", type=float, default=defaults.score_threshold)
    parser.add_argument("--iou-threshold", type=float, default=defaults.iou_threshold)
    parser.add_argument(
        "--threads", type=int, default=0, help="Runtime intra-op threads (0: runtime default)."
    )
    parser.add_argument(
        "--stream-ttl-s", type=float, default=300.0, help="Idle seconds before a stream is dropped."
    )
    parser.add_argument("--max-streams", type=int, default=1024)
    parser.add_argument(
        "--reid-model", type=Path,
        help="Re-id ONNX model (e.g. OSNet): appearance in tracking and cross-stream global ids.",
    )  # fmt: skip
    parser.add_argument(
        "--reid-similarity", type=float, default=0.8,
        help="Cosine similarity at which a track on one stream takes another stream's global id.",
    )  # fmt: skip
    parser.add_argument(
        "--cmc", action="store_true", help="Compensate camera motion in each stream's tracker."
    )
    parser.add_argument(
        "--instances", type=int, default=0,
        help="Model instances behind the endpoint, least-loaded first (0: one per visible GPU, else 1).",
    )  # fmt: skip
    batching = BatchingConfig()
    parser.add_argument(
        "--max-batch-size", type=int, default=batching.max_batch_size, help="Frames per batch."
    )
    parser.add_argument(
        "--max-latency-ms",
        type=float,
        default=batching.max_latency_ms,
        help="Longest wait for a batch to fill.",
    )
    add_security_arguments(parser)
    return parser.parse_args(argv)


def add_security_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the credential and limit options (shared with the canary router)."""
    security = parser.add_argument_group("security and limits")
    security.add_argument(
        "--api-keys-file", type=Path, help="JSON file of hashed API keys (re-read on change)."
    )
    security.add_argument(
        "--jwt-algorithm", choices=["HS256", "RS256"], help="Accept bearer tokens: HS256 secret in "
        "$CVOPS_JWT_SECRET, or RS256 public key file in --jwt-public-key.",
    )  # fmt: skip
    security.add_argument("--jwt-public-key", type=Path, help="PEM public key for RS256 tokens.")
    security.add_argument(
        "--allow-anonymous", action="store_true", help="Serve without authentication (loopback development)."
    )
    security.add_argument("--rate-per-s", type=float, default=50.0, help="Requests a second per caller.")
    security.add_argument(
        "--burst", type=int, default=100, help="Requests a caller may burst above the rate."
    )
    security.add_argument("--max-in-flight", type=int, default=64, help="Concurrent requests before 503.")
    security.add_argument("--max-body-mb", type=float, default=16.0, help="Largest request body (413 above).")


def gateway_options(
    args: argparse.Namespace, metrics: ServingMetrics, models: frozenset[str]
) -> dict[str, object]:
    """Keyword arguments of :class:`Gateway` from the parsed security options."""
    return {
        "config": GatewayConfig(int(args.max_body_mb * 1024 * 1024), args.max_in_flight, models),
        "metrics": metrics,
        "authenticator": build_authenticator(args),
        "rate_limiter": RateLimiter(args.rate_per_s, args.burst),
    }


def build_authenticator(args: argparse.Namespace) -> Authenticator | None:
    """Read credentials configuration; refuse to start open unless asked to."""
    keys = None
    if args.api_keys_file is not None:
        keys = ApiKeyStore(path=args.api_keys_file)
    elif os.environ.get("CVOPS_API_KEYS"):
        keys = ApiKeyStore(text=os.environ["CVOPS_API_KEYS"])
    verifier = None
    if args.jwt_algorithm == "HS256":
        secret = os.environ.get("CVOPS_JWT_SECRET", "")
        if len(secret) < 32:
            raise InvalidInputError("CVOPS_JWT_SECRET: expected a secret of at least 32 characters for HS256")
        verifier = JwtVerifier(secret, "HS256")
    elif args.jwt_algorithm == "RS256":
        if args.jwt_public_key is None or not args.jwt_public_key.is_file():
            raise InvalidInputError(
                f"--jwt-public-key: expected a PEM file for RS256, got {args.jwt_public_key}"
            )
        verifier = JwtVerifier(args.jwt_public_key.read_text(), "RS256")
    if keys is None and verifier is None:
        if not args.allow_anonymous:
            raise InvalidInputError(
                "no credentials configured: give --api-keys-file, $CVOPS_API_KEYS or --jwt-algorithm, "
                "or --allow-anonymous"
            )
        return None
    return Authenticator(keys, verifier)


def registry_resolver(model_dir: str, tracking_uri: str | None) -> Callable[[], Path] | None:
    """Return how to fetch a ``models:/`` package (behind a circuit breaker), or None for a folder."""
    if not model_dir.startswith("models:/"):
        return None
    from cvops.registry.mlflow_registry import ModelRegistry

    breaker = CircuitBreaker(
        "model-registry", failure_threshold=3, reset_timeout_s=30.0,
        on_state=lambda name, state: BREAKER_STATE.labels(name).set(int(state)),
    )  # fmt: skip
    registry = ModelRegistry(tracking_uri, breaker=breaker)
    return lambda: registry.resolve(model_dir)


async def serve(args: argparse.Namespace) -> None:
    """Load the model, then run the REST (and gRPC) servers until stopped."""
    settings = DetectorSettings(args.score_threshold, args.iou_threshold, num_threads=args.threads)
    metrics = ServingMetrics()
    gate = gateway_options(args, metrics, frozenset({args.model_name}))
    kserve_app.add_middleware(Gateway, **gate)
    instances = args.instances or gpu_count() or 1

    def load_pool(package: Path, chosen: DetectorSettings) -> Detector:
        # One instance per GPU ordinal; on CPU the instances share the cores.
        return DetectorPool([load_detector(package, replace(chosen, device_id=i)) for i in range(instances)])

    embedder = OnnxEmbedder(args.reid_model, num_threads=args.threads) if args.reid_model else None

    def new_tracker() -> ImageTracker:
        return ImageTracker(ByteTracker(), embedder, SparseFlowCompensator() if args.cmc else None)

    model = DetectModel(
        args.model_name,
        Path(args.model_dir),
        load_detector=load_pool,
        new_tracker=new_tracker,
        gallery=CrossCameraGallery(args.reid_similarity) if embedder is not None else None,
        resolve_package=registry_resolver(args.model_dir, args.tracking_uri),
        settings=settings,
        stream_ttl_s=args.stream_ttl_s,
        max_streams=args.max_streams,
        metrics=metrics,
        batching=BatchingConfig(args.max_batch_size, args.max_latency_ms, workers=instances),
    )
    model.load()
    server = ModelServer(http_port=args.http_port, grpc_port=args.grpc_port, enable_grpc=False, workers=1)
    server.register_model(model)
    rest = RESTServer(
        "kserve.model_server:app", server.dataplane, server.model_repository_extension, args.http_port
    )
    rest.config.host = args.host
    # SIGHUP re-reads the package; one that fails to load is refused and the current one stays.
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None, model.reload))
    tasks = [rest.start()]
    if args.grpc_port:
        grpc_gate = GrpcGate(gate["authenticator"], gate["rate_limiter"], metrics)  # type: ignore[arg-type]
        grpc_server = _BoundGRPCServer(
            args.host, grpc_gate, args.grpc_port, server.dataplane, server.model_repository_extension, {}
        )
        tasks.append(grpc_server.start(max_workers=4))
    logger.info("serving %s on http://%s:%d", args.model_name, args.host, args.http_port)
    await asyncio.gather(*tasks)


def main(argv: list[str] | None = None) -> None:
    """Entry point: a package that cannot be loaded ends the process with one line, exit 2."""
    from cvops.errors import CvopsError
    from cvops.offline import configure_offline

    args = parse_args(argv)
    configure_offline(Path.home() / ".cache" / "cvops")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(args))
    except CvopsError as error:
        sys.stderr.write(f"error: {error}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
