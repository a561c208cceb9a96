"""The project's URLs plus django-apscheduler's own DjangoJob admin, as it
ships, under /stock-admin/: the dashboard benchmark's reference."""

from django.contrib.admin import AdminSite
from django.urls import path
from django_apscheduler.admin import DjangoJobAdmin
from django_apscheduler.models import DjangoJob

from config.urls import urlpatterns as project_urls

site = AdminSite(name="stock_admin")
site.register(DjangoJob, DjangoJobAdmin)

urlpatterns = [path("stock-admin/", site.urls), *project_urls]
