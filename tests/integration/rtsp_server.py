"""Serve one H.264 MP4 file over RTSP on 127.0.0.1, for the video source tests.

Run by the SYSTEM interpreter (``/usr/bin/python3``), which has GStreamer's RTSP server bindings
from Debian (``make system-deps``); the project's virtualenv does not. It imports nothing from
cvops. Every client gets its own pipeline (the factory is not shared), so each one reads the
whole file from its first frame, paced in real time by the server's clock::

    /usr/bin/python3 tests/integration/rtsp_server.py --port 8554 --file bikes.mp4
    # -> rtsp://127.0.0.1:8554/stream

It prints ``ready`` on stdout once it listens, and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", type=Path, required=True, help="an MP4 file with an H.264 video track")
    parser.add_argument("--mount", default="/stream", help="the path of the stream in the URL")
    args = parser.parse_args()
    if not args.file.is_file():
        print(f"no such file: {args.file}", file=sys.stderr)
        return 2

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    location = str(args.file.resolve()).replace('"', '\\"')
    factory.set_launch(
        f'( filesrc location="{location}" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 )'
    )
    factory.set_shared(False)
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1

    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    print("ready", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
