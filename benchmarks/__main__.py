"""python -m benchmarks [--only NAME ...] [--sizes 10000,100000,1000000]

Runs on the database DATABASE_URL names (SQLite by default), in a database of
its own, prints a markdown table and writes the figures to tmp/bench/."""

import argparse
import importlib
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS = [
    "auto_close",
    "pruning",
    "dispatch",
    "startup",
    "latency",
    "failover",
    "isolation",
    "api",
    "metrics",
    "growth",
    "dashboard",
    "ticket_list",
]
PROJECT_DIR = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=BENCHMARKS)
    parser.add_argument(
        "--sizes",
        default="10000,100000,1000000",
        help="row counts for the auto-close and pruning growth figures (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        sizes = sorted(int(size) for size in args.sizes.split(","))
    except ValueError:
        parser.error(
            f"--sizes {args.sizes!r}: give row counts separated by commas, e.g. 1000,10000"
        )

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.test_settings")
    os.environ.setdefault("TEST_DATABASE_SUFFIX", "_bench")
    sys.path.insert(0, str(PROJECT_DIR))
    import django

    django.setup()
    from django.db import connection

    from benchmarks.database import bench_database
    from benchmarks.report import markdown_table, write_json

    figures = []
    started = time.monotonic()
    with bench_database():
        for name in args.only:
            module = importlib.import_module(f"benchmarks.{name}")
            print(f"== {name}", file=sys.stderr, flush=True)
            figures += module.run(sizes=sizes)
        vendor = connection.vendor
    table = markdown_table(figures)
    print(table)
    path = PROJECT_DIR / "tmp" / "bench" / f"{vendor}.json"
    about = {
        "database": vendor,
        "python": platform.python_version(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started),
        "command": "make bench" + ("" if vendor == "sqlite" else " DATABASE_URL=..."),
    }
    write_json(figures, path, about)
    print(f"\nfigures written to {path.relative_to(PROJECT_DIR)}", file=sys.stderr)
    for figure in figures:
        if figure.met is False:
            print(f"target not met: {figure.benchmark}, {figure.measure}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
