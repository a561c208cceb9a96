"""The systemd units in deploy/systemd pass `systemd-analyze verify`, and give
the scheduler time to shut down cleanly before systemd kills it."""

import configparser
import runpy
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import PROJECT_DIR

UNITS = sorted((PROJECT_DIR / "deploy" / "systemd").glob("*.service"))
DEFAULT_SHUTDOWN_WAIT = 10


def installed_copy(unit: Path, directory: Path) -> Path:
    """The unit as installed here: this checkout for /srv/crm, a user that
    exists for `crm` (verify checks both)."""
    text = unit.read_text().replace(
        "/srv/crm/.env", str(PROJECT_DIR / "deploy/systemd/crm.env.example")
    )
    text = text.replace("/srv/crm", str(PROJECT_DIR))
    text = text.replace("User=crm", "User=daemon").replace("Group=crm", "Group=daemon")
    copy = directory / unit.name
    copy.write_text(text)
    return copy


def service_section(unit: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(unit.read_text())
    return parser["Service"]


def test_the_units_pass_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail(
            "systemd-analyze is missing: apt-get update && apt-get install -y systemd",
            pytrace=False,
        )
    assert [unit.name for unit in UNITS] == ["crm-scheduler.service", "crm-web.service"]
    copies = [installed_copy(unit, tmp_path) for unit in UNITS]

    verified = subprocess.run(
        [analyze, "verify", "--man=no", *map(str, copies)], capture_output=True, text=True
    )

    assert verified.returncode == 0 and verified.stderr == "", verified.stderr


def test_verify_catches_a_broken_unit(tmp_path):
    """So that the test above can fail."""
    broken = tmp_path / "broken.service"
    broken.write_text("[Service]\nExecStart=/nonexistent/gunicorn\n")

    verified = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(broken)], capture_output=True, text=True
    )

    assert verified.returncode != 0 and "/nonexistent/gunicorn" in verified.stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_systemd_waits_longer_than_the_scheduler_on_sigterm(unit):
    service = service_section(unit)

    assert service["KillSignal"] == "SIGTERM"
    assert service["User"] != "root" and service["Restart"] in {"always", "on-failure"}
    gunicorn = runpy.run_path(str(PROJECT_DIR / "deploy" / "gunicorn.conf.py"))
    assert gunicorn["graceful_timeout"] > DEFAULT_SHUTDOWN_WAIT
    assert int(service["TimeoutStopSec"]) > gunicorn["graceful_timeout"]
