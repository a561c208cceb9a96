from django.db import models


class SchedulerLease(models.Model):
    """Who may run jobs. One row per lease name; the holder renews it before
    `expires_at` (database time), and anyone may take it once that has passed."""

    name = models.CharField(primary_key=True, max_length=50)
    holder = models.CharField(max_length=200, blank=True, help_text="Empty when free.")
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    acquired_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "scheduler lease"

    def __str__(self):
        return f"{self.name}: {self.holder or 'free'}"
