"""Keep DOL's EFAST2 datasets current: which archives, fetched only when they changed.

A configuration (plan years, datasets, base URL) names the archives DOL publishes as
`<base>/<year>/Latest/<DATASET>_<year>_Latest.zip`. Each night every archive costs one
conditional request (If-None-Match / If-Modified-Since with what the last download answered):

- 304: unchanged; nothing else happens (no download, no database write).
- 200: streamed to a temporary name in the archive folder (memory flat), its size checked against
  Content-Length and the archive's own integrity (every member read once: the zip's CRC-32s),
  every CSV member's SHA-256 taken on the way; then renamed over the archive when whole. Bytes
  equal to the last download's are `unchanged` too (a new ETag on the same data).
- timeouts, connection errors, a body cut short, 408/429/5xx, a corrupt archive: retried with
  exponential backoff; still failing after the last attempt: `failed`, reported, the other
  archives go on.
- 404/410 (a plan year DOL has not published): `missing`, reported, the other archives go on.

What each archive answered last (ETag, Last-Modified, size, SHA-256, members, last checked, last
changed, outcome) is kept beside it in `<name>.state.json`: local files, so an unchanged night
writes nothing to the database. Whether an archive's members still need importing is read from
`ple_ops.dol_import` (their SHA-256), so an archive whose import failed is imported the next night
although DOL did not change it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import zipfile
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from ple.dol import files
from ple.dol.layouts import all_datasets

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = os.environ.get("PLE_DOL_BASE_URL", "https://askebsa.dol.gov/FOIA%20Files")
URL_TEMPLATE = "{base}/{year}/Latest/{dataset}_{year}_Latest.zip"
STATE_SUFFIX = ".state.json"
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
MISSING_STATUS = {404, 410}


@dataclass(frozen=True)
class Archive:
    dataset: str
    year: int
    url: str
    file_name: str | None = None  # a URL of another shape (the `urls` Param): its last path segment

    @property
    def name(self) -> str:
        return self.file_name or f"{self.dataset}_{self.year}_Latest.zip"

    @classmethod
    def of_url(cls, url: str) -> Archive:
        return cls("", 0, url, Path(unquote(urlparse(url).path)).name)

    def as_dict(self) -> dict:
        return {"dataset": self.dataset, "year": self.year, "url": self.url, "file_name": self.file_name}


@dataclass(frozen=True)
class Retry:
    attempts: int = 5
    backoff: float = 5.0  # seconds before the second attempt; doubled each time
    max_backoff: float = 300.0
    timeout: float = 60.0  # connect and between two reads of the body

    def delay(self, attempt: int) -> float:
        return min(self.backoff * 2 ** (attempt - 1), self.max_backoff)


@dataclass
class Fetched:
    """One archive's outcome tonight."""

    dataset: str
    year: int
    url: str
    name: str
    status: str  # changed, unchanged, missing, failed
    path: str | None = None
    bytes: int = 0
    sha256: str | None = None
    attempts: int = 0
    message: str = ""
    checked_at: str | None = None
    changed_at: str | None = None
    members: list[list[str]] = field(default_factory=list)  # [member, sha256] of its CSVs

    def as_dict(self) -> dict:
        return asdict(self)


def default_years(today: date | None = None) -> list[int]:
    """The last three plan years: the three calendar years before this one (DOL's dataset of plan
    year Y fills during Y+1 and after)."""
    year = (today or date.today()).year
    return [year - 3, year - 2, year - 1]


def default_datasets(conn=None) -> list[str]:
    """Every known dataset whose table the DOL schema holds; on a fresh database (none) all."""
    datasets = all_datasets()
    if conn is None:
        return list(datasets)
    held = [
        name
        for name, dataset in datasets.items()
        if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (dataset.table,)).fetchone()[0]
    ]
    return held or list(datasets)


def archives(years: Iterable[int], datasets: Iterable[str], base_url: str = DEFAULT_BASE_URL) -> list[Archive]:
    base = base_url.rstrip("/")
    return [
        Archive(dataset, int(year), URL_TEMPLATE.format(base=base, year=int(year), dataset=dataset))
        for year in sorted(set(years))
        for dataset in datasets
    ]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def state_path(folder: Path, archive: Archive, state_dir: Path | None = None) -> Path:
    return Path(state_dir or folder) / (archive.name + STATE_SUFFIX)


