"""Type stub of the compiled bootstrap trial-sum kernel (alphaforge/validation/_resample.c)."""

from typing import Any

def chunk_sums(table: Any, offsets: Any, counts: Any, out: Any, /) -> None: ...
