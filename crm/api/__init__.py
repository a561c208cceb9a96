"""The REST API for scripts and dashboards, under /api/v1/ (README "API").

Jobs are given in the scheduler's one JSON shape (crm.scheduler.serializers),
and every action goes through crm.scheduler.control, as in the admin.
"""
