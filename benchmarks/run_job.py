"""python -m benchmarks.run_job JOB_ID: run one declared job the way the
scheduler does, in a process of its own, and print what it cost as JSON:
wall time, the longest transaction and statement, and how much the process
grew (peak RSS after the run minus RSS before it)."""

import json
import os
import sys


def rss_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise LookupError(field)


def main(job_id: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from benchmarks.measure import LongestStatement, stopwatch
    from crm.scheduler.execution import run_declared_job

    before = rss_mb("VmRSS")
    with LongestStatement().watching() as longest, stopwatch() as elapsed:
        result = run_declared_job(job_id, triggered_by="benchmark")
    print(
        json.dumps(
            {
                "seconds": elapsed(),
                "longest_transaction": longest.longest_transaction,
                "longest_statement": longest.longest_statement,
                "memory_growth_mb": rss_mb("VmHWM") - before,
                "result": result,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
