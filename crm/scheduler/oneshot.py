"""The trigger of a one-shot job (`run_at`): one fire, then none."""

from datetime import datetime

from apscheduler.triggers.base import BaseTrigger


class OnceTrigger(BaseTrigger):
    def __init__(self, run_at: datetime):
        if run_at.tzinfo is None:
            raise ValueError("run_at needs a time zone")
        self.run_at = run_at

    def get_next_fire_time(self, previous_fire_time, now):
        return None if previous_fire_time is not None else self.run_at

    def __getstate__(self):
        return {"version": 1, "run_at": self.run_at}

    def __setstate__(self, state):
        self.run_at = state["run_at"]

    def __repr__(self):
        return f"<OnceTrigger ({self.run_at.isoformat()})>"
