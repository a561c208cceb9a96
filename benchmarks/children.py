"""Running a declared job in a process of its own (benchmarks.run_job)."""

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.database import child_env

PROJECT_DIR = Path(__file__).resolve().parent.parent


def run_job_in_child(job_id: str, **settings: str) -> dict:
    finished = subprocess.run(
        [sys.executable, "-m", "benchmarks.run_job", job_id],
        cwd=PROJECT_DIR,
        env=child_env(**settings),
        capture_output=True,
        text=True,
        check=False,
    )
    if finished.returncode != 0:
        raise RuntimeError(f"{job_id} failed in its benchmark process:\n{finished.stderr}")
    return json.loads(finished.stdout.splitlines()[-1])
