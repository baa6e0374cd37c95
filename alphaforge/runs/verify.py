"""Re-check stored runs (and their exports) against what they recorded: ``alphaforge verify``.

Nothing is recomputed and nothing is written; every check re-derives a fact from its sources and compares:

identity
    ``identity.run_hash``: the run_hash is ``hash_obj({"config": <config_json>, "data_hash": <data_hash>,
    "methodology": <manifest methodology>})`` (:func:`alphaforge.methodology.identity_hash`; a run recorded
    before methodology versions has none in its manifest and the legacy hash without it); ``identity.seeds``: ``seed_root`` is the config's ``seed`` (else
    derived from the config hash), ``bootstrap_seed == component_seed(seed_root, "bootstrap")`` and the
    manifest's seeds agree; ``identity.data_hash``: ``runs.data_hash == manifest.data_hash``.
features (one pair per feature the manifest references)
    ``feature.file[<column>]``: the parquet file at ``<cache_dir>/<meta_hash[:2]>/<meta_hash>.parquet`` exists
    and its sha256 is the manifest's digest; ``feature.row[<column>]``: the ``features_cache`` row exists,
    records the same digest, its spec hashes to its meta_hash and its ``dataset_hash`` is the run's data_hash.
rows
    ``rows.equity``: one equity row per bar (manifest ``n_bars``); ``rows.trades``: as many trades as the
    backtest metric ``n_trades``; ``rows.validation``: the validation row of a completed run exists.
coherence
    The validation row against the schema's own CHECK constraints, evaluated by the database
    (:func:`alphaforge.db.checks.violated_checks`; verify does not restate them), grouped by the columns they
    concern: ``validation.coherence`` (bootstrap method / block length / jitter / fallback),
    ``validation.pvalue`` (plus verify's own rules: finite and > 0, NULL only when the permutation test is
    disabled), ``validation.ci`` (plus: finite, NULL only when the bootstrap is disabled); then
    ``equity.ts`` (strictly increasing), ``trades.ts`` (non-decreasing in ``seq`` order).
export (:func:`verify_export`)
    ``export.manifest``, ``export.file[<name>]`` (sha256 and row count against the export's manifest.json),
    ``export.identity`` (its run_hash / data_hash against the run), ``export.content[<name>]`` (the rows equal
    the database's).

A :class:`VerifyReport` lists ``{check, ok, detail}``; ``report.ok`` is True when every check holds.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from sqlalchemy import func, select

from alphaforge.db.checks import violated_checks
from alphaforge.db.models import Equity, Run, Trade, Validation
from alphaforge.db.store import Store
from alphaforge.enums import HeadlineMetric, RunStatus
from alphaforge.errors import ConfigInvalid
from alphaforge.features.cache_file import entry_path
from alphaforge.hashing import UINT32, component_seed, hash_obj, seed_from_hex, sha256_file
from alphaforge.methodology import UNVERSIONED, identity_hash, recorded_methodology
from alphaforge.numeric import finite_number
from alphaforge.runs.queries import default_cache_dir
from alphaforge.runs.service import RunService

EXPORT_FILES = ("trades.parquet", "equity.parquet")


@dataclass(frozen=True)
class Check:
    """One verified fact."""

    check: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VerifyReport:
    """The checks of one run (or one export); ``ok`` when every check holds."""

    run_hash: str | None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, check: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(check, bool(ok), detail))
        return bool(ok)

    def extend(self, other: VerifyReport) -> None:
        self.checks.extend(other.checks)

    def to_json(self) -> dict[str, Any]:
        return {"run_hash": self.run_hash, "ok": self.ok, "checks": [c.to_json() for c in self.checks]}


def _short(h: Any) -> str:
    return f"{str(h)[:12]}…" if isinstance(h, str) and len(h) > 12 else repr(h)


def _parse(text: str | None) -> tuple[Any, str | None]:
    try:
        return json.loads(text or ""), None
    except ValueError as exc:
        return None, str(exc)


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


# --------------------------------------------------------------------------- runs
def completed_runs(store: Store) -> list[str]:
    """The run_hash of every completed run, oldest first."""
    with store.read_session() as s:
        stmt = (select(Run.run_hash).where(Run.status == RunStatus.COMPLETED)
                .order_by(Run.created_at, Run.run_hash))
        return list(s.scalars(stmt))


def verify_all(store: Store, *, cache_dir: str | os.PathLike[str] | None = None) -> list[VerifyReport]:
    """:func:`verify_run` for every completed run."""
    return [verify_run(store, h, cache_dir=cache_dir) for h in completed_runs(store)]


def verify_run(store: Store, run_hash: str, *, cache_dir: str | os.PathLike[str] | None = None) -> VerifyReport:
    """Every check of one run (a unique run_hash prefix is accepted; RunNotFound / RunAmbiguous otherwise).

    ``cache_dir`` is where the run's feature files are (default: the pipeline's
    :func:`~alphaforge.runs.queries.default_cache_dir`).
    """
    full = RunService(store).resolve(run_hash)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir(store)
    with store.read_session() as s:
        run = Run.find(s, full)
        status, data_hash = run.status, run.data_hash
        seed_root, bootstrap_seed = int(run.seed_root), int(run.bootstrap_seed)
        config_text, manifest_text = run.config_json, run.manifest_json
    report = VerifyReport(full)
    config, config_error = _parse(config_text)
    manifest, manifest_error = _parse(manifest_text)
    if config_error or not isinstance(config, dict):
        report.add("identity.config", False, f"runs.config_json is not a JSON object: {config_error or config!r}")
        config = {}
    if manifest_error or not isinstance(manifest, dict):
        report.add("identity.manifest", False,
                   f"runs.manifest_json is not a JSON object: {manifest_error or manifest!r}")
        manifest = {}

    _identity_checks(report, full, config, manifest, data_hash, seed_root, bootstrap_seed)
    if not report.add("status", status == RunStatus.COMPLETED,
                      RunStatus.COMPLETED.value if status == RunStatus.COMPLETED
                      else f"run is {status}: only a completed run has results to verify"):
        return report
    _feature_checks(report, store, cache, manifest, data_hash)
    _row_checks(report, store, full, config, manifest)
    return report


def _identity_checks(report: VerifyReport, run_hash: str, config: dict[str, Any], manifest: dict[str, Any],
                     data_hash: str, seed_root: int, bootstrap_seed: int) -> None:
    if config:
        methodology = recorded_methodology(manifest)
        expected = identity_hash(config, data_hash, methodology)
        inputs = "config, data_hash" + (", methodology" if methodology is not None else f" ({UNVERSIONED})")
        report.add("identity.run_hash", expected == run_hash,
                   f"sha256({inputs}) = {_short(expected)}" if expected == run_hash else
                   f"sha256({inputs}) = {_short(expected)} but the run is {_short(run_hash)}: "
                   "config_json, data_hash or the manifest's methodology changed after the run was recorded")
    problems = []
    seed = config.get("seed") if config else None
    if config:
        want_root = seed if isinstance(seed, int) and not isinstance(seed, bool) else seed_from_hex(hash_obj(config))
        if want_root != seed_root:
            problems.append(f"seed_root {seed_root} but the config gives {want_root}")
    if 0 <= seed_root < UINT32:
        want_boot = component_seed(seed_root, "bootstrap")
        if want_boot != bootstrap_seed:
            problems.append(f"bootstrap_seed {bootstrap_seed} but component_seed(seed_root, 'bootstrap') = "
                            f"{want_boot}")
    else:
        problems.append(f"seed_root {seed_root} is not a uint32")
    seeds = manifest.get("seeds")
    if not isinstance(seeds, Mapping):
        problems.append("the manifest has no seeds")
    else:
        for key, stored in (("seed_root", seed_root), ("bootstrap_seed", bootstrap_seed)):
            if seeds.get(key) != stored:
                problems.append(f"manifest seeds.{key} = {seeds.get(key)!r}, runs.{key} = {stored}")
    report.add("identity.seeds", not problems,
               "; ".join(problems) or f"seed_root {seed_root}, bootstrap_seed {bootstrap_seed}")
    recorded = manifest.get("data_hash")
    report.add("identity.data_hash", recorded == data_hash,
               f"runs.data_hash = manifest.data_hash = {_short(data_hash)}" if recorded == data_hash
               else f"runs.data_hash {_short(data_hash)} but manifest.data_hash {_short(recorded)}")


def _feature_checks(report: VerifyReport, store: Store, cache: Path, manifest: dict[str, Any],
                    data_hash: str) -> None:
    features = manifest.get("features")
    if not isinstance(features, list):
        report.add("features", False, f"manifest.features is not a list: {features!r}")
        return
    for i, feature in enumerate(features):
        meta_hash = _get(feature, "meta_hash")
        digest = _get(feature, "digest")
        label = str(_get(feature, "column") or f"#{i}")
        if not (isinstance(meta_hash, str) and len(meta_hash) == 64 and isinstance(digest, str)):
            report.add(f"feature[{label}]", False, f"manifest feature entry is malformed: {feature!r}")
            continue
        path = entry_path(cache, meta_hash)
        name = f"feature.file[{label}]"
        if not path.is_file():
            report.add(name, False, f"{path} is missing (is --cache-dir the directory the run used?)")
        else:
            try:
                actual = sha256_file(path)
            except OSError as exc:
                report.add(name, False, f"{path} cannot be read: {exc.strerror or exc}")
            else:
                report.add(name, actual == digest,
                           f"{path}: sha256 matches the manifest" if actual == digest else
                           f"{path}: sha256 {_short(actual)} but the manifest records {_short(digest)}")
        report.add(f"feature.row[{label}]", *_cache_row(store, meta_hash, digest, data_hash))


def _cache_row(store: Store, meta_hash: str, digest: str, data_hash: str) -> tuple[bool, str]:
    meta = store.get_cache_meta(meta_hash)
    if meta is None:
        return False, f"no features_cache row {_short(meta_hash)}"
    problems = []
    if meta.digest != digest:
        problems.append(f"row digest {_short(meta.digest)} but the manifest records {_short(digest)}")
    spec, error = _parse(meta.spec_json)
    if error or not isinstance(spec, dict):
        problems.append(f"spec_json is not a JSON object ({error or spec!r})")
    else:
        if hash_obj(spec) != meta_hash:
            problems.append(f"spec_json hashes to {_short(hash_obj(spec))}, not its meta_hash")
        if spec.get("dataset_hash") != data_hash:
            problems.append(f"spec dataset_hash {_short(spec.get('dataset_hash'))} but the run's data_hash is "
                            f"{_short(data_hash)}")
    return not problems, "; ".join(problems) or f"features_cache {_short(meta_hash)}: digest and spec match"


def _count(store: Store, model: Any, run_hash: str) -> int:
    with store.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(model.run_hash == run_hash)) or 0)


def _row_checks(report: VerifyReport, store: Store, run_hash: str, config: dict[str, Any],
                manifest: dict[str, Any]) -> None:
    n_bars = manifest.get("n_bars")
    equity_rows = _count(store, Equity, run_hash)
    report.add("rows.equity", equity_rows == n_bars,
               f"{equity_rows} equity rows, manifest n_bars {n_bars}" + ("" if equity_rows == n_bars
                                                                         else " (one row per bar expected)"))
    n_trades = store.read_metrics(run_hash, phase="backtest").get("n_trades")
    trade_rows = _count(store, Trade, run_hash)
    report.add("rows.trades", trade_rows == n_trades, f"{trade_rows} trade rows, backtest metric n_trades {n_trades}")
    validation = store.read_validation(run_hash)
    report.add("rows.validation", validation is not None,
               "validation row present" if validation is not None else "a completed run has no validation row")
    if validation is not None:
        for check, ok, detail in validation_checks(store, validation, config):
            report.add(check, ok, detail)
    equity_ts = store.read_equity(run_hash)["ts"].to_numpy()
    steps = equity_ts[1:] - equity_ts[:-1]
    bad = [i + 1 for i in range(len(steps)) if steps[i] <= 0]
    report.add("equity.ts", not bad, "strictly increasing" if not bad
               else f"equity ts not strictly increasing at row {bad[0]} ({len(bad)} rows)")
    trade_ts = store.read_trades(run_hash)["ts"].to_numpy()
    steps = trade_ts[1:] - trade_ts[:-1]
    bad = [i + 1 for i in range(len(steps)) if steps[i] < 0]
    report.add("trades.ts", not bad, "non-decreasing in seq order" if not bad
               else f"trade ts decreases at seq {bad[0]} ({len(bad)} trades)")


#: verify's validation checks and the columns each concerns; a CHECK constraint belongs to the first group
#: whose column its SQL mentions (a CHECK on none of them is reported under the first group)
VALIDATION_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("validation.coherence", ("bootstrap_method", "bootstrap_block_length", "bootstrap_jitter",
                              "bootstrap_fallback")),
    ("validation.pvalue", ("permutation_pvalue",)),
    ("validation.ci", tuple(f"bootstrap_{m}_{end}" for m in HeadlineMetric for end in ("low", "high"))),
)


def _group_of(sql: str) -> str:
    for check, columns in VALIDATION_GROUPS:
        if any(re.search(rf"\b{column}\b", sql) for column in columns):
            return check
    return VALIDATION_GROUPS[0][0]


def validation_checks(store: Store, row: Mapping[str, Any],
                      config: Mapping[str, Any]) -> list[tuple[str, bool, str]]:
    """The coherence checks of a validation row (``validation`` table columns) under the run's config.

    The schema's CHECK constraints are judged by the database (``store``); verify adds only what the schema
    cannot know: finiteness, p > 0, and NULL exactly when the config disabled that test.
    """
    with store.read_session() as s:
        broken = violated_checks(s, Validation, row)
    problems: dict[str, list[str]] = {check: [] for check, _ in VALIDATION_GROUPS}
    for ck in broken:
        problems[_group_of(str(ck.sqltext))].append(f"breaks CHECK {ck.name}: {ck.sqltext}")

    method, block = row.get("bootstrap_method"), row.get("bootstrap_block_length")
    fallback = row.get("bootstrap_fallback")
    coherence = problems["validation.coherence"]
    out = [("validation.coherence", not coherence, "; ".join(coherence) or
            f"method {method}" + (f", block length {block}" if block is not None else "")
            + (" (fallback)" if fallback else ""))]

    perm_n = _get(config, "validation", "permutation", "n")
    p = row.get("permutation_pvalue")
    pvalue = problems["validation.pvalue"]
    if p is None:
        if perm_n != 0:
            pvalue.append(f"NULL but the permutation test ran (n = {perm_n})")
    elif (finite := finite_number(p)) is None or finite <= 0:
        pvalue.append(f"p-value {p!r} is not in (0, 1]")
    out.append(("validation.pvalue", not pvalue, "; ".join(pvalue) or
                ("NULL (permutation disabled)" if p is None else f"p = {p:.6g}")))

    boot_n = _get(config, "validation", "bootstrap", "n")
    ci = problems["validation.ci"]
    for metric in HeadlineMetric:
        low, high = row.get(f"bootstrap_{metric}_low"), row.get(f"bootstrap_{metric}_high")
        if low is None and high is None:
            if boot_n != 0:
                ci.append(f"{metric} CI is NULL but the bootstrap ran (n = {boot_n})")
        elif finite_number(low) is None or finite_number(high) is None:
            ci.append(f"{metric} CI [{low!r}, {high!r}] is not two finite numbers")
    out.append(("validation.ci", not ci, "; ".join(ci) or "low <= high"))
    return out


# --------------------------------------------------------------------------- exports
def read_export_manifest(export_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest.json of an export directory (ConfigInvalid when there is none or it is not JSON)."""
    directory = Path(export_dir)
    if not directory.is_dir():
        raise ConfigInvalid(f"--export {str(directory)!r}: no such directory", field="export")
    path = directory / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigInvalid(f"--export {str(directory)!r}: no manifest.json (not an `alphaforge runs export` "
                            "directory)", field="export") from None
    except (OSError, ValueError) as exc:
        raise ConfigInvalid(f"--export {str(directory)!r}: manifest.json cannot be read: {exc}",
                            field="export") from None
    if not isinstance(manifest, dict):
        raise ConfigInvalid(f"--export {str(directory)!r}: manifest.json is not a JSON object", field="export")
    return manifest


