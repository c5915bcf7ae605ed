"""Detector runtimes; heavy imports (torch, Ultralytics, TensorRT) happen only in here."""
