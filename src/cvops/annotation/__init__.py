"""Human-in-the-loop annotation on Label Studio: local server, push frames, simulate, sync.

The one-call API the pipeline components use:

- :func:`~cvops.annotation.server.start_server` / :func:`~cvops.annotation.server.stop_server`
- :func:`~cvops.annotation.push.push_frames` -> :class:`~cvops.annotation.push.PushResult`
- :func:`~cvops.annotation.simulate.simulate_annotations` -> ``SimulationResult``
- :func:`~cvops.annotation.sync.sync_annotations` -> :class:`~cvops.annotation.sync.SyncResult`

Import them from their modules; this package imports nothing heavy.
"""
