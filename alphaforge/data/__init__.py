"""OHLCV data: read files (:mod:`.readers`), normalize, validate, hash and count anomalies (:mod:`.normalize`),
and make synthetic bars (:mod:`.synthetic`). Pure compute: no database, no CLI."""

from alphaforge.data.normalize import (
    GAP_FACTOR,
    HASH_FORMAT,
    OHLCV_COLUMNS,
    Dataset,
    anomaly_counters,
    compute_data_hash,
    dataset_from_frame,
    normalize_ohlcv,
    validate_ohlcv,
)
from alphaforge.data.readers import load_ohlcv, read_ohlcv_file

__all__ = [
    "GAP_FACTOR", "HASH_FORMAT", "OHLCV_COLUMNS", "Dataset", "anomaly_counters", "compute_data_hash", "dataset_from_frame",
    "load_ohlcv", "normalize_ohlcv", "read_ohlcv_file", "validate_ohlcv",
]
