"""Which page of an HTTP source comes next, and whether the pages add up.

Called by ``syncd.sources.http`` once per page. The styles of ``source.paging``: a
``Link: rel="next"`` header, a next-page URL or a cursor in the body, page numbers or
offsets counted up until a short or empty page, or a single request. ``Walk`` refuses
to go on past ``max_pages``, or to follow a link or cursor it has followed already (an
API whose cursor loops would otherwise be read forever, or, cut off by the bound,
as a smaller source). ``check_total`` holds the items read against a total the API
reports (in the body or a header), when it reports one.
"""

from __future__ import annotations

from typing import Any

import httpx2

from syncd.config import Paging
from syncd.errors import SourceError
from syncd.sources.mapping import at_path


class Walk:
    """The requests of one read, page by page."""

    def __init__(self, label: str, url: str, paging: Paging, max_pages: int) -> None:
        self.label = label
        self.paging = paging
        self.max_pages = max_pages
        self.number = 0  # of the page being read, from 1
        self._url: str | None = url
        self._params: dict[str, str] = {}
        self._seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        self.total: int | None = None
        self.items = 0
        if paging.style == "page":
            self._params = {paging.page_param: str(paging.first_page)}
        elif paging.style == "offset":
            self._params = {paging.offset_param: "0"}
        if paging.style in ("page", "offset") and paging.size_param:
            self._params[paging.size_param] = str(paging.size)

    def next_request(self) -> tuple[str, dict[str, str]] | None:
        """The URL and query parameters of the next page; None after the last one."""
        if self._url is None:
            return None
        key = (self._url, tuple(sorted(self._params.items())))
        if key in self._seen:
            raise SourceError(
                f"{self.label}: page {self.number + 1} would be {self._url} again: the API's "
                "next link or cursor loops; a read that cannot end is a failed read"
            )
        self._seen.add(key)
        self.number += 1
        if self.number > self.max_pages:
            raise SourceError(
                f"{self.label}: more than max_pages {self.max_pages} pages (fix: raise "
                "max_pages, or a larger paging.size)"
            )
        return self._url, dict(self._params)

    def advance(self, response: httpx2.Response, body: Any, count: int) -> None:
        """Take in a page of ``count`` items and work out the next request."""
        paging = self.paging
        self.items += count
        self._note_total(response, body)
        style = paging.style
        if style == "link":
            link = response.links.get("next", {}).get("url")
            self._url, self._params = (_joined(response, link), {}) if link else (None, {})
        elif style == "next":
            link = at_path(body, paging.next)
            self._url, self._params = (_joined(response, str(link)), {}) if link else (None, {})
        elif style == "cursor":
            cursor = at_path(body, paging.cursor)
            self._params = {**self._params, paging.cursor_param: str(cursor)}
            self._url = self._url if cursor not in (None, "") else None
        elif style in ("page", "offset") and not self._last(count):
            if style == "page":
                self._params[paging.page_param] = str(int(self._params[paging.page_param]) + 1)
            else:
                self._params[paging.offset_param] = str(self.items)
        else:
            self._url = None

    def _last(self, count: int) -> bool:
        """A page or offset read ends at a short or empty page, or at the total."""
        if self.total is not None and self.items >= self.total:
            return True
        return count == 0 or count < self.paging.size

    def _note_total(self, response: httpx2.Response, body: Any) -> None:
        paging = self.paging
        found: Any = None
        if paging.total:
            found = at_path(body, paging.total)
        if found is None and paging.total_header:
            found = response.headers.get(paging.total_header)
        if found is None:
            return
        try:
            total = int(found)
        except (TypeError, ValueError):
            raise SourceError(
                f"{self.label}: page {self.number} reports a total of {found!r}, not a number "
                "(fix: point paging.total at the item count, or unset it)"
            ) from None
        if self.total is not None and total != self.total:
            raise SourceError(
                f"{self.label}: page {self.number} reports a total of {total}, an earlier "
                f"page {self.total}: the collection changed while it was read; the next "
                "read tries again"
            )
        self.total = total

    def check_total(self, count: int) -> None:
        """``SourceError`` when the API reported a total and the read has another count."""
        if self.total is not None and count != self.total:
            raise SourceError(
                f"{self.label}: the API reports {self.total} items, the read got {count}: a "
                "missing or extra page is a failed read"
            )


def _joined(response: httpx2.Response, link: str) -> str:
    """A next link, relative ones resolved against the page that gave it."""
    return str(response.url.join(link))
