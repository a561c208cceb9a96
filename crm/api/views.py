"""The endpoints. Reads go through crm.scheduler.status and the run history;
actions through crm.scheduler.control.operate, as the admin's do, and never
wait for the job: a 202 says the request is queued for the active scheduler."""

from django_apscheduler.models import DjangoJobExecution
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status as http
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api import pagination, permissions, schema, serializers
from crm.scheduler import control, status
from crm.scheduler import serializers as scheduler_serializers

ERRORS = {
    400: OpenApiResponse(schema.Error, "Bad input; `detail` names the field."),
    401: OpenApiResponse(schema.Error, "No token or session, or a wrong one."),
    403: OpenApiResponse(schema.Error, "A permission is missing; `detail` names it."),
    404: OpenApiResponse(schema.Error, "No such job or run."),
    429: OpenApiResponse(schema.Error, "Too many requests; retry after Retry-After seconds."),
}
# An operation's state, as an HTTP status.
OPERATION_STATUS = {
    control.DONE: http.HTTP_200_OK,
    control.QUEUED: http.HTTP_202_ACCEPTED,
    control.FAILED: http.HTTP_409_CONFLICT,
}


def requester(request) -> str:
    """Who asked, as the run history and the command rows record it."""
    return f"api: {request.user.get_username()}"


def errors(*codes: int) -> dict:
    return {code: ERRORS[code] for code in codes}


def job_state(job_id: str) -> status.JobState:
    states = status.job_states(job_ids=[job_id])
    if not states:
        raise NotFound(f"No job {job_id!r}; GET /api/v1/jobs/ lists the jobs.")
    return states[0]


class ApiView(APIView):
    def permission_denied(self, request, message=None, code=None):
        # DRF checks permissions before throttles, so a request refused 401 or
        # 403 would never be counted: anonymous callers would have no limit.
        self.check_throttles(request)
        super().permission_denied(request, message, code)


class JobList(ApiView):
    permission_classes = [permissions.CanViewJobs]

    @extend_schema(
        operation_id="list_jobs",
        summary="Every declared or stored job, with its state",
        responses={200: schema.JobList, **errors(401, 403, 429)},
    )
    def get(self, request):
        jobs = status.job_states()
        return Response({"results": [scheduler_serializers.job_state(job) for job in jobs]})


class JobDetail(ApiView):
    permission_classes = [permissions.CanViewJobs]

    @extend_schema(
        operation_id="get_job",
        summary="One job's state",
        responses={200: schema.JobState, **errors(401, 403, 404, 429)},
    )
    def get(self, request, job_id: str):
        return Response(scheduler_serializers.job_state(job_state(job_id)))


class JobAction(ApiView):
    """POST one action on one job; answers what became of it (control.Operation)."""

    job_action: str
    request_serializer = serializers.NoInput

    def post(self, request, job_id: str):
        options = self.request_serializer(data=request.data)
        options.is_valid(raise_exception=True)
        [operation] = control.operate(
            self.job_action,
            [job_id],
            requester(request),
            wait=0,
            source=control.Source.API,
            **options.validated_data,
        )
        if isinstance(operation.error, control.UnknownJob):
            raise NotFound(operation.message)
        return Response(operation.as_dict(), status=OPERATION_STATUS[operation.state])


ACTION_RESPONSES = {
    200: OpenApiResponse(schema.Operation, "Done (no scheduler is active: applied here)."),
    202: OpenApiResponse(schema.Operation, "Queued for the active scheduler."),
    409: OpenApiResponse(schema.Operation, "Refused in this state; `message` says why."),
    **errors(400, 401, 403, 404, 429),
}


@extend_schema_view(
    post=extend_schema(
        operation_id="run_job",
        summary="Run a job now",
        description="Needs django_apscheduler.run_djangojob. The active scheduler runs it "
        "within seconds (with none active, the first to start within 5 minutes does); "
        "GET /api/v1/executions/?job=ID shows the run.",
        request=None,
        responses=ACTION_RESPONSES,
    )
)
class RunJob(JobAction):
    permission_classes = [permissions.CanRunJobs]
    job_action = control.Action.RUN


@extend_schema_view(
    post=extend_schema(
        operation_id="pause_job",
        summary="Pause a job, until a time if given",
        description="Needs django_apscheduler.pause_djangojob.",
        request=serializers.PauseRequest,
        responses=ACTION_RESPONSES,
    )
)
class PauseJob(JobAction):
    permission_classes = [permissions.CanPauseJobs]
    job_action = control.Action.PAUSE
    request_serializer = serializers.PauseRequest


@extend_schema_view(
    post=extend_schema(
        operation_id="resume_job",
        summary="Resume a paused job",
        description="Needs django_apscheduler.resume_djangojob.",
        request=None,
        responses=ACTION_RESPONSES,
    )
)
class ResumeJob(JobAction):
    permission_classes = [permissions.CanResumeJobs]
    job_action = control.Action.RESUME


class ExecutionList(ApiView):
    permission_classes = [permissions.CanViewExecutions]

    @extend_schema(
        operation_id="list_executions",
        summary="Runs, newest first, a page at a time",
        parameters=[serializers.ExecutionFilters],
        responses={200: schema.ExecutionPage, **errors(400, 401, 403, 429)},
    )
    def get(self, request):
        filters = serializers.ExecutionFilters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        wanted = filters.validated_data
        rows, after = pagination.page(
            selected_runs(wanted), wanted.get("cursor"), wanted["page_size"]
        )
        return Response(
            {
                "next": pagination.next_link(request, after),
                "results": [serializers.execution(run) for run in rows],
            }
        )


def selected_runs(wanted: dict):
    runs = DjangoJobExecution.objects.select_related("detail")
    if "job" in wanted:
        runs = runs.filter(job_id=wanted["job"])
    if "status" in wanted:
        runs = runs.filter(status=wanted["status"])
    if "scheduled_since" in wanted:
        runs = runs.filter(run_time__gte=wanted["scheduled_since"])
    if "scheduled_before" in wanted:
        runs = runs.filter(run_time__lt=wanted["scheduled_before"])
    return runs


class ExecutionDetail(ApiView):
    permission_classes = [permissions.CanViewExecutions]

    @extend_schema(
        operation_id="get_execution",
        summary="One run, with its traceback and attempts",
        responses={200: schema.ExecutionInFull, **errors(401, 403, 404, 429)},
    )
    def get(self, request, execution_id: int):
        run = (
            DjangoJobExecution.objects.select_related("detail")
            .prefetch_related("attempts")
            .filter(pk=execution_id)
            .first()
        )
        if run is None:
            raise NotFound(
                f"No run {execution_id}; run history is kept EXECUTION_RETENTION_DAYS days."
            )
        return Response(serializers.execution_in_full(run))
