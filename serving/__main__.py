"""``python -m serving``: serve a model package over REST v1/v2 and gRPC v2.

KServe's own ModelServer binds every interface; this entry point builds the same application
and binds ``--host`` (127.0.0.1 by default). It is the only place that reads arguments and
picks the real runtime and tracker.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from concurrent import futures
from pathlib import Path

from kserve.model_server import ModelServer
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.rest.server import RESTServer

from cvops.config import DetectorSettings
from cvops.detection.loader import load_detector
from cvops.tracking.iou_tracker import IouTracker
from serving.predictor import DetectModel

logger = logging.getLogger("serving")

MAX_GRPC_MESSAGE_BYTES = 64 * 1024 * 1024


class _BoundGRPCServer(GRPCServer):  # type: ignore[misc]
    """KServe's gRPC server, listening on a chosen host instead of every interface."""

    def __init__(self, host: str, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._host = host

    async def start(self, max_workers: int) -> None:
        from grpc import aio

        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
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
    parser.add_argument("--model-dir", type=Path, required=True, help="Model package folder.")
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
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Load the model, then run the REST (and gRPC) servers until stopped."""
    settings = DetectorSettings(args.score_threshold, args.iou_threshold, num_threads=args.threads)
    model = DetectModel(
        args.model_name,
        args.model_dir,
        load_detector=load_detector,
        new_tracker=IouTracker,
        settings=settings,
        stream_ttl_s=args.stream_ttl_s,
        max_streams=args.max_streams,
    )
    model.load()
    server = ModelServer(http_port=args.http_port, grpc_port=args.grpc_port, enable_grpc=False, workers=1)
    server.register_model(model)
    rest = RESTServer(
        "kserve.model_server:app", server.dataplane, server.model_repository_extension, args.http_port
    )
    rest.config.host = args.host
    tasks = [rest.start()]
    if args.grpc_port:
        grpc_server = _BoundGRPCServer(
            args.host, args.grpc_port, server.dataplane, server.model_repository_extension, {}
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
