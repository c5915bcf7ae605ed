"""Detector evaluation: COCO mAP, recall, confusion and PR curves, latency, and the export gate."""
