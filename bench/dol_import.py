"""Benchmark: importing a DOL plan year, in one run, on one server, three ways:

  ours    this project's import into the live-shaped DOL tables (the production twin's
          `create_dol_tables`: varchar columns, NOT NULL aliases, unique ack_id, guard triggers,
          RLS): checksum, typed COPY into staging, set-based validation, upsert, supersede, proof,
          ledger; then Great Expectations once for the run (`prove_run`, timed separately);
  copy    raw COPY of the same file into an all-text table of its header: the physical limit;
  floor   COPY of the same file straight into the live-shaped table `ours` writes (an empty one of
          its own database, same indexes, guard triggers and RLS; the guard's bypass set with
          set_config(..., true) in the transaction), nothing else: no validation, no dedupe, no
          proof. The header maps onto the live columns by name in COPY's column list; where the
          table has a NOT NULL alias without a default that no header fills (form_5500's
          `sponsor_dfe_ein`), the position of the column it repeats (SPONS_DFE_EIN) is loaded into
          the alias instead, because COPY cannot write one file column twice: the raw column and the
          other aliases and `form_year` stay NULL, so the floor writes a little less than `ours`.
          What any importer that writes these tables can reach (fresh case only);
  pandas  pandas.read_csv(dtype=str) + DataFrame.to_sql(method='multi', chunksize=...), on the
          first --pandas-rows rows of each file (default 10,000: its full run takes hours at full
          size), compared by throughput per row; and pandas' default to_sql (executemany) as well.

Every method runs in a fresh child process, with the same timer scope: the timer starts after the
Python imports and before the connection, and includes any DDL the method needs (COPY's text table,
pandas' table) and everything up to the commit. Two cases:

  fresh    a full plan year (F_5500 230,009 rows, F_5500_SF 759,569, F_SCH_A 336,817, times
           BENCH_FRACTION) into empty tables;
  refresh  the nightly case: the same year files again with ~1% of the rows changed (one text
           field of every 100th row), into the tables the fresh load filled (COPY and pandas
           reload their tables, as such scripts do).

With --repeat N (BENCH_REPEAT), this import, raw COPY and the floor run N times each (this
import into N databases taken through the same files in the same order) and the fastest run
counts: the machine is shared, and the fastest run is the one least disturbed by other work.

Then both cases again on a second database with both cores used: the three files two at a time
(as the DAG runs them), for this import and for raw COPY alike; time = first start to last end.

Files are generated from the official layouts (as wide as the real ones) into bench/out/.

    make bench-dol                                   # BENCH_FRACTION=1.0
    BENCH_FRACTION=0.1 .venv/bin/python bench/dol_import.py
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg

from ple import config
from ple_dev import embedded_pg

SIZES = {"F_5500": 230_009, "F_5500_SF": 759_569, "F_SCH_A": 336_817}
YEAR = 2023
OUT = config.REPO_ROOT / "bench" / "out"
METHODS = ("ours", "copy", "pandas", "pandas_default")
CHANGED_FIELD = {"F_5500": "PLAN_NAME", "F_5500_SF": "SF_PLAN_NAME", "F_SCH_A": "INS_CARRIER_NAME"}


def generate(dsn: str, fraction: float) -> dict[str, Path]:
    from ple_dev.fixture.builder import install_helpers
    from ple_dev.synthetic_dol import write_file

    paths = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        install_helpers(conn, 5500)
        for dataset, full_rows in SIZES.items():
            rows = max(int(full_rows * fraction), 1)
            path = OUT / f"{dataset.lower()}_{YEAR}_{rows}.csv"
            if not path.exists():
                write_file(conn, dataset, YEAR, rows, path)
            paths[dataset] = path
    return paths


def refreshed(path: Path, dataset: str) -> Path:
    """The same file with one text field changed in every 100th row (~1%)."""
    out = path.with_name(path.stem + "_refresh.csv")
    if not out.exists():
        partial = out.with_suffix(".part")  # renamed when complete: an interrupted run leaves no short file
        with (
            path.open(newline="", encoding="utf-8") as source,
            partial.open("w", newline="", encoding="utf-8") as target,
        ):
            rows = csv.reader(source)
            writer = csv.writer(target, lineterminator="\n")
            header = next(rows)
            writer.writerow(header)
            column = header.index(CHANGED_FIELD[dataset])
            for number, row in enumerate(rows):
                if number % 100 == 0:
                    row[column] = (row[column] + " (AMENDED NAME)")[:60]
                writer.writerow(row)
        partial.rename(out)
    return out


def child(method: str, dsn: str, dataset: str, path: str, run_id: str, limit: int = 0) -> dict:
    """One method on one file, in a fresh process. Imports happen before the timer."""
    from psycopg import sql

    if method == "ours":
        from ple.dol import files, importer
    elif method == "floor":
        from ple.dol import target
        from ple.dol.layouts import DATASETS
    elif method.startswith("pandas"):
        import pandas as pd
        import sqlalchemy
    table = sql.Identifier("public", f"{method}_{dataset.lower()}")
    extra = {}
    started = time.perf_counter()
    if method == "ours":
        with psycopg.connect(dsn, autocommit=True) as conn:
            result = importer.import_file(conn, files.Input(Path(path)), run_id)
        assert result.status == "imported" and result.error_rows == 0, result.message
        rows = result.data_rows
        extra = {
            "timings": result.timings,
            "writer": result.writer,
            "inserted": result.inserted,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "path": result.path,
        }
    elif method == "copy":
        with open(path, encoding="utf-8") as handle:
            header = [h.lower() for h in next(csv.reader(handle))]
        with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
            conn.execute(
                sql.SQL("CREATE TABLE {} ({})").format(
                    table, sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(h)) for h in header)
                )
            )
            with conn.cursor() as cur, open(path, "rb") as handle:
                statement = sql.SQL("COPY {} FROM STDIN (FORMAT csv, HEADER true)").format(table)
                with cur.copy(statement) as copy:
                    while chunk := handle.read(1 << 20):
                        copy.write(chunk)
                rows = cur.rowcount
    elif method == "floor":
        with open(path, encoding="utf-8") as handle:
            header = [h.lower() for h in next(csv.reader(handle))]
        with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
            conn.execute("SELECT set_config(%s, %s, true)", (config.DOL_GUARD_SETTING, config.DOL_GUARD_VALUE))
            live = target.inspect(conn, DATASETS[dataset].table)
            unknown = [h for h in header if not live.has(h)]
            assert not unknown, f"{live.name} lacks {unknown}: the floor needs a header that maps onto it"
            columns = list(header)
            for alias, source in target.ALIAS_SOURCES[dataset].items():
                column = live.columns.get(alias)
                if column and column.not_null and not column.has_default and alias not in header:
                    columns[header.index(source)] = alias
            names = sql.SQL(", ").join(map(sql.Identifier, columns))
            statement = sql.SQL(
                "COPY {} ({}) FROM STDIN (FORMAT csv, HEADER true, NULL '', FORCE_NULL ({}), ENCODING 'UTF8')"
            ).format(sql.Identifier(*live.name.split(".")), names, names)
            with conn.cursor() as cur, open(path, "rb") as handle:
                with cur.copy(statement) as copy:
                    while chunk := handle.read(1 << 20):
                        copy.write(chunk)
                rows = cur.rowcount
    elif method.startswith("pandas"):
        engine = sqlalchemy.create_engine(dsn.replace("postgresql://", "postgresql+psycopg://"))
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=limit or None)
        frame.columns = [c.lower() for c in frame.columns]
        multi = method == "pandas"
        chunk = max(65_535 // len(frame.columns) - 1, 1)  # the protocol's limit of parameters per statement
        frame.to_sql(
            f"pandas_{dataset.lower()}",
            engine,
            schema="public",
            if_exists="replace",
            index=False,
            method="multi" if multi else None,
            chunksize=chunk if multi else None,
        )
        rows = len(frame)
        engine.dispose()
    elif method == "prove":
        from ple.dol import importer

        with psycopg.connect(dsn, autocommit=True) as conn:
            rows = importer.prove_run(conn, run_id)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # wall-clock stamps of the timed scope: a parallel run's time is last end - first start
    return {"rows": rows, "seconds": seconds, "peak_mb": peak_mb, "ended": time.time(), **extra}


def run_child(
    method: str, dsn: str, dataset: str = "", path: Path | str = "", run_id: str = "bench", limit: int = 0
) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--child", method, dsn, dataset, str(path), run_id, str(limit)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "GX_ANALYTICS_ENABLED": "False"},
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def parallel(method: str, dsn: str, paths: dict[str, Path], case: str, workers: int = 2) -> dict:
    """The year's files `workers` at a time (as the DAG imports them: max_active_tis_per_dagrun=2,
    in discovery order), each in its own process and connection. Time: from the first timed scope's
    start to the last one's end."""
    with ThreadPoolExecutor(workers) as pool:
        runs = list(
            pool.map(
                lambda item: run_child(
                    method, dsn, item[0], item[1] if case == "fresh" else refreshed(item[1], item[0]), f"par-{case}"
                ),
                sorted(paths.items(), key=lambda item: item[1].name),
            )
        )
    started = min(r["ended"] - r["seconds"] for r in runs)
    return {"rows": sum(r["rows"] for r in runs), "seconds": max(r["ended"] for r in runs) - started, "runs": runs}