def read_state(folder: Path, archive: Archive, state_dir: Path | None = None) -> dict:
    path = state_path(folder, archive, state_dir)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def _write_state(folder: Path, archive: Archive, state: dict, state_dir: Path | None = None) -> None:
    path = state_path(folder, archive, state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    partial.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(partial, path)


def archive_states(folder: Path) -> list[dict]:
    """What every archive in the folder answered last (for the console): name, outcome, when
    checked, when changed, size, message."""
    states = []
    for path in sorted(Path(folder).glob("*" + STATE_SUFFIX)) if Path(folder).is_dir() else []:
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        states.append({"name": path.name[: -len(STATE_SUFFIX)], **state})
    return states


class _Transient(Exception):
    pass


class _Permanent(Exception):
    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


def _verify(path: Path) -> list[list[str]]:
    """The archive's own integrity: every member read once (zipfile checks each CRC-32 at its
    end); the SHA-256 of each CSV member, the identity the importer records. Memory flat."""
    members = []
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                digest = hashlib.sha256()
                with archive.open(info) as handle:
                    while chunk := handle.read(files.CHUNK):
                        digest.update(chunk)
                if info.filename.lower().endswith(".csv"):
                    members.append([info.filename, digest.hexdigest()])
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise _Transient(f"the archive is not whole: {exc}") from exc
    if not members:
        raise _Permanent("failed", "the archive holds no CSV")
    return members


def _attempt(client: httpx.Client, archive: Archive, folder: Path, state: dict, retry: Retry, progress) -> dict:
    """One request. Returns what changed in the state; raises _Transient or _Permanent."""
    target = Path(folder) / archive.name
    headers = {}
    if target.exists() and state.get("sha256"):
        if state.get("etag"):
            headers["If-None-Match"] = state["etag"]
        if state.get("last_modified"):
            headers["If-Modified-Since"] = state["last_modified"]
    partial = Path(folder) / f".{archive.name}.{os.getpid()}.part"
    try:
        with client.stream("GET", archive.url, headers=headers, timeout=retry.timeout) as response:
            code = response.status_code
            if code == 304:
                return {"outcome": "unchanged"}
            if code in MISSING_STATUS:
                raise _Permanent("missing", f"HTTP {code}: DOL has not published {archive.name}")
            if code in TRANSIENT_STATUS:
                raise _Transient(f"HTTP {code}")
            if code != 200:
                raise _Permanent("failed", f"HTTP {code}")
            expected = response.headers.get("content-length")
            encoded = response.headers.get("content-encoding", "identity") != "identity"
            digest, size, reported = hashlib.sha256(), 0, 0
            with partial.open("wb") as out:
                for chunk in response.iter_bytes(files.CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    if progress and size - reported >= 64 * files.CHUNK:
                        progress(archive, size, int(expected) if expected and not encoded else None)
                        reported = size
            if expected is not None and not encoded and int(expected) != size:
                raise _Transient(f"body cut short: {size} of {expected} bytes")
            if progress:
                progress(archive, size, size)
            sha256 = digest.hexdigest()
            members = _verify(partial) if archive.name.lower().endswith(".zip") else []
            change = {
                "etag": response.headers.get("etag"),
                "last_modified": response.headers.get("last-modified"),
                "size": size,
            }
            if sha256 == state.get("sha256") and target.exists():
                return {**change, "outcome": "unchanged"}  # a new validator on the same bytes
            os.replace(partial, target)  # whole: the archive appears at once or not at all
            return {**change, "outcome": "changed", "sha256": sha256, "members": members, "changed_at": _now()}
    except httpx.TransportError as exc:  # timeouts, refused or cut connections, a body cut short
        raise _Transient(f"{type(exc).__name__}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)


def new_client() -> httpx.Client:
    """The HTTP client of the fetch. Making one costs ~0.1 s (its TLS context): a night shares one."""
    return httpx.Client(follow_redirects=True, headers={"User-Agent": "ple-dol-import"})


def fetch(
    archive: Archive,
    folder: Path,
    retry: Retry = Retry(),
    client: httpx.Client | None = None,
    progress: Callable | None = None,
    sleep: Callable[[float], None] = time.sleep,
    state_dir: Path | None = None,
) -> Fetched:
    """Bring one archive up to date in `folder` (see the module's doc; its state in `state_dir`,
    default the folder itself). Never raises for what the server or the network does: the
    outcome says it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = read_state(folder, archive, state_dir)
    own = client is None
    client = client or new_client()
    result = Fetched(archive.dataset, archive.year, archive.url, archive.name, "failed")
    problems: list[str] = []
    try:
        for attempt in range(1, retry.attempts + 1):
            result.attempts = attempt
            try:
                change = _attempt(client, archive, folder, state, retry, progress)
                break
            except _Permanent as exc:
                result.status, result.message = exc.status, str(exc)
                change = None
                break
            except _Transient as exc:
                problems.append(f"attempt {attempt}: {exc}")
                log.warning("%s: %s", archive.url, problems[-1])
                change = None
                if attempt < retry.attempts:
                    sleep(retry.delay(attempt))
        else:
            result.message = f"gave up after {retry.attempts} attempts: " + "; ".join(problems)
    finally:
        if own:
            client.close()
    state["checked_at"] = result.checked_at = _now()
    if change is not None:
        outcome = change.pop("outcome")
        state.update({k: v for k, v in change.items() if v is not None or k in ("etag", "last_modified")})
        result.status = outcome
        result.message = (("retried: " + "; ".join(problems) + "; then ") if problems else "") + (
            "downloaded" if outcome == "changed" else "unchanged"
        )
    state["status"], state["message"] = result.status, result.message
    _write_state(folder, archive, state, state_dir)
    result.changed_at = state.get("changed_at")
    if result.status in ("changed", "unchanged") and (folder / archive.name).exists():
        result.path = str(folder / archive.name)
        result.bytes = int(state.get("size") or 0)
        result.sha256 = state.get("sha256")
        result.members = state.get("members", [])
    return result


def pending_inputs(conn, fetched: Fetched) -> list[files.Input]:
    """The CSV members of a fetched archive that are not imported yet (one read-only query; none
    when the ledger does not exist yet: then all)."""
    if not fetched.path or not fetched.members:
        return []
    shas = [sha for _, sha in fetched.members]
    done: set[str] = set()
    if conn.execute("SELECT to_regclass('ple_ops.dol_import') IS NOT NULL").fetchone()[0]:
        done = {
            r[0]
            for r in conn.execute(
                "SELECT file_sha256 FROM ple_ops.dol_import WHERE file_sha256 = ANY(%s) AND status IN ('imported', 'empty')",
                (shas,),
            ).fetchall()
        }
    return [files.Input(Path(fetched.path), member) for member, sha in fetched.members if sha not in done]


@dataclass
class Night:
    """What one nightly pass did: each archive's outcome and each import it led to."""

    fetched: list[Fetched]
    imports: list = field(default_factory=list)  # ImportResult
    failures: list[str] = field(default_factory=list)  # imports that raised: "<input>: <error>"


def import_fetched(conn, fetched: Fetched, run_id: str, guard=None, add_columns=None) -> tuple[list, list[str]]:
    """Import the members of one fetched archive that are not imported yet. Returns (results,
    failures); an import that fails rolls back alone and is named."""
    from ple.dol import importer  # here, not at the top: the DAG file imports this module to parse

    results, failures = [], []
    for source in pending_inputs(conn, fetched):
        try:
            results.append(importer.import_file(conn, source, run_id, guard=guard, add_columns=add_columns))
        except Exception as exc:  # one member's failure is reported; the next member still imports
            log.exception("%s: import failed", source.name)
            failures.append(f"{source.name}: {type(exc).__name__}: {exc}")
    return results, failures


def nightly(
    conn,
    folder: Path,
    archive_list: list[Archive],
    run_id: str,
    *,
    retry: Retry = Retry(),
    client: httpx.Client | None = None,
    guard=None,
    progress: Callable | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Night:
    """Every archive fetched if it changed, then whatever is not imported yet imported. An
    unchanged night: one conditional request per archive, one read-only query per archive held,
    no database write."""
    with nullcontext(client) if client else new_client() as shared:  # a caller's client stays open
        night = Night([fetch(a, folder, retry, shared, progress, sleep) for a in archive_list])
    # filings before their schedules: Schedule A rows are written linked to their filing
    order = {"F_5500": 0, "F_5500_SF": 1}
    for fetched in sorted(night.fetched, key=lambda f: (f.year, order.get(f.dataset, 2), f.dataset)):
        results, failures = import_fetched(conn, fetched, run_id, guard)
        night.imports += results
        night.failures += failures
    return night


def download(urls: list[str], landing_dir: Path, retry=None) -> list[Path]:
    """Fetch DOL archives into the landing folder: each URL with a conditional request (ETag /
    Last-Modified of the last download, kept in <landing>/.dol_fetch_state), streamed to a
    temporary name and renamed when whole, transient failures retried. A file
    republished under the same name is fetched again; an unchanged one costs one request.
    Returns the files that changed; raises after trying every URL if some could not be fetched."""
    fetched, problems = [], []
    for url in urls:
        result = fetch(
            Archive.of_url(url),
            Path(landing_dir),
            retry or Retry(),
            state_dir=Path(landing_dir) / files.FETCH_STATE_DIR,
        )
        if result.status == "changed":
            fetched.append(Path(result.path))
        elif result.status in ("missing", "failed"):
            problems.append(f"{url}: {result.status}: {result.message}")
    if problems:
        raise OSError("; ".join(problems))
    return fetched
