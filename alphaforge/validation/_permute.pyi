"""Type stub of the compiled price-rebuild kernel (alphaforge/validation/_permute.c)."""

from typing import Any

def rebuild(
    table: Any, perm: Any, base: float, log_close: Any, others: Any, carry: float | None = ..., /
) -> float | None: ...
def permutation(
    state_hi: int, state_lo: int, inc_hi: int, inc_lo: int, has_uint32: int, uinteger: int, out: Any, /
) -> tuple[int, int, int, int]: ...
