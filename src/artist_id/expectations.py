"""Great Expectations suites for the raw dataset (the ``validate`` stage).

Four GX suites run on string-typed frames (the CSVs read with ``dtype=str,
keep_default_na=False``); empty strings count as missing values:

- ``artists``: artists.csv columns, ids, names, ``paintings``, ``years``, ``wikipedia``;
- ``manifest``: manifest.csv columns, ids, hashes, statuses, artist names, quarantine share;
- ``manifest_ok``: the ``status == ok`` rows of the manifest with numeric width/height
  (a filtered frame, so the exact-columns check above still sees the file as it is);
- ``found_vs_declared``: one row per artist, found/declared file ratio (warnings only).

Every expectation carries a GX ``severity`` ("critical" or "warning") and a readable
``description``; :func:`validate_dataset` turns failed expectations into :class:`Failure`
lines. Expectations whose columns are missing are not run (GX would raise on them): the
exact-columns expectation reports the missing columns and the report lists them as skipped.

GX runs in an ephemeral (in-memory) context: nothing is written to disk except the Data
Docs site, and only when ``docs_dir`` is given. Great Expectations is imported lazily
because importing it takes seconds. GX's pages load their scripts, styles and logo from CDNs;
:func:`offline_data_docs` points them at copies inside the site, so they work offline.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from artist_id import manifest
from artist_id.config import ValidateParams

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import (
        ExpectationValidationResult,
    )
    from great_expectations.expectations.expectation import Expectation

# GX must never phone home; set before great_expectations is first imported.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

log = logging.getLogger(__name__)

ARTISTS_COLUMNS: tuple[str, ...] = (
    "id",
    "name",
    "years",
    "genre",
    "nationality",
    "bio",
    "wikipedia",
    "paintings",
)
# one definition of the manifest schema: the one ingest writes
MANIFEST_COLUMNS: tuple[str, ...] = tuple(manifest.MANIFEST_COLUMNS)
STATUSES: tuple[str, ...] = ("ok", "quarantined")

# \Z rather than $: pandas' str.contains would let "$" match before a trailing newline.
POSITIVE_INT_RE = r"^0*[1-9][0-9]*\Z"
YEARS_RE = r"^[0-9]{4} [-\u2013] [0-9]{4}\Z"  # "1884 - 1920" or "1853 – 1890" (en dash)
WIKIPEDIA_RE = r"^https?://[a-z]{2,3}\.wikipedia\.org/wiki/\S+\Z"
SHA256_RE = r"^[0-9a-f]{64}\Z"
PHASH_RE = r"^[0-9a-f]{16}\Z"

CRITICAL = "critical"
WARNING = "warning"
MAX_EXAMPLES = 5
_MAX_EXAMPLE_CHARS = 80
_SUITE_UNITS = {
    "artists": "artists",
    "manifest": "files",
    "manifest_ok": "ok files",
    "found_vs_declared": "artists",
}
# Derived (not source) columns; their failures are reported under the source column.
_WIDTH_PX = "width_px"
_HEIGHT_PX = "height_px"


@dataclass(frozen=True)
class Failure:
    """One failed expectation, with a few offending values."""

    suite: str
    expectation: str  # the GX expectation type, e.g. expect_column_values_to_match_regex
    column: str | None  # source column, None for table-level expectations
    severity: str  # "critical" or "warning"
    observed: str  # what was found, e.g. "2 of 50 artists"
    examples: list[str]  # a few offending values
    message: str  # the rule, e.g. "values must be integers >= 1"

    def line(self) -> str:
        """One readable line, e.g. ``[critical] artists.paintings: values must be ...``."""
        target = f"{self.suite}.{self.column}" if self.column else self.suite
        text = f"[{self.severity}] {target}: {self.message}"
        if self.observed:
            text += f" ({self.observed})"
        if self.examples:
            text += " — e.g. " + ", ".join(repr(e) for e in self.examples)
        return text

    def _sort_key(self) -> tuple[int, str, str, str, str]:
        rank = 0 if self.severity == CRITICAL else 1
        return (rank, self.suite, self.column or "", self.expectation, self.message)


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of :func:`validate_dataset`."""

    success: bool  # False iff any critical expectation failed
    failures: list[Failure]  # critical and warning, sorted (critical first)
    evaluated: int  # number of expectations evaluated
    skipped: list[str] = field(default_factory=list)  # expectations not run: missing columns

    @property
    def critical(self) -> list[Failure]:
        """The failures that make the report fail."""
        return [f for f in self.failures if f.severity == CRITICAL]

    @property
    def warnings(self) -> list[Failure]:
        """The failures that are only reported."""
        return [f for f in self.failures if f.severity != CRITICAL]

    def lines(self) -> list[str]:
        """One readable line per failure, critical first."""
        return [f.line() for f in self.failures]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary: deterministic, sorted, no timestamps or absolute paths."""
        failures = sorted(self.failures, key=Failure._sort_key)
        return {
            "success": self.success,
            "evaluated": self.evaluated,
            "critical": len(self.critical),
            "warnings": len(self.warnings),
            "failures": [{**asdict(f), "line": f.line()} for f in failures],
            "skipped": sorted(self.skipped),
        }


@dataclass(frozen=True)
class _Check:
    """One expectation plus what is needed to explain its failure."""

    key: str  # stable id, also stored in the GX expectation meta
    suite: str
    column: str | None
    severity: str
    message: str
    needs: tuple[tuple[str, str], ...]  # (raw table, column) pairs that must exist
    kind: str  # attribute name in great_expectations.expectations
    kwargs: Mapping[str, Any]
    example: Callable[[pd.DataFrame, Any], str] | None = None  # (frame, row label) -> text
    observed: Callable[[dict[str, Any]], str] | None = None


def _clean(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy ``frame`` with every value a string, empty or blank strings becoming None."""
    out = pd.DataFrame(index=frame.index)
    for name in frame.columns:
        out[str(name)] = pd.Series(
            [None if _blank(v) else str(v) for v in frame[name].tolist()],
            index=frame.index,
            dtype=object,
        )
    return out


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _positive_int(value: Any) -> int | None:
    """The integer in a string like ``"12"``, or None when it is not an integer >= 1."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        return None
    number = int(value)
    return number if number >= 1 else None


def _pixels(values: pd.Series) -> pd.Series:
    """Integer sizes; missing or non-integer values become -1 so a >= check rejects them."""
    return pd.Series(
        [
            int(v) if isinstance(v, str) and v.isascii() and v.isdigit() else -1
            for v in values.tolist()
        ],
        index=values.index,
        dtype="int64",
    )


def _found_vs_declared(artists: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per named artist: declared paintings, files found (any status), their ratio."""
    counts = manifest["artist"].dropna().value_counts()
    rows = []
    for name, paintings in zip(
        artists["name"].tolist(), artists["paintings"].tolist(), strict=True
    ):
        if name is None:
            continue
        declared = _positive_int(paintings)
        found = int(counts.get(name, 0))
        rows.append(
            {
                "artist": name,
                "declared": declared,
                "found": found,
                # Non-integer "declared" values are the artists suite's failure, not this one's.
                "ratio": None if declared is None else found / declared,
            }
        )
    frame = pd.DataFrame(rows, columns=["artist", "declared", "found", "ratio"])
    frame["ratio"] = frame["ratio"].astype("float64")
    return frame


