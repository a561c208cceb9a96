from django import template
from django.contrib.admin.templatetags.admin_list import date_hierarchy

from crm.admin_dates import ChangeListWithIndexedDates

register = template.Library()


@register.inclusion_tag("admin/date_hierarchy.html")
def indexed_date_hierarchy(cl):
    """Django's date hierarchy, its date queries answered by index seeks."""
    return date_hierarchy(ChangeListWithIndexedDates(cl))
