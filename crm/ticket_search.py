"""The admin's ticket search through a trigram index, with the same results.

The admin searches with icontains: each term of the search (split as Django
splits it, quotes keep words together) must be a case-insensitive substring
of the title, the requester's name or their e-mail. On PostgreSQL the pg_trgm
indexes of migration 0015 answer that query as it is. On SQLite, which has no
index for LIKE '%term%', the FTS5 trigram table crm_ticket_search finds the
tickets holding every term of three characters or more (unless that is
most of them: see COMMON); the icontains conditions still apply to those, so
the trigram table only ever narrows the rows to check, never changes which
match. Shorter terms have no trigrams: they are checked by the scan alone.

A search that finds few tickets (a requester's) is looked up once, and the
page's queries (the count, the rows, the date hierarchy) then go by their ids:
each trigram lookup costs the same however few it finds."""

from django.db import connections
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL
from django.utils.text import smart_split, unescape_string_literal

SEARCH_TABLE = "crm_ticket_search"
TRIGRAM = 3
# SQLite looks tickets up by the ids the trigram table finds, and each query
# of the page (the count, the rows, the date hierarchy's) does it again; past
# this many the scan in the list's order is the faster: it meets matches often.
COMMON = 20_000
# Found this many tickets or fewer, a search is pinned to their ids.
FEW = 500


def search_terms(search_term: str) -> list[str]:
    """The terms ModelAdmin.get_search_results looks for, each on its own."""
    terms = []
    for bit in smart_split(search_term):
        if bit.startswith(('"', "'")) and bit[0] == bit[-1]:
            bit = unescape_string_literal(bit)
        terms.append(bit)
    return terms


def narrowed(queryset: QuerySet, search_term: str) -> QuerySet:
    """`queryset` (already filtered by the admin's icontains search for
    `search_term`) found through the trigram indexes, and by the ids it
    holds when they are FEW or fewer."""
    queryset = narrowed_by_trigrams(queryset, search_term)
    if not search_term:
        return queryset
    ids = list(queryset.order_by().values_list("pk", flat=True)[: FEW + 1])
    if len(ids) > FEW:
        return queryset
    return queryset.filter(pk__in=ids)


def narrowed_by_trigrams(queryset: QuerySet, search_term: str) -> QuerySet:
    """`queryset` (already filtered by the admin's icontains search for
    `search_term`) limited to the tickets the trigram table finds, where
    there is one."""
    terms = [term for term in search_terms(search_term) if len(term) >= TRIGRAM]
    if not terms or not _has_search_table(queryset.db):
        return queryset
    # Each term a phrase (a run of consecutive trigrams) in any of the columns.
    match = " AND ".join('"' + term.replace('"', '""') + '"' for term in terms)
    if _found_at_least(queryset.db, match, COMMON):
        return queryset
    found = RawSQL(f"SELECT rowid FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH %s", [match])
    return queryset.filter(pk__in=found)


def _found_at_least(alias: str, match: str, enough: int) -> bool:
    with connections[alias].cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM (SELECT rowid FROM {SEARCH_TABLE} "
            f"WHERE {SEARCH_TABLE} MATCH %s LIMIT %s)",
            [match, enough],
        )
        return cursor.fetchone()[0] >= enough


def _has_search_table(alias: str) -> bool:
    connection = connections[alias]
    if connection.vendor != "sqlite":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = %s", [SEARCH_TABLE]
        )
        return cursor.fetchone() is not None
