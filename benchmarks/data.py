"""Large tables written fast: one INSERT ... SELECT over a recursive CTE counting
1..n, on SQLite, PostgreSQL and MariaDB alike."""

from datetime import datetime

from django.db import connection

from crm.models import Ticket
from crm.scheduler import history

# The timestamp `i` seconds after the parameter.
SECONDS_AFTER = {
    "sqlite": "datetime(%s, '+' || i || ' seconds')",
    "postgresql": "CAST(%s AS timestamp with time zone) + i * interval '1 second'",
    "mysql": "DATE_ADD(%s, INTERVAL i SECOND)",
}


def _counting(rows: int, select: str, params: list, insert_into: str) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            cursor.execute("SET SESSION max_recursive_iterations = %s", [rows + 1])
        cursor.execute(
            f"INSERT INTO {insert_into} "
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s) "
            f"{select} FROM n",
            [rows, *params],
        )


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def insert_tickets(total: int, due: int, resolved_from: datetime) -> None:
    """`total` tickets, every (total // due)-th of them resolved (one second
    apart from `resolved_from`), the others open."""
    step = total // due
    at = SECONDS_AFTER[connection.vendor]
    _counting(
        total,
        "SELECT 'Benchmark ticket', '', 'Requester', 'requester@example.com', "
        f"CASE WHEN i %% {step} = 0 THEN 'resolved' ELSE 'open' END, {Ticket.Priority.NORMAL}, "
        f"{at}, {at}, CASE WHEN i %% {step} = 0 THEN {at} END",
        [_timestamp(resolved_from)] * 3,
        "crm_ticket (title, description, requester_name, requester_email, status, priority, "
        "created_at, updated_at, resolved_at)",
    )


def insert_executions(rows: int, job_ids: list[str], run_from: datetime) -> None:
    """`rows` finished runs, one second apart from `run_from`, spread over
    `job_ids` (which must be stored jobs); every tenth failed."""
    at = SECONDS_AFTER[connection.vendor]
    cases = " ".join(f"WHEN {n} THEN '{job_id}'" for n, job_id in enumerate(job_ids))
    _counting(
        rows,
        f"SELECT CASE i %% {len(job_ids)} {cases} END, "
        f"CASE WHEN i %% 10 = 1 THEN %s ELSE %s END, {at}, 1.5, 0",
        [history.FAILED, history.SUCCEEDED, _timestamp(run_from)],
        "django_apscheduler_djangojobexecution (job_id, status, run_time, duration, finished)",
    )


