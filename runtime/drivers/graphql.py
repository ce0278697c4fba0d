"""graphql.extractor: upstream Osiris's GraphQL extractor (same config fields), on our HTTP client and record stream."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any, ClassVar

from osiris.runtime.drivers.base import Abilities, DriverError, StepContext
from osiris.runtime.drivers.http_client import HttpClient, HttpSettings
from osiris.runtime.drivers.incremental import Window, dig, dig_all
from osiris.runtime.drivers.json_records import RecordSink, RecordStream, stream_records


def _settings(ctx: StepContext) -> tuple[HttpSettings, str]:
    """The HTTP settings and the URL to POST to: the connection's base_url (endpoint a path
    under it), or the inline endpoint with the step's headers."""
    config = ctx.config
    endpoint = str(config.get("endpoint") or "")
    fields = ctx.connection
    if fields is not None:
        settings = HttpSettings.from_connection(fields)
        return settings, settings.url(endpoint)
    if not endpoint.startswith(("http://", "https://")):
        raise DriverError(
            'graphql.extractor needs endpoint (an http(s) URL) or connection: "@http.<alias>"'
        )
    timeout = config.get("timeout", 30)
    settings = HttpSettings(
        base_url=endpoint,
        headers={str(k): str(v) for k, v in (config.get("headers") or {}).items()},
        timeout=float(timeout) if isinstance(timeout, (int, float)) else 30.0,
        verify_tls=config.get("validate_ssl", True) is not False,
    )
    return settings, endpoint


def graphql_errors(body: Any) -> str | None:
    """The messages of a response's `errors`, joined; None when it has none."""
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if not errors:
        return None
    items = errors if isinstance(errors, list) else [errors]
    messages = [
        str(e.get("message")) if isinstance(e, Mapping) and e.get("message") else str(e)
        for e in items
    ]
    return "; ".join(" ".join(m.split())[:200] for m in messages[:5])


class GraphQLExtractor:
    """POSTs the query (again with the next cursor while pageInfo says there is more) and sends
    the records at data_path on as pages arrive, widening the schema like rest.extractor."""

    abilities: ClassVar[Abilities] = Abilities(roles=("extractor",))

    def extract(self, ctx: StepContext) -> RecordStream:
        config = ctx.config
        settings, url = _settings(ctx)
        settings = replace(
            settings,
            max_retries=int(config.get("max_retries", 3)),
            backoff=float(config.get("retry_delay", 1.0)),
        )
        client = HttpClient(ctx, settings, "")
        variables: dict[str, Any] = dict(config.get("variables") or {})
        spec = config.get("incremental")
        window = None
        if isinstance(spec, Mapping):
            window = Window.open(ctx, spec, str(spec["cursor_path"]))
            if spec.get("variable") and window.since is not None:
                variables[str(spec["variable"])] = window.since
        paginate = bool(config.get("pagination_enabled", False))
        max_pages = int(config.get("max_pages", 0) or 0)
        data_path = str(config.get("data_path", "data") or "data")
        sink = RecordSink(
            ctx.batch_size,
            flatten=bool(config.get("flatten_result", True)),
            known=window.columns if window is not None else (),
            separator=".",  # pandas.json_normalize's, as upstream named the columns
        )

        def pages() -> Iterator[list[Any]]:
            count = read = 0
            while True:
                response = client.request(
                    url, method="POST", body={"query": config["query"], "variables": variables}
                )
                body = response.json()
                problem = graphql_errors(body)
                if problem:
                    raise DriverError(f"the GraphQL API answered with errors: {problem}")
                read += 1
                kept = []
                for record in dig_all(body, data_path):
                    if window is not None:
                        value = dig(record, window.cursor) if isinstance(record, Mapping) else None
                        if not window.keep(value):
                            continue
                    kept.append(record)
                count += len(kept)
                ctx.progress(count)
                yield kept
                if not paginate:
                    break
                info = dig(body, str(config.get("pagination_path", "data.pageInfo")))
                if not isinstance(info, Mapping):
                    break
                more = info.get(str(config.get("pagination_has_next_field", "hasNextPage")))
                cursor = info.get(str(config.get("pagination_cursor_field", "endCursor")))
                if not more or cursor is None:
                    break
                if max_pages and read >= max_pages:
                    ctx.log(f"stopped at max_pages ({max_pages}); the API has more")
                    break
                variables[str(config.get("pagination_variable_name", "after"))] = cursor
            ctx.log(f"{read} page(s), {client.requests} request(s), {count} record(s)")
            if window is not None:
                window.hold(ctx, sink.columns())

        return stream_records(
            ctx,
            "graphql",
            pages(),
            sink,
            f"the GraphQL API returned no records at data_path {data_path!r} (check query, "
            "variables and data_path)",
        )
