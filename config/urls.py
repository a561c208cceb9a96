from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from crm import views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("health/scheduler/", views.scheduler_health, name="scheduler-health"),
    path("metrics", views.scheduler_metrics, name="metrics"),
    path("scheduler/wake/", views.scheduler_wake, name="scheduler-wake"),
    path("api/v1/", include("crm.api.urls")),
]