def analyze(*tables: str) -> None:
    """Refresh the planner's statistics after a bulk load, as autovacuum would
    have done long before a real table grew to this size."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ANALYZE {table}")


# For insert_daily_runs: 'bench-00042' for i % jobs == 42, on day i / jobs of
# the range, i % jobs seconds after the day's start.
BENCH_JOB_ID = {
    "sqlite": "printf('bench-%%05d', i %% {jobs})",
    "postgresql": "'bench-' || lpad((i %% {jobs})::text, 5, '0')",
    "mysql": "CONCAT('bench-', LPAD(i %% {jobs}, 5, '0'))",
}
DAY_AND_SECOND_AFTER = {
    "sqlite": "datetime(%s, '+' || ((i / {jobs}) * 86400 + i %% {jobs}) || ' seconds')",
    "postgresql": "CAST(%s AS timestamp with time zone) "
    "+ ((i / {jobs}) * 86400 + i %% {jobs}) * interval '1 second'",
    "mysql": "DATE_ADD(%s, INTERVAL ((i DIV {jobs}) * 86400 + i %% {jobs}) SECOND)",
}


def insert_daily_runs(jobs: int, days: int, run_from: datetime) -> None:
    """A finished run a day for `days` days from `run_from` for each of the
    stored jobs bench-00000 .. bench-{jobs - 1}; every tenth failed."""
    vendor = connection.vendor
    _counting(
        jobs * days,
        f"SELECT {BENCH_JOB_ID[vendor].format(jobs=jobs)}, "
        f"CASE WHEN i %% 10 = 1 THEN %s ELSE %s END, "
        f"{DAY_AND_SECOND_AFTER[vendor].format(jobs=jobs)}, 0.75, 0",
        [history.FAILED, history.SUCCEEDED, _timestamp(run_from)],
        "django_apscheduler_djangojobexecution (job_id, status, run_time, duration, finished)",
    )


SUBJECTS = [
    "Printer offline",
    "VPN drops every hour",
    "Refund missing",
    "Cannot log in",
    "Invoice shows the wrong address",
    "Laptop will not boot",
    "Password reset mail never arrives",
    "Order arrived damaged",
    "Wi-Fi slow on the third floor",
    "Export to CSV fails",
    "Monitor flickers",
    "Account locked",
    "Shipping address change",
    "Duplicate charge on card",
    "Calendar invites not delivered",
    "Phone line crackles",
]
FIRST_NAMES = ["Anna", "Olga", "John", "Maria", "Ahmed", "Li", "Sara", "Tom"]
REQUESTERS = 10_007  # a prime: a requester's tickets are not all of one subject


def _seconds_after_times(step: int) -> str:
    """The timestamp `i * step` seconds after the parameter."""
    return {
        "sqlite": f"datetime(%s, '+' || (i * {step}) || ' seconds')",
        "postgresql": f"CAST(%s AS timestamp with time zone) + i * {step} * interval '1 second'",
        "mysql": f"DATE_ADD(%s, INTERVAL i * {step} SECOND)",
    }[connection.vendor]


def _case(values: list[str]) -> str:
    """SQL picking values[i % len(values)] (values are SQL expressions)."""
    whens = " ".join(f"WHEN {n} THEN {value}" for n, value in enumerate(values))
    return f"CASE i %% {len(values)} {whens} END"


def _concat(*parts: str) -> str:
    if connection.vendor == "mysql":
        return f"CONCAT({', '.join(parts)})"
    return "(" + " || ".join(parts) + ")"


def insert_helpdesk_tickets(total: int, since: datetime, every_seconds: int, agents: list[int]):
    """`total` tickets created `every_seconds` apart from `since`, as a helpdesk
    a few years old has them: mostly closed, one of SUBJECTS as the title,
    requesters "<first name> Client<n>" <client<n>@example.com> with n below
    REQUESTERS, each priority in turn, assigned to each of `agents` in turn or
    to nobody."""
    at = _seconds_after_times(every_seconds)
    quoted = [f"'{subject}'" for subject in SUBJECTS]
    first_names = [f"'{name}'" for name in FIRST_NAMES]
    requester = f"(i %% {REQUESTERS})"  # SQLite binds || tighter than %
    status = (
        "CASE WHEN i %% 20 = 0 THEN 'new' WHEN i %% 20 < 3 THEN 'open' "
        "WHEN i %% 20 = 3 THEN 'pending' WHEN i %% 20 < 6 THEN 'resolved' ELSE 'closed' END"
    )
    name = _concat(_case(first_names), "' Client'", requester)
    email = _concat("'client'", requester, "'@example.com'")
    assignee = _case(["NULL", *map(str, agents)])
    _counting(
        total,
        f"SELECT {_case(quoted)}, '', {name}, {email}, {status}, 1 + i %% 4, {assignee}, "
        f"{at}, {at}, "
        f"CASE WHEN i %% 20 >= 4 THEN {at} END, CASE WHEN i %% 20 >= 6 THEN {at} END",
        [_timestamp(since)] * 4,
        "crm_ticket (title, description, requester_name, requester_email, status, priority, "
        "assignee_id, created_at, updated_at, resolved_at, closed_at)",
    )


def insert_ticket_events(ticket_id: int, events: int, since: datetime) -> None:
    """`events` history rows of one ticket, a minute apart from `since`:
    it goes back and forth between open and pending."""
    at = _seconds_after_times(60)
    _counting(
        events,
        f"SELECT {ticket_id}, 'status', CASE WHEN i %% 2 = 0 THEN 'open' ELSE 'pending' END, "
        f"CASE WHEN i %% 2 = 0 THEN 'pending' ELSE 'open' END, 'customer replied', {at}",
        [_timestamp(since)],
        "crm_ticketevent (ticket_id, kind, from_status, to_status, reason, created_at)",
    )


def delete_run_history() -> None:
    """Every run and what refers to it, left by this benchmark or an earlier one."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE crm_schedulercommand SET execution_id = NULL")
        cursor.execute("DELETE FROM crm_runattempt")
        cursor.execute("DELETE FROM crm_rundetail")
        cursor.execute("DELETE FROM django_apscheduler_djangojobexecution")
