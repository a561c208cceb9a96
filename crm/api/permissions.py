"""Who may do what: the admin's permissions, on django-apscheduler's models
(crm.scheduler.permissions creates the run, pause and resume ones)."""

from rest_framework.permissions import BasePermission

VIEW_JOBS = "django_apscheduler.view_djangojob"
VIEW_EXECUTIONS = "django_apscheduler.view_djangojobexecution"


class HasPermissions(BasePermission):
    """The user has every permission in `required`. Anonymous requests are
    answered 401 by DRF, users without them 403 with `message`."""

    required: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        return (
            f"This needs the permission{'s' if len(self.required) > 1 else ''} "
            f"{', '.join(self.required)}; ask an administrator to grant "
            f"{'them' if len(self.required) > 1 else 'it'} to your user."
        )

    def has_permission(self, request, view) -> bool:
        return request.user.has_perms(self.required)


class CanViewJobs(HasPermissions):
    required = (VIEW_JOBS,)


class CanViewExecutions(HasPermissions):
    required = (VIEW_EXECUTIONS,)


# As in the admin, where the actions are on the jobs page.
class CanRunJobs(HasPermissions):
    required = (VIEW_JOBS, "django_apscheduler.run_djangojob")


class CanPauseJobs(HasPermissions):
    required = (VIEW_JOBS, "django_apscheduler.pause_djangojob")


class CanResumeJobs(HasPermissions):
    required = (VIEW_JOBS, "django_apscheduler.resume_djangojob")
