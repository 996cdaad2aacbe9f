"""Datasets: VOC annotation parsing, splits, the synthetic shapes set, fetch/verify."""
