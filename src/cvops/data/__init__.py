"""Datasets: formats, versions, splits and synthetic fixtures."""
