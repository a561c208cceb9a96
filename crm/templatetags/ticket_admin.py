from django import template
from django.contrib.admin.templatetags.admin_list import date_hierarchy

from crm import admin_dates

register = template.Library()


@register.inclusion_tag("admin/date_hierarchy.html")
def indexed_date_hierarchy(cl):
    """Django's date hierarchy, its date queries answered by index seeks
    unless the list holds few tickets (a search for a requester, say): then
    Django's own queries go over those few only, each once, where the seeks
    would look the search up again for every period."""
    if cl.result_count < admin_dates.FEW_ROWS:
        return date_hierarchy(cl)
    return date_hierarchy(admin_dates.ChangeListWithIndexedDates(cl))
