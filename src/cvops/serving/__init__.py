"""Serving logic independent of the server framework: streams, request handling, limits."""
