"""YOLOv3 training: data pipeline (``data``), loss (``loss``) and the training loop (``train``)."""
