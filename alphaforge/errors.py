"""The typed error catalog.

Every error AlphaForge raises on purpose is an :class:`AlphaForgeError` with a stable ``error_code`` (stored in
``run_errors.error_code`` and printed by the CLI) and the CLI ``exit_code`` it maps to:
0 ok, 1 internal, 2 usage/config, 3 data, 4 database/schema.
Messages say what was wrong, where (row, column, field) and what to do.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AlphaForgeError(Exception):
    """Base class: a stable ``error_code`` and a CLI ``exit_code``; ``context`` holds structured details."""

    error_code: ClassVar[str] = "INTERNAL"
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        return self.message


class ConfigInvalid(AlphaForgeError):
    """A run configuration, CLI option or strategy parameter is wrong (names the field)."""

    error_code = "CONFIG_INVALID"
    exit_code = 2


class DataInvalid(AlphaForgeError):
    """An OHLCV dataset, a bulk frame or a row written breaks a rule or a database constraint (names the
    row/timestamp, column and rule, or the constraint)."""

    error_code = "DATA_INVALID"
    exit_code = 3


class CacheCorrupt(AlphaForgeError):
    """A feature-cache parquet file is missing or its digest does not match the recorded one."""

    error_code = "CACHE_CORRUPT"
    exit_code = 1


class CacheUnavailable(AlphaForgeError):
    """The feature-cache directory cannot be created or written."""

    error_code = "CACHE_UNAVAILABLE"
    exit_code = 2


class DatabaseUnavailable(AlphaForgeError):
    """The database URL is invalid, or the database cannot be reached or refused the operation (not a database,
    locked beyond the busy timeout, a write in a read-only session …)."""

    error_code = "DB_UNAVAILABLE"
    exit_code = 4


class SchemaBehind(AlphaForgeError):
    """The database schema is older than this code: run ``alphaforge db upgrade``."""

    error_code = "SCHEMA_BEHIND"
    exit_code = 4


class SchemaAhead(AlphaForgeError):
    """The database was migrated by newer code than this one."""

    error_code = "SCHEMA_AHEAD"
    exit_code = 4


class IllegalTransition(AlphaForgeError):
    """A run lifecycle transition that the state machine does not allow."""

    error_code = "ILLEGAL_TRANSITION"
    exit_code = 1


class RunNotFound(AlphaForgeError):
    """No run matches the given run_hash (or prefix)."""

    error_code = "RUN_NOT_FOUND"
    exit_code = 2


class RunAmbiguous(AlphaForgeError):
    """A run_hash prefix matches more than one run."""

    error_code = "RUN_AMBIGUOUS"
    exit_code = 2


class RunAlreadyRunning(AlphaForgeError):
    """Another worker is executing this run right now."""

    error_code = "RUN_RUNNING"
    exit_code = 1


class RunAbandoned(AlphaForgeError):
    """A run's worker stopped heart-beating; the run was marked failed."""

    error_code = "RUN_ABANDONED"
    exit_code = 1


class IntegrityMismatch(AlphaForgeError):
    """A stored artifact or row set does not match what the run recorded (verify, finalize)."""

    error_code = "INTEGRITY_MISMATCH"
    exit_code = 1


def error_code_of(exc: BaseException) -> str:
    """The stable code for any exception: the catalog's code, else ``INTERNAL``."""
    return exc.error_code if isinstance(exc, AlphaForgeError) else "INTERNAL"


def error_class(code: str) -> type[AlphaForgeError]:
    """The catalog class with this ``error_code`` (``AlphaForgeError`` for an unknown code)."""
    pending: list[type[AlphaForgeError]] = [AlphaForgeError]
    while pending:
        cls = pending.pop()
        if cls.error_code == code:
            return cls
        pending.extend(cls.__subclasses__())
    return AlphaForgeError
