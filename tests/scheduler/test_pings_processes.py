"""A process that runs a job and exits at once (`scheduler run --here`,
`runscheduler --once`) sends the run's pings before it ends."""

import pytest

from tests.support.processes import e2e_env, run_manage

pytestmark = pytest.mark.e2e


@pytest.fixture
def env(tmp_path, fresh_database_url, receiver):
    env = e2e_env(
        tmp_path,
        fresh_database_url,
        settings="tests.support.e2e_ping_settings",
        ENABLE_SCHEDULER="0",
        E2E_PING_URL=receiver.url("/ping/nightly"),
    )
    synced = run_manage("scheduler", "sync", env=env)
    assert synced.returncode == 0, synced.stderr
    return env


def test_a_run_by_hand_pings_start_and_success_before_the_command_exits(env, receiver):
    result = run_manage("scheduler", "run", "nightly", "--here", env=env)

    assert result.returncode == 0, result.stderr
    assert [(request.path, request.body.split(" ")[0]) for request in receiver.received] == [
        ("/ping/nightly/start", "started"),
        ("/ping/nightly", "succeeded"),
    ]
