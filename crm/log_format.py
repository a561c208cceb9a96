"""The log's JSON lines (LOG_FORMAT=json): one object per line, for log
collectors, with the job, fire and run of lines logged while a job runs."""

import json
import logging
from datetime import UTC, datetime

from crm.scheduler import run_label

RUN_FIELDS = ("job_id", "fire_time", "run_id")


class RunFields(logging.Filter):
    """Gives each record logged while a job runs (crm.scheduler.run_label)
    `job_id`, `fire_time` and `run_id`, unless the call passed them as `extra`."""

    def filter(self, record: logging.LogRecord) -> bool:
        label = run_label.current()
        if label is not None:
            record.__dict__.setdefault("job_id", label.job_id)
            record.__dict__.setdefault("fire_time", label.fire_time.isoformat())
            if label.run_id is not None:
                record.__dict__.setdefault("run_id", label.run_id)
        return True


class JsonFormatter(logging.Formatter):
    """time (UTC, ISO 8601), level, logger, pid, message, the run's fields when
    there are any, and the traceback as `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        line.update({name: record.__dict__[name] for name in RUN_FIELDS if name in record.__dict__})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)
