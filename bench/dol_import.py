"""Benchmark: importing a full-size DOL plan year, in the same run, on the same database:

  (a) this project's import (dol_staging_import's work: checksum, COPY to staging, set-based
      validation, Great Expectations, typed upsert, ledger), end to end;
  (b) raw COPY of the same files into all-text tables: the physical limit;
  (c) pandas.read_csv(dtype=str) + DataFrame.to_sql: what people commonly write.

Files are generated from the official layouts, as wide as the real ones: F_5500 230,009 rows
(140 columns), F_5500_SF 759,569 (191), F_SCH_A 336,817 (90). Each method runs in a fresh child
process, so its peak memory (max RSS) is its own; (a) also runs on a half-size file to show its
memory does not grow with the file. pandas runs on the first `--pandas-rows` rows of each file
(default 100,000: the full run takes too long), and its throughput is per row.

    make bench-dol                      # full size (~2.5 GB of CSV in bench/out, ~10 minutes)
    .venv/bin/python bench/dol_import.py --fraction 0.05
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
from pathlib import Path

import psycopg

from ple import config, embedded_pg

SIZES = {"F_5500": 230_009, "F_5500_SF": 759_569, "F_SCH_A": 336_817}
YEAR = 2023
OUT = config.REPO_ROOT / "bench" / "out"


def generate(dsn: str, fraction: float) -> dict[str, Path]:
    from ple.dol.synthetic import write_file
    from ple.fixture.builder import install_helpers

    paths = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        install_helpers(conn, 5500)
        for dataset, full_rows in SIZES.items():
            rows = max(int(full_rows * fraction), 1)
            path = OUT / f"{dataset.lower()}_{YEAR}_{rows}.csv"
            if not path.exists():
                started = time.perf_counter()
                write_file(conn, dataset, YEAR, rows, path)
                print(
                    f"generated {path.name}: {path.stat().st_size / 1e6:,.0f} MB in {time.perf_counter() - started:.0f}s",
                    flush=True,
                )
            paths[dataset] = path
    return paths


def half_file(path: Path) -> Path:
    """The first half of the file's records (whole records: a quoted field may span lines)."""
    half = path.with_name(path.stem + "_half.csv")
    if not half.exists():
        with path.open(newline="", encoding="utf-8") as source:
            records = sum(1 for _ in csv.reader(source))
        with path.open(newline="", encoding="utf-8") as source, half.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, lineterminator="\n")
            for number, record in enumerate(csv.reader(source)):
                if number > records // 2:
                    break
                writer.writerow(record)
    return half


def child(method: str, dsn: str, dataset: str, path: str, limit: int) -> dict:
    """Runs in a fresh process: one method on one file. Returns rows and seconds."""
    started = time.perf_counter()
    if method == "ours":
        from ple.dol import files, importer

        with psycopg.connect(dsn, autocommit=True) as conn:
            result = importer.import_file(conn, files.Input(Path(path)), "bench")
        rows = result.data_rows
        assert result.error_rows == 0, result.message
    elif method == "copy":
        from psycopg import sql

        from ple.dol.layouts import DATASETS
        from ple.dol.tables import all_ddl
        from ple.sqlutil import qualified

        table = f"raw_{dataset.lower()}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in all_ddl(DATASETS[dataset]):
                conn.execute(statement)
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("public", table)))
            conn.execute(
                sql.SQL("CREATE TABLE {} (LIKE {})").format(
                    sql.Identifier("public", table), qualified(DATASETS[dataset].staging_table)
                )
            )
            started = time.perf_counter()
            with open(path, encoding="utf-8") as handle:
                header = handle.readline().strip().lower().split(",")
            with conn.cursor() as cur, open(path, "rb") as handle:
                copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER true)").format(
                    sql.Identifier("public", table), sql.SQL(", ").join(map(sql.Identifier, header))
                )
                with cur.copy(copy_sql) as copy:
                    while chunk := handle.read(1 << 20):
                        copy.write(chunk)
                rows = cur.rowcount
    else:
        import pandas as pd
        import sqlalchemy

        engine = sqlalchemy.create_engine(dsn.replace("postgresql://", "postgresql+psycopg://"))
        frame = pd.read_csv(path, dtype=str, nrows=limit, keep_default_na=False)
        frame.columns = [c.lower() for c in frame.columns]
        frame.to_sql(f"pandas_{dataset.lower()}", engine, schema="public", if_exists="replace", index=False)
        rows = len(frame)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rows": rows, "seconds": seconds, "peak_mb": peak_mb}


def run_child(method: str, dsn: str, dataset: str, path: Path, limit: int = 0) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--child", method, dsn, dataset, str(path), str(limit)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "GX_ANALYTICS_ENABLED": "False"},
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fraction", type=float, default=1.0)
    parser.add_argument("--pandas-rows", type=int, default=100_000)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    server = embedded_pg.start(config.EMBEDDED_PG_DIR, config.EMBEDDED_PG_PORT)
    dsn = embedded_pg.create_database(server, "bench_dol")
    paths = generate(dsn, args.fraction)

    totals = {m: [0, 0.0] for m in ("ours", "copy", "pandas")}
    print(
        f"\n{'file':<28}{'MB':>7}{'rows':>10}  {'ours s':>8}{'COPY s':>8}{'pandas rows/s':>15}  {'ours/COPY':>10}{'ours/pandas':>12}  {'peak MB ours/half/pandas':>26}"
    )
    for dataset, path in paths.items():
        embedded_pg.drop_database(server, "bench_dol")
        dsn = embedded_pg.create_database(server, "bench_dol")
        raw = run_child("copy", dsn, dataset, path)
        ours = run_child("ours", dsn, dataset, path)
        half = run_child("ours", embedded_pg.create_database(server, "bench_dol_half"), dataset, half_file(path))
        pandas = run_child("pandas", dsn, dataset, path, args.pandas_rows)
        rate = {name: r["rows"] / r["seconds"] for name, r in (("ours", ours), ("copy", raw), ("pandas", pandas))}
        for name, r in (("ours", ours), ("copy", raw), ("pandas", pandas)):
            totals[name][0] += r["rows"]
            totals[name][1] += r["seconds"]
        print(
            f"{path.name:<28}{path.stat().st_size / 1e6:>7,.0f}{ours['rows']:>10,}  {ours['seconds']:>8.1f}{raw['seconds']:>8.1f}{rate['pandas']:>15,.0f}"
            f"  {rate['ours'] / rate['copy']:>10.2f}{rate['ours'] / rate['pandas']:>12.1f}  {ours['peak_mb']:>8.0f} /{half['peak_mb']:>6.0f} /{pandas['peak_mb']:>6.0f}",
            flush=True,
        )
    rate = {m: rows / seconds for m, (rows, seconds) in totals.items()}
    print(
        f"\nthroughput, rows/s: ours {rate['ours']:,.0f}, raw COPY {rate['copy']:,.0f}, pandas {rate['pandas']:,.0f} "
        f"-> ours = {rate['ours'] / rate['copy']:.2f} x raw COPY, {rate['ours'] / rate['pandas']:.1f} x pandas"
    )
    embedded_pg.drop_database(server, "bench_dol")
    embedded_pg.drop_database(server, "bench_dol_half")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))))
    else:
        main()
