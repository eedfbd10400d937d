"""Export of trained models to ONNX, each with a manifest.json that the handlers read."""
