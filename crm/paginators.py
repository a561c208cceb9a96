from django.core.paginator import Paginator
from django.utils.functional import cached_property


class BoundedCountPaginator(Paginator):
    """Counts at most LIMIT rows, so a page of a million-row table does not cost
    a COUNT(*) over the whole table; beyond that the last page is LIMIT."""

    LIMIT = 10_000

    @cached_property
    def count(self):
        return self.object_list[: self.LIMIT].count()


class PageWindowPaginator(BoundedCountPaginator):
    """Counts at most LIMIT rows past the start of the page asked for
    (`page_number`), so that deep pages exist (page 1,000 of a million rows)
    without a COUNT(*) over the whole table."""

    def __init__(self, object_list, per_page, *args, page_number: int = 1, **kwargs):
        super().__init__(object_list, per_page, *args, **kwargs)
        self.page_number = max(page_number, 1)

    @cached_property
    def count(self):
        # Without the ordering: how many rows there are does not depend on it,
        # and the database may then count them by any index (a search's).
        limit = (self.page_number - 1) * self.per_page + self.LIMIT
        return self.object_list.order_by()[:limit].count()