def _frames(artists: pd.DataFrame, manifest: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The frame each suite validates (only the ones that can be built)."""
    frames = {"artists": artists, "manifest": manifest}
    if "status" in manifest.columns:
        ok = manifest[manifest["status"] == "ok"].copy()
        if "width" in ok.columns:
            ok[_WIDTH_PX] = _pixels(ok["width"])
        if "height" in ok.columns:
            ok[_HEIGHT_PX] = _pixels(ok["height"])
        frames["manifest_ok"] = ok
    if {"name", "paintings"} <= set(artists.columns) and "artist" in manifest.columns:
        frames["found_vs_declared"] = _found_vs_declared(artists, manifest)
    return frames


def _label(frame: pd.DataFrame, index: Any) -> str:
    """A short name for a manifest row: its image_id, else its source path, else its row."""
    for key in ("image_id", "source_path"):
        if key in frame.columns and frame.at[index, key] is not None:
            return str(frame.at[index, key])
    return f"row {index}"


def _value_with_id(column: str) -> Callable[[pd.DataFrame, Any], str]:
    def show(frame: pd.DataFrame, index: Any) -> str:
        value = frame.at[index, column] if column in frame.columns else None
        shown = " empty" if value is None else f"={value}"
        return f"{_label(frame, index)}: {column}{shown}"

    return show


def _row_id(frame: pd.DataFrame, index: Any) -> str:
    if "id" in frame.columns and "name" in frame.columns:
        return f"id={frame.at[index, 'id']} name={frame.at[index, 'name']}"
    return _label(frame, index)


def _quarantined(frame: pd.DataFrame, index: Any) -> str:
    reason = frame.at[index, "reason"] if "reason" in frame.columns else None
    status = frame.at[index, "status"]
    what = reason if status == "quarantined" and reason else f"status={status}"
    return f"{_label(frame, index)} ({what})"


def _ratio(frame: pd.DataFrame, index: Any) -> str:
    row = frame.loc[index]
    return f"{row['artist']}: found {int(row['found'])} of {int(row['declared'])} declared"


@dataclass
class _Suite:
    """Builds one suite's checks: one :meth:`expect` call per expectation, with its reason.

    ``table`` is the raw table (artists or manifest) whose columns a check needs; a check on
    ``column`` needs that column unless ``needs`` says otherwise ("table.column" strings).
    ``always_needs`` are prepended to every check's needs (the ok rows need ``status``).
    """

    name: str
    table: str
    always_needs: tuple[str, ...] = ()
    checks: list[_Check] = field(default_factory=list)

    def expect(
        self,
        key: str,
        kind: str,
        *,
        why: str,
        column: str | None = None,
        shown_as: str | None = None,
        needs: Sequence[str] | None = None,
        severity: str = CRITICAL,
        example: Callable[[pd.DataFrame, Any], str] | None = None,
        observed: Callable[[dict[str, Any]], str] | None = None,
        **gx_kwargs: Any,
    ) -> None:
        """Add ``great_expectations.expectations.<kind>`` on ``column`` (if any).

        ``why`` is the message a failure shows; ``shown_as`` names the source column when
        the checked one is derived (``width_px`` is shown as ``width``).
        """
        if needs is None:
            needs = [f"{self.table}.{shown_as or column}"] if column else []
        pairs = [tuple(n.split(".", 1)) for n in (*self.always_needs, *needs)]
        self.checks.append(
            _Check(
                key=f"{self.name}.{key}",
                suite=self.name,
                column=shown_as or column,
                severity=severity,
                message=why,
                needs=tuple((t, c) for t, c in pairs),
                kind=kind,
                kwargs={"column": column, **gx_kwargs} if column else gx_kwargs,
                example=example,
                observed=observed,
            )
        )


def _artists_suite() -> list[_Check]:
    """artists.csv: the columns the pipeline reads, unique ids and names, parseable values."""
    s = _Suite("artists", table="artists")
    s.expect(
        "columns",
        "ExpectTableColumnsToMatchOrderedList",
        why="columns must be exactly " + ",".join(ARTISTS_COLUMNS),
        column_list=list(ARTISTS_COLUMNS),
    )
    s.expect(
        "rows", "ExpectTableRowCountToBeBetween", why="must have at least one row", min_value=1
    )
    for name in ("id", "name"):
        s.expect(
            f"{name}.not_null",
            "ExpectColumnValuesToNotBeNull",
            column=name,
            why="must not be empty",
            example=_row_id,
        )
        s.expect(
            f"{name}.unique", "ExpectColumnValuesToBeUnique", column=name, why="must be unique"
        )
    s.expect(
        "paintings.not_null",
        "ExpectColumnValuesToNotBeNull",
        column="paintings",
        why="must not be empty",
        example=_row_id,
    )
    s.expect(
        "paintings.positive_int",
        "ExpectColumnValuesToMatchRegex",
        column="paintings",
        why="values must be integers >= 1",
        regex=POSITIVE_INT_RE,
    )
    s.expect(
        "years.format",
        "ExpectColumnValuesToMatchRegex",
        column="years",
        why="must look like 'YYYY - YYYY' (hyphen or en dash)",
        regex=YEARS_RE,
    )
    s.expect(
        "wikipedia.url",
        "ExpectColumnValuesToMatchRegex",
        column="wikipedia",
        why="must be a URL like http://en.wikipedia.org/wiki/Name",
        regex=WIKIPEDIA_RE,
    )
    return s.checks


def _manifest_suite(params: ValidateParams, artist_names: Sequence[str]) -> list[_Check]:
    """manifest.csv as ingest wrote it: schema, ids, hashes, statuses, the quarantined share."""
    s = _Suite("manifest", table="manifest")
    s.expect(
        "columns",
        "ExpectTableColumnsToMatchOrderedList",
        why="columns must be exactly " + ",".join(MANIFEST_COLUMNS),
        column_list=list(MANIFEST_COLUMNS),
    )
    s.expect(
        "rows", "ExpectTableRowCountToBeBetween", why="must have at least one row", min_value=1
    )
    for name in ("image_id", "artist", "status"):
        s.expect(
            f"{name}.not_null",
            "ExpectColumnValuesToNotBeNull",
            column=name,
            why="must not be empty",
            example=_value_with_id(name),
        )
    s.expect(
        "image_id.unique", "ExpectColumnValuesToBeUnique", column="image_id", why="must be unique"
    )
    s.expect(
        "sha256.format",
        "ExpectColumnValuesToMatchRegex",
        column="sha256",
        why="must be 64 lowercase hex digits",
        example=_value_with_id("sha256"),
        regex=SHA256_RE,
    )
    s.expect(
        "status.values",
        "ExpectColumnValuesToBeInSet",
        column="status",
        why="must be 'ok' or 'quarantined'",
        value_set=list(STATUSES),
    )
    s.expect(
        "artist.known",
        "ExpectColumnValuesToBeInSet",
        column="artist",
        why="must be an artist named in artists.csv",
        needs=["manifest.artist", "artists.name"],
        value_set=sorted(set(artist_names)),
    )
    share = params.max_quarantined
    s.expect(
        "status.quarantined_share",
        "ExpectColumnValuesToBeInSet",
        column="status",
        why=f"at most {100 * share:g}% of files may be quarantined",
        example=_quarantined,
        observed=_quarantined_share,
        value_set=["ok"],
        mostly=max(0.0, min(1.0, 1.0 - share)),
    )
    s.expect(
        "reason.quarantined",
        "ExpectColumnValuesToNotBeNull",
        column="reason",
        why="quarantined files must give a reason",
        needs=["manifest.status", "manifest.reason"],
        example=_value_with_id("reason"),
        row_condition=_status_is("quarantined"),
    )
    return s.checks


def _manifest_ok_suite(params: ValidateParams) -> list[_Check]:
    """The usable images: large enough to train on, with a path and a perceptual hash."""
    s = _Suite("manifest_ok", table="manifest", always_needs=("manifest.status",))
    for name, derived in (("width", _WIDTH_PX), ("height", _HEIGHT_PX)):
        s.expect(
            f"{name}.min_side",
            "ExpectColumnValuesToBeBetween",
            column=derived,
            shown_as=name,
            why=f"{name} must be an integer >= {params.min_side} px",
            example=_value_with_id(name),
            min_value=params.min_side,
        )
    # A quarantined file may have no hash: ingest refuses some without reading them
    # (symlinks, special files, files over the byte cap).
    for name in ("sha256", "path", "phash"):
        s.expect(
            f"{name}.not_null",
            "ExpectColumnValuesToNotBeNull",
            column=name,
            why="must not be empty for ok files",
            example=_value_with_id(name),
        )
    s.expect(
        "phash.format",
        "ExpectColumnValuesToMatchRegex",
        column="phash",
        why="must be 16 lowercase hex digits",
        example=_value_with_id("phash"),
        regex=PHASH_RE,
    )
    return s.checks


def _found_vs_declared_suite(params: ValidateParams) -> list[_Check]:
    """Files found per artist against artists.csv's count: a warning, never a stop."""
    s = _Suite("found_vs_declared", table="artists")
    tol = params.paintings_tolerance
    s.expect(
        "ratio",
        "ExpectColumnValuesToBeBetween",
        column="ratio",
        shown_as="paintings",
        why=f"files found per artist must be within ±{100 * tol:g}% of the declared paintings",
        needs=["artists.name", "artists.paintings", "manifest.artist"],
        severity=WARNING,
        example=_ratio,
        min_value=max(0.0, 1.0 - tol),
        max_value=1.0 + tol,
    )
    return s.checks


def _quarantined_share(result: dict[str, Any]) -> str:
    count, total = result.get("unexpected_count", 0), result.get("element_count", 0)
    pct = 100.0 * count / total if total else 0.0
    return f"{count} of {total} files not ok, {pct:.1f}%"


def _checks(params: ValidateParams, artist_names: Sequence[str]) -> list[_Check]:
    """Every expectation of every suite, in a fixed order."""
    return [
        *_artists_suite(),
        *_manifest_suite(params, artist_names),
        *_manifest_ok_suite(params),
        *_found_vs_declared_suite(params),
    ]


def _status_is(value: str) -> Any:
    from great_expectations.expectations.row_conditions import Column

    return Column("status") == value


def _columns_message(expected: Sequence[str], observed: Sequence[str]) -> str:
    missing = [c for c in expected if c not in observed]
    extra = [c for c in observed if c not in expected]
    parts = []
    if missing:
        parts.append("missing column(s) " + ", ".join(missing))
    if extra:
        parts.append("unexpected column(s) " + ", ".join(extra))
    if not parts:
        parts.append("columns out of order")
    return "; ".join(parts)


def _examples(check: _Check, frame: pd.DataFrame, result: dict[str, Any]) -> list[str]:
    values: list[str] = []
    if check.example is not None:
        for index in result.get("partial_unexpected_index_list") or []:
            if index in frame.index:
                values.append(check.example(frame, index))
    else:
        values = [
            "empty" if v is None else str(v) for v in result.get("partial_unexpected_list") or []
        ]
    unique = list(dict.fromkeys(values))[:MAX_EXAMPLES]
    return [
        v if len(v) <= _MAX_EXAMPLE_CHARS else v[: _MAX_EXAMPLE_CHARS - 1] + "…" for v in unique
    ]


def _failure(check: _Check, frame: pd.DataFrame, outcome: ExpectationValidationResult) -> Failure:
    result = dict(outcome.result or {})
    exception = outcome.exception_info or {}
    raised = exception.get("raised_exception") or any(
        isinstance(v, dict) and v.get("raised_exception") for v in exception.values()
    )
    expectation = outcome.expectation_config.type if outcome.expectation_config else check.kind
    message, observed, examples = check.message, "", []
    if raised:
        detail = exception.get("exception_message") or next(
            (v.get("exception_message") for v in exception.values() if isinstance(v, dict)), ""
        )
        observed = f"could not be evaluated: {detail}"
    elif check.kind == "ExpectTableColumnsToMatchOrderedList":
        seen = [str(c) for c in result.get("observed_value") or []]
        expected = list(check.kwargs["column_list"])
        message = _columns_message(expected, seen)
        observed = "expected " + ",".join(expected)
    elif check.kind == "ExpectTableRowCountToBeBetween":
        observed = f"{result.get('observed_value', 0)} rows"
    else:
        if check.observed is not None:
            observed = check.observed(result)
        elif "unexpected_count" in result:
            unit = _SUITE_UNITS.get(check.suite, "rows")
            observed = f"{result['unexpected_count']} of {result.get('element_count', 0)} {unit}"
        examples = _examples(check, frame, result)
    return Failure(
        suite=check.suite,
        expectation=expectation,
        column=check.column,
        severity=check.severity,
        observed=observed,
        examples=examples,
        message=message,
    )


def _build_expectation(check: _Check) -> Expectation:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.metadata_types import FailureSeverity

    cls = getattr(gxe, check.kind)
    expectation: Expectation = cls(
        **check.kwargs,
        severity=FailureSeverity(check.severity),
        # Data Docs do not show severity, so the description carries it.
        description=f"[{check.severity}] {check.column or 'table'}: {check.message}",
        meta={"check": check.key},
    )
    return expectation


def validate_dataset(
    artists: pd.DataFrame,
    manifest: pd.DataFrame,
    params: ValidateParams,
    docs_dir: Path | None = None,
) -> ValidationReport:
    """Run the artists, manifest, manifest_ok and found_vs_declared suites.

    ``artists`` and ``manifest`` are the raw CSVs read as strings. When ``docs_dir`` is
    given, a GX Data Docs site (``index.html``) is built there and nowhere else.
    """
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    raw = {"artists": _clean(artists), "manifest": _clean(manifest)}
    present = {name: set(frame.columns) for name, frame in raw.items()}
    frames = _frames(raw["artists"], raw["manifest"])
    names = (
        [n for n in raw["artists"]["name"].tolist() if n is not None]
        if "name" in present["artists"]
        else []
    )
    checks = _checks(params, names)

    runnable: list[_Check] = []
    skipped: list[str] = []
    for check in checks:
        missing = sorted({f"{t}.{c}" for t, c in check.needs if c not in present[t]})
        if missing or check.suite not in frames:
            skipped.append(f"{check.key} (missing {', '.join(missing)})")
        else:
            runnable.append(check)

    site = "validate"
    sites: dict[str, Any] = {}
    if docs_dir is not None:
        docs_dir = Path(docs_dir)
        docs_dir.mkdir(parents=True, exist_ok=True)
        sites[site] = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir.resolve()),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=sites,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    source = context.data_sources.add_pandas("artist_id")
    by_key = {c.key: c for c in runnable}
    failures: list[Failure] = []
    evaluated = 0
    for suite_name, frame in frames.items():
        suite_checks = [c for c in runnable if c.suite == suite_name]
        if not suite_checks:
            continue
        # Built whole, then stored once: add_expectation re-serialises the suite each time.
        suite = context.suites.add(
            gx.ExpectationSuite(
                name=suite_name, expectations=[_build_expectation(c) for c in suite_checks]
            )
        )
        batch = source.add_dataframe_asset(suite_name).add_batch_definition_whole_dataframe("whole")
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=suite_name, data=batch, suite=suite)
        )
        outcome = definition.run(
            batch_parameters={"dataframe": frame},
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20},
            run_id=RunIdentifier(run_name="artist-id-validate"),
        )
        for result in outcome.results:
            evaluated += 1
            if result.success:
                continue
            meta = (result.expectation_config.meta or {}) if result.expectation_config else {}
            check = by_key[str(meta["check"])]
            failures.append(_failure(check, frame, result))

    if docs_dir is not None:
        context.build_data_docs(site_names=[site])
        offline_data_docs(docs_dir)
        log.info("Data Docs written to %s", docs_dir / "index.html")

    failures.sort(key=Failure._sort_key)
    return ValidationReport(
        success=not any(f.severity == CRITICAL for f in failures),
        failures=failures,
        evaluated=evaluated,
        skipped=sorted(skipped),
    )


