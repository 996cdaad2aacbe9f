"""vocli: PASCAL VOC to a trained, evaluated YOLOv3 from the command line."""

from vocli import clock as _clock  # noqa: F401 - first: records when vocli was imported (vocli.clock.STARTED)

__version__ = "0.1.0"
