"""Pydantic models for everything that crosses an edge: HTTP JSON and artifact files."""
