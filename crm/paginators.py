from django.core.paginator import Paginator
from django.utils.functional import cached_property


class BoundedCountPaginator(Paginator):
    """Counts at most LIMIT rows, so a page of a million-row table does not cost
    a COUNT(*) over the whole table; beyond that the last page is LIMIT."""

    LIMIT = 10_000

    @cached_property
    def count(self):
        return self.object_list[: self.LIMIT].count()