def _floor(values: dict, key: str) -> str:
    """A floor cell: the floor's seconds (key 'seconds'), or ours / floor ('ours') and
    floor / COPY ('copy') as throughput ratios; blank where the case has no floor (refresh)."""
    if "floor" not in values:
        return ""
    if key == "seconds":
        return f"{values['floor']['seconds']:.2f}"
    if key == "ours":
        return f"{values['ours'] / values['floor']:.2f}"
    return f"{values['floor'] / values['copy']:.2f}"


def _bold(cell: str) -> str:
    return f"**{cell}**" if cell else ""


NIGHT_YEARS = (2021, 2022, 2023)


def unchanged_night(server, rows: int) -> None:
    """The unchanged night over three plan years of every dataset: every archive served by the
    tests' local EFAST2 server (tests/integration/dol/dol_server.py: conditional requests; a
    dataset DOL did not publish for a year answers 404), night 1 fetches and imports them all,
    night 2 (nothing republished) is timed: one conditional request per archive, and proved to
    write nothing: no row version in the database from a transaction begun after it started."""
    import io
    import zipfile

    from psycopg import sql

    from ple.dol import fetch
    from ple.dol.layouts import all_datasets, years
    from ple_dev.fixture.builder import install_helpers
    from ple_dev.synthetic_dol import write_file

    sys.path.insert(0, str(config.REPO_ROOT))  # the tests' local EFAST2 server, the one the DOL tests use
    from tests.integration.dol.dol_server import DolServer

    dsn = fresh_database(server, "bench_dol_night")
    folder = OUT / "night"
    if folder.exists():
        for path in folder.iterdir():
            path.unlink()
    names = list(all_datasets())
    with DolServer() as dol, psycopg.connect(dsn, autocommit=True) as conn:
        with psycopg.connect(dsn, autocommit=True) as gen:
            install_helpers(gen, 2022)
            for number, year in enumerate(NIGHT_YEARS):
                for name in names:
                    if year not in years(name):
                        continue  # not published for that year: the server answers 404
                    path = OUT / f"night_{name.lower()}_{year}_latest.csv"
                    write_file(gen, name, year, rows, path, first=number * 10_000_000 + 1)
                    body = io.BytesIO()
                    with zipfile.ZipFile(body, "w", zipfile.ZIP_DEFLATED) as archive:
                        archive.write(path, path.name)
                    dol.publish(name, year, body.getvalue())
        archives = fetch.archives(NIGHT_YEARS, names, dol.base_url)
        started = time.perf_counter()
        first = fetch.nightly(conn, folder, archives, "night-1")
        loaded = time.perf_counter() - started
        assert not first.failures, first.failures
        imported = sum(r.data_rows for r in first.imports)
        accounted = sum(r.live_rows + r.superseded_rows + r.error_rows for r in first.imports)
        xid = int(conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text").fetchone()[0])
        requests = len(dol.requests)
        started = time.perf_counter()
        second = fetch.nightly(conn, folder, archives, "night-2")
        seconds = time.perf_counter() - started
        tables = [
            t
            for (t,) in conn.execute(
                "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            )
        ]
        written = [
            t
            for t in tables
            if conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE xmin::text::bigint >= %s").format(sql.SQL(t)),
                (xid % 2**32,),
            ).fetchone()[0]
        ]
        statuses = sorted({f.status for f in second.fetched})
        print(
            f"\nunchanged night, plan years {NIGHT_YEARS[0]}-{NIGHT_YEARS[-1]}, {len(names)} datasets, "
            f"{len(archives)} archives ({sum(f.status == 'missing' for f in first.fetched)} not published): "
            f"night 1 imported {len(first.imports)} files, {imported:,} rows ({accounted:,} accounted) in {loaded:.1f} s; "
            f"night 2 **{seconds:.2f} s** (goal < 5 s), {len(dol.requests) - requests} requests, outcomes {statuses}, "
            f"{len(second.imports)} imports, tables written: {written or 'none'}",
            flush=True,
        )
    embedded_pg.drop_database(server, "bench_dol_night")


def fresh_database(server, name: str) -> str:
    from ple_dev.fixture.production.dol import create_dol_tables

    embedded_pg.drop_database(server, name)
    dsn = embedded_pg.create_database(server, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_dol_tables(conn)
    return dsn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fraction", type=float, default=float(os.environ.get("BENCH_FRACTION", "1.0")))
    parser.add_argument(
        "--pandas-rows",
        type=int,
        default=10_000,
        help="pandas loads the first N rows of each file (0: all); compared per row",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=int(os.environ.get("BENCH_REPEAT", "1")),
        help="run this import, raw COPY and the floor N times each and keep the fastest (a shared, busy machine)",
    )
    parser.add_argument(
        "--night-rows",
        type=int,
        default=int(os.environ.get("BENCH_NIGHT_ROWS", "2000")),
        help="rows of each archive the unchanged night serves (it reads none of them)",
    )
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    server = embedded_pg.start(config.EMBEDDED_PG_DIR, config.EMBEDDED_PG_PORT)
    with psycopg.connect(embedded_pg.ensure_database(server, "bench_dol_gen"), autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    paths = generate(embedded_pg.ensure_database(server, "bench_dol_gen"), args.fraction)
    # one database per repetition of this import, each taken through the same files in the same
    # order (identical states); the last one is `bench_dol`, where Great Expectations proves the runs
    repeats = max(args.repeat, 1)
    dsns = [fresh_database(server, f"bench_dol_repeat_{n}") for n in range(repeats - 1)]
    dsn = fresh_database(server, "bench_dol")
    dsns.append(dsn)
    # the floor writes empty live-shaped tables of its own, each repetition in a database of its own
    floors = [fresh_database(server, f"bench_dol_floor_{n}") for n in range(repeats)]
    print(
        f"PostgreSQL {version}, fraction {args.fraction}, fastest of {repeats}, load average {os.getloadavg()}",
        flush=True,
    )

    results: dict[tuple[str, str, str], dict] = {}
    for case in ("fresh", "refresh"):
        for dataset, path in paths.items():
            source = path if case == "fresh" else refreshed(path, dataset)
            methods = ("ours", "copy", "floor", "pandas", "pandas_default") if case == "fresh" else METHODS
            for method in methods:
                limit = args.pandas_rows if method.startswith("pandas") else 0
                targets = {"ours": dsns, "floor": floors}.get(method, [dsn] * repeats)
                if method.startswith("pandas"):
                    targets = [dsn]
                runs = [run_child(method, target, dataset, source, f"bench-{case}", limit) for target in targets]
                results[(case, dataset, method)] = min(runs, key=lambda run: run["seconds"])
            r = results[(case, dataset, "ours")]
            p = results[(case, dataset, "pandas")]
            floor = results.get((case, dataset, "floor"))
            print(
                f"{case:8}{dataset:10}{r['rows']:>9,} rows  ours {r['seconds']:6.2f}s  copy "
                f"{results[(case, dataset, 'copy')]['seconds']:6.2f}s  "
                + (f"floor {floor['seconds']:6.2f}s  " if floor else "")
                + f"pandas {p['rows']:,} rows {p['seconds']:7.2f}s  {r['path']} {r['writer']} {r['timings']}  "
                f"new {r['inserted']} changed {r['updated']} unchanged {r['unchanged']}",
                flush=True,
            )
        results[(case, "all", "prove")] = run_child("prove", dsn, run_id=f"bench-{case}")

    print(
        "\n| case | file | rows | MB | ours, s | raw COPY, s | floor, s | pandas multi, rows/s | ours / COPY | ours / floor "
        "| floor / COPY | ours / pandas multi | ours / pandas default | rows rewritten | peak MB ours / pandas |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for case in ("fresh", "refresh"):
        methods = (*METHODS, "floor") if case == "fresh" else METHODS
        totals = {m: [0, 0.0] for m in methods}
        for dataset, path in paths.items():
            source = path if case == "fresh" else refreshed(path, dataset)
            r = {m: results[(case, dataset, m)] for m in methods}
            for m, total in totals.items():
                total[0] += r[m]["rows"]
                total[1] += r[m]["seconds"]
            rate = {m: r[m]["rows"] / r[m]["seconds"] for m in r}
            rewritten = r["ours"]["inserted"] + r["ours"]["updated"]
            print(
                f"| {case} | {dataset} | {r['ours']['rows']:,} | {source.stat().st_size / 1e6:,.0f} | {r['ours']['seconds']:.2f} | "
                f"{r['copy']['seconds']:.2f} | {_floor(r, 'seconds')} | {rate['pandas']:,.0f} | {rate['ours'] / rate['copy']:.2f} | "
                f"{_floor(rate, 'ours')} | {_floor(rate, 'copy')} | "
                f"{rate['ours'] / rate['pandas']:.1f} | {rate['ours'] / rate['pandas_default']:.1f} | "
                f"{rewritten:,} ({rewritten / max(r['ours']['rows'], 1):.1%}) | "
                f"{r['ours']['peak_mb']:.0f} / {r['pandas']['peak_mb']:.0f} |"
            )
        seconds = {m: {"seconds": s} for m, (_, s) in totals.items()}
        rate = {m: rows / s for m, (rows, s) in totals.items()}
        print(
            f"| {case} | **all** | {totals['ours'][0]:,} | | {totals['ours'][1]:.2f} | {totals['copy'][1]:.2f} | "
            f"{_floor(seconds, 'seconds')} | {rate['pandas']:,.0f} | **{rate['ours'] / rate['copy']:.2f}** | "
            f"{_bold(_floor(rate, 'ours'))} | {_bold(_floor(rate, 'copy'))} | **{rate['ours'] / rate['pandas']:.1f}** | "
            f"**{rate['ours'] / rate['pandas_default']:.1f}** | | |"
        )
    # both cores: the same year into a new database, two files at a time, for both methods
    dsn_parallel = fresh_database(server, "bench_dol_parallel")
    both = {
        (case, m): parallel(m, dsn_parallel, paths, case) for case in ("fresh", "refresh") for m in ("ours", "copy")
    }
    sequential = {
        (case, m): sum(results[(case, d, m)]["seconds"] for d in paths)
        for case in ("fresh", "refresh")
        for m in ("ours", "copy")
    }
    print(
        "\n| case | rows | ours, 2 files at a time, s | raw COPY, 2 at a time, s | raw COPY, one at a time, s "
        "| ours (2) / COPY (2) | ours (2) / COPY (1) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for case in ("fresh", "refresh"):
        ours, copy = both[(case, "ours")], both[(case, "copy")]
        print(
            f"| {case} | {ours['rows']:,} | {ours['seconds']:.2f} | {copy['seconds']:.2f} | {sequential[(case, 'copy')]:.2f} | "
            f"**{copy['seconds'] / ours['seconds']:.2f}** | **{sequential[(case, 'copy')] / ours['seconds']:.2f}** |"
        )
    for case in ("fresh", "refresh"):
        print(
            f"Great Expectations proof of the {case} run (once, 3 files): {results[(case, 'all', 'prove')]['seconds']:.1f} s"
        )
    fresh = sum(results[("fresh", d, "ours")]["seconds"] for d in paths)
    refresh = sum(results[("refresh", d, "ours")]["seconds"] for d in paths)
    floor = sum(results[("fresh", d, "floor")]["seconds"] for d in paths)
    print(f"refresh / fresh time, ours: {refresh / fresh:.2f}")
    # the refresh goal: the nightly refresh (1% changed) against the floor on the same file (a
    # COPY of it into empty live-shaped tables), as throughput: floor seconds / refresh seconds
    for dataset in paths:
        ratio = results[("fresh", dataset, "floor")]["seconds"] / results[("refresh", dataset, "ours")]["seconds"]
        print(f"refresh {dataset}: ours / floor {ratio:.2f}")
    print(
        f"refresh, all files: ours / floor **{floor / refresh:.2f}** (goal >= 1.0); fresh: ours / floor "
        f"**{floor / fresh:.2f}** (goal >= 0.65)"
    )
    unchanged_night(server, args.night_rows)
    for name in (
        "bench_dol",
        "bench_dol_parallel",
        *(f"bench_dol_repeat_{n}" for n in range(repeats - 1)),
        *(f"bench_dol_floor_{n}" for n in range(repeats)),
    ):
        embedded_pg.drop_database(server, name)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], int(sys.argv[7]))))
    else:
        main()
