"""The store: immutable Parquet files under a data directory, presented as SQL views.

One writer owns each file set (the collector its raw segments, analytics its derived
tables); every reader opens the views with no lock, so nothing a reader does can block
or break ingest.
"""

from inferledger.store.catalog import connect_readonly, read_df, retry_vanished, write_catalog
from inferledger.store.layout import DataDir, NotAStore, write_parquet_atomic

__all__ = ["DataDir", "NotAStore", "connect_readonly", "read_df", "retry_vanished", "write_catalog",
           "write_parquet_atomic"]
