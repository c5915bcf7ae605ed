"""Detection core: the Detections record, box ops, preprocessing, decoders and runtimes."""
