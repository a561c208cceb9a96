"""Several processes writing django.log through its rotation: each line lands
once, in order, in django.log or one of the files rotated from it."""

import re
import subprocess
import sys

from tests.support.processes import PROJECT_DIR, project_env

WRITERS, LINES = 4, 600
LINE = re.compile(r"writer (\d) line (\d+)$")


def start_writer(name: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.log_writer", name, str(LINES)],
        cwd=PROJECT_DIR,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def lines_oldest_first(log_dir) -> list[str]:
    """django.log.N (the oldest) … django.log.1, then django.log."""
    rotated = sorted(log_dir.glob("django.log.*"), key=lambda path: -int(path.suffix[1:]))
    files = [*rotated, log_dir / "django.log"]
    return [line for path in files for line in path.read_text().splitlines()]


def test_four_processes_log_through_rotation_without_a_lost_or_misplaced_line(tmp_path):
    log_dir = tmp_path / "logs"
    env = project_env(
        SECRET_KEY="x", LOG_DIR=str(log_dir), LOG_MAX_BYTES="4096", LOG_BACKUP_COUNT="1000"
    )
    writers = [start_writer(str(number), env) for number in range(WRITERS)]
    try:
        for writer in writers:
            assert writer.stdout.readline() == "ready\n"
        for writer in writers:  # all at once
            writer.stdin.write("go\n")
            writer.stdin.flush()
        for writer in writers:
            assert writer.stdout.readline() == "done\n"
    finally:
        for writer in writers:
            writer.kill()
            writer.communicate()

    numbers = {str(number): [] for number in range(WRITERS)}
    for line in lines_oldest_first(log_dir):
        found = LINE.search(line)
        assert found, f"a line not written by a writer, or cut: {line!r}"
        numbers[found[1]].append(int(found[2]))
    assert len(list(log_dir.glob("django.log.*"))) > 20  # it did rotate, many times
    for name, written in numbers.items():
        assert written == list(range(LINES)), f"writer {name}: lines lost, doubled or out of order"
