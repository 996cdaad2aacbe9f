"""vocli: PASCAL VOC to a trained, evaluated YOLOv3 from the command line."""

__version__ = "0.1.0"
