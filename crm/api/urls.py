"""/api/v1/: the version is in the path, so a later /api/v2/ can sit beside it."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from crm.api import views

app_name = "api"
urlpatterns = [
    path("jobs/", views.JobList.as_view(), name="jobs"),
    path("jobs/<str:job_id>/", views.JobDetail.as_view(), name="job"),
    path("jobs/<str:job_id>/run/", views.RunJob.as_view(), name="job-run"),
    path("jobs/<str:job_id>/pause/", views.PauseJob.as_view(), name="job-pause"),
    path("jobs/<str:job_id>/resume/", views.ResumeJob.as_view(), name="job-resume"),
    path("executions/", views.ExecutionList.as_view(), name="executions"),
    path("executions/<int:execution_id>/", views.ExecutionDetail.as_view(), name="execution"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
]