# An https URL in a page or stylesheet GX wrote (a link, or a script, stylesheet or image).
URL = re.compile(r"https://[^\s\"'()<>]+")
VENDOR_DIR = Path("static") / "vendor"


def is_loaded_asset(url: str) -> bool:
    """Whether a page *loads* this URL (query removed): a script, stylesheet, image or font,
    or an npm package by major version (``.../npm/vega@5``); not a link a reader follows."""
    return bool(re.search(r"\.(js|css|png|svg|woff2?)$|/npm/[\w@./-]+@\d+$", url))


def offline_data_docs(docs_dir: Path) -> int:
    """Point a GX Data Docs site at local copies of what its pages load from CDNs.

    Copies the files vendored in ``artist_id/data_docs_assets`` (``tools/data_docs_assets.py``
    writes them, with their licences, from pinned npm releases) into ``static/vendor/`` of the
    site, and rewrites, in every ``.html`` and ``.css`` file of the site, each CDN URL its
    ``manifest.json`` knows into a path relative to that file. GX's logo URLs go to the copy GX
    already puts in ``static/images/``. Links a reader follows (``<a href>``) are not in the
    manifest and stay. Returns the number of URLs rewritten; logs any loaded URL left (a GX
    upgrade that adds an asset: ``make data-docs-assets`` then vendors it).
    """
    docs_dir = Path(docs_dir)
    assets = importlib.resources.files("artist_id") / "data_docs_assets"
    manifest = json.loads((assets / "manifest.json").read_text(encoding="utf-8"))
    vendor = docs_dir / VENDOR_DIR
    for local in [*manifest["files"], "THIRD_PARTY_LICENSES.txt"]:
        (vendor / local).parent.mkdir(parents=True, exist_ok=True)
        with importlib.resources.as_file(assets / local) as source:
            shutil.copyfile(source, vendor / local)
    targets = {url: VENDOR_DIR / local for url, local in manifest["urls"].items()}
    targets.update({url: Path(inside) for url, inside in manifest["site"].items()})
    rewritten = 0
    left: set[str] = set()
    for page in sorted(p for p in docs_dir.rglob("*") if p.suffix in (".html", ".css")):
        if vendor in page.parents:
            continue
        up = Path(os.path.relpath(docs_dir, page.parent))

        def local(match: re.Match[str], up: Path = up) -> str:
            nonlocal rewritten
            url = match.group(0)
            base = url.split("?", 1)[0]
            target = targets.get(base)
            if target is None:
                if is_loaded_asset(base):
                    left.add(url)
                return url
            rewritten += 1
            return (up / target).as_posix()

        text = page.read_text(encoding="utf-8")
        new = URL.sub(local, text)
        if new != text:
            page.write_text(new, encoding="utf-8")
    if left:
        log.warning(
            "Data Docs still load %d URL(s) from the network (not vendored): %s",
            len(left),
            ", ".join(sorted(left)),
        )
    return rewritten
