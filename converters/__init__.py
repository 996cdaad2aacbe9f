"""Converters between VOC and other formats.

``voc_to_yolo``: VOC XML -> darknet/YOLO labels, lists, ``.names``/``.data``.
``yolo_to_voc``: YOLO labels + images -> VOC XML.
``ssd_targets``: VOC XML -> SSD default boxes, matched and encoded targets in HDF5.
Modules are imported on demand; this package imports nothing heavy.
"""
