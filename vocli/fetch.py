"""`vocli fetch`, `vocli verify`, `vocli datasets` as library calls (same names, same arguments)."""

from vocli.datasets.fetch import FetchedFile, FetchedItem, FetchResult, fetch
from vocli.datasets.verify import DatasetList, VerifyResult, list_datasets, verify

__all__ = ["fetch", "verify", "list_datasets", "FetchResult", "FetchedItem", "FetchedFile", "VerifyResult", "DatasetList"]
