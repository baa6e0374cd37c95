"""Type stub of the compiled rolling-moments kernel (alphaforge/features/_rolling.c)."""

from typing import Any

def window_sums(x: Any, window: int, phase: int, s1: Any, s2: Any | None, dev: Any | None, /) -> None: ...