def verify_export(export_dir: str | os.PathLike[str], *, store: Store | None = None,
                  run_hash: str | None = None) -> VerifyReport:
    """Re-hash an export's parquet files against its manifest.json.

    With ``run_hash`` the export must be of that run; with ``store`` its run must exist there with the same
    data_hash, and the exported rows must equal the database's.
    """
    directory = Path(export_dir)
    manifest = read_export_manifest(directory)
    exported = manifest.get("run_hash")
    report = VerifyReport(exported if isinstance(exported, str) else None)
    files = manifest.get("files")
    if not isinstance(files, Mapping):
        report.add("export.manifest", False, f"{directory / 'manifest.json'}: 'files' is not an object")
        files = {}
    else:
        missing = [n for n in EXPORT_FILES if n not in files]
        report.add("export.manifest", not missing,
                   f"lists {', '.join(sorted(files))}" if not missing else f"does not list {', '.join(missing)}")
    frames: dict[str, pd.DataFrame] = {}
    for name, info in sorted(files.items()):
        path = directory / name
        check = f"export.file[{name}]"
        want_sha, want_rows = _get(info, "sha256"), _get(info, "rows")
        if not path.is_file():
            report.add(check, False, f"{path} is missing")
            continue
        actual = sha256_file(path)
        if actual != want_sha:
            report.add(check, False, f"{path}: sha256 {_short(actual)} but manifest.json records {_short(want_sha)}")
            continue
        try:
            rows = pq.ParquetFile(path).metadata.num_rows
            frames[name] = pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable parquet is a failed check
            report.add(check, False, f"{path} is not readable parquet: {exc}")
            continue
        report.add(check, rows == want_rows, f"{path}: sha256 matches, {rows} rows" if rows == want_rows
                   else f"{path}: {rows} rows but manifest.json records {want_rows}")

    data_hash = manifest.get("data_hash")
    problems = []
    if _get(manifest, "run_manifest", "data_hash") not in (None, data_hash):
        problems.append(f"data_hash {_short(data_hash)} but run_manifest.data_hash "
                        f"{_short(_get(manifest, 'run_manifest', 'data_hash'))}")
    if run_hash is not None and exported != run_hash:
        problems.append(f"export is of run {_short(exported)}, not {_short(run_hash)}")
    if store is not None and isinstance(exported, str):
        with store.read_session() as s:
            row = s.get(Run, exported)
            stored_hash = None if row is None else row.data_hash
        if row is None:
            problems.append(f"run {_short(exported)} is not in the database")
        elif stored_hash != data_hash:
            problems.append(f"export data_hash {_short(data_hash)} but the run's is {_short(stored_hash)}")
        else:
            for name, frame in sorted(frames.items()):
                db = store.read_trades(exported) if name == "trades.parquet" else store.read_equity(exported)
                same = list(frame.columns) == list(db.columns) and len(frame) == len(db) and all(
                    frame[c].reset_index(drop=True).equals(db[c].astype(frame[c].dtype).reset_index(drop=True))
                    for c in db.columns
                )
                report.add(f"export.content[{name}]", same,
                           f"{len(frame)} rows equal the database's" if same
                           else f"{directory / name} differs from the run's rows in the database "
                                f"({len(frame)} exported, {len(db)} stored)")
    report.add("export.identity", not problems, "; ".join(problems) or
               f"run {_short(exported)}, data_hash {_short(data_hash)}")
    return report
