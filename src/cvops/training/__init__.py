"""Training and export: Ultralytics fine-tuning, ONNX export, INT8/FP16, TensorRT engines."""
