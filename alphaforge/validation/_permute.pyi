"""Type stub of the compiled price-rebuild kernel (alphaforge/validation/_permute.c)."""

from typing import Any

def rebuild(
    table: Any, perm: Any, base: float, log_close: Any, others: Any, carry: float | None = ..., /
) -> float | None: ...
