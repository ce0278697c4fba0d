"""rest.extractor: records of a paginated JSON API (dlt rest_api's names) as Arrow batches sent while pages arrive."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from osiris.runtime.drivers.base import Abilities, DriverError, StepContext
from osiris.runtime.drivers.http_client import HttpClient, HttpSettings, Response, link_next
from osiris.runtime.drivers.incremental import Window, dig
from osiris.runtime.drivers.json_records import RecordSink, RecordStream, stream_records

# Where APIs commonly put the list of records when no data_selector is given.
_LIST_KEYS = ("data", "items", "results", "records", "rows", "entries", "values")


def select_records(body: Any, selector: str | None, what: str) -> list[Any]:
    """The list of records in a response body."""
    if selector:
        found = dig(body, selector)
        if found is None:
            return []
        if not isinstance(found, list):
            return [found]
        return found
    if isinstance(body, list):
        return body
    if isinstance(body, Mapping):
        for key in _LIST_KEYS:
            if isinstance(body.get(key), list):
                return list(body[key])
        return [body]
    raise DriverError(f"{what}the response is a JSON {type(body).__name__}, not records")


@dataclass(frozen=True, slots=True)
class Page:
    records: list[Any]
    response: Response


class Paging:
    """Walks the pages of one endpoint with the configured paginator."""

    def __init__(
        self, client: HttpClient, config: Mapping[str, Any], params: dict[str, Any], what: str
    ) -> None:
        self.client = client
        self.what = what
        self.selector = config.get("data_selector")
        self.spec: Mapping[str, Any] = config.get("paginator") or {"type": "single_page"}
        self.kind = str(self.spec.get("type", "single_page"))
        self.url = client.settings.url(str(config.get("path") or ""))
        self.params = params
        self.max_pages = config.get("max_pages")
        self.pages = 0
        self.truncated = False

    def __iter__(self) -> Iterator[Page]:
        spec, params = self.spec, self.params
        number = int(spec.get("start", 1 if self.kind == "page_number" else 0))
        if self.kind == "page_number":
            params[spec.get("page_param", "page")] = number
        elif self.kind == "offset":
            params[spec.get("offset_param", "offset")] = number
            params[spec.get("limit_param", "limit")] = int(spec["limit"])
        seen: set[str] = set()
        while True:
            if self.max_pages is not None and self.pages >= self.max_pages:
                self.truncated = True
                return
            response = self.client.request(self.url, params)
            body = response.json(self.what)
            records = select_records(body, self.selector, self.what)
            self.pages += 1
            yield Page(records, response)
            if self.kind == "single_page":
                return
            if self.kind == "cursor":
                cursor = dig(body, str(spec.get("cursor_path", "next_cursor")))
                if cursor in (None, "", False):
                    return
                self._unseen(seen, f"cursor {cursor}")
                params[spec.get("cursor_param", "cursor")] = cursor
            elif self.kind in ("page_number", "offset"):
                if not records:
                    return
                step = 1 if self.kind == "page_number" else int(spec["limit"])
                number += step
                total = dig(body, str(spec["total_path"])) if spec.get("total_path") else None
                if isinstance(total, (int, float)) and not isinstance(total, bool):
                    # page_number: total pages (counted from start); offset: total records
                    first = int(spec.get("start", 1 if self.kind == "page_number" else 0))
                    if (self.kind == "page_number" and number - first >= total) or (
                        self.kind == "offset" and number >= total
                    ):
                        return
                key = "page_param" if self.kind == "page_number" else "offset_param"
                params[spec.get(key, "page" if self.kind == "page_number" else "offset")] = number
            elif self.kind in ("json_link", "header_link"):
                if self.kind == "json_link":
                    target = dig(body, str(spec.get("next_url_path", "next")))
                else:
                    target = link_next(response.headers.get("link"))
                if not target or not isinstance(target, str):
                    return
                self.url = urllib.parse.urljoin(response.url, target)
                self._unseen(seen, self.url)
                params.clear()  # the link carries the query of the next page
            else:
                raise DriverError(f"{self.what}unknown paginator type {self.kind!r}")

    def _unseen(self, seen: set[str], key: str) -> None:
        if key in seen:
            raise DriverError(
                f"{self.what}the API sent the same next page twice ({self.kind} paginator); "
                "stopping instead of looping forever"
            )
        seen.add(key)


class RestExtractor:
    """Sends records on as the pages arrive (json_records.RecordStream): typed by the first
    page, restarted with a replay when a later page widens the schema (no field is dropped)."""

    abilities: ClassVar[Abilities] = Abilities(roles=("extractor",))

    def extract(self, ctx: StepContext) -> RecordStream:
        config = ctx.config
        what = ""  # the engine names the step
        fields = ctx.connection
        if fields is None:
            raise DriverError('rest.extractor needs connection: "@http.<alias>"')
        settings = HttpSettings.from_connection(fields)
        rate = config.get("rate_limit")
        settings = replace(
            settings,
            max_retries=int(config.get("max_retries", 5)),
            backoff=float(config.get("retry_backoff", 0.5)),
            rate_limit=float(rate) if isinstance(rate, (int, float)) else None,
        )
        client = HttpClient(ctx, settings, what)
        params: dict[str, Any] = dict(config.get("params") or {})
        spec = config.get("incremental")
        window = None
        if isinstance(spec, Mapping):
            window = Window.open(ctx, spec, str(spec["cursor_path"]))
            if spec.get("start_param") and window.since is not None:
                params[str(spec["start_param"])] = window.since
        paging = Paging(client, config, params, what)
        sink = RecordSink(
            ctx.batch_size,
            flatten=bool(config.get("flatten")),
            known=window.columns if window is not None else (),
        )
        limit = config.get("max_records")

        def pages() -> Iterator[list[Any]]:
            count = skipped = 0
            for page in paging:
                kept = []
                for record in page.records:
                    if limit is not None and count >= limit:
                        paging.truncated = True
                        break
                    if window is not None:
                        value = dig(record, window.cursor) if isinstance(record, Mapping) else None
                        if not window.keep(value):
                            skipped += 1
                            continue
                    kept.append(record)
                    count += 1
                ctx.progress(count)
                yield kept
                if paging.truncated:
                    break
            ctx.log(
                f"{paging.pages} page(s), {client.requests} request(s), {count} record(s)"
                + (f", {skipped} already read before" if skipped else "")
            )
            if paging.truncated:
                ctx.log(
                    "stopped at the max_pages/max_records limit; the API has more "
                    "(raise the limit, or let incremental runs continue from here)"
                )
            if window is not None:
                window.hold(ctx, sink.columns())

        return stream_records(
            ctx,
            "rest",
            pages(),
            sink,
            "the API returned no records (check path, params and data_selector)",
        )
