"""Darknet YOLOv3: cfg parser, the PyTorch model built from a cfg, and output decoding."""
