"""Schema-aware checks against discovered catalogs: extractor tables and columns, writer keys,
and processor SQL bound in DuckDB against empty tables shaped like its inputs.

Only what a catalog says is judged: a step whose columns are not known (a query extractor, a
file, a connection without a cache entry) silently skips every check that depends on it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from osiris.compiler.schema_sql import Binder, Columns, as_columns, binder
from osiris.oml.diagnostics import Suggestion
from osiris.oml.expr import Escape, Reference, Text
from osiris.oml.suggest import close_matches, did_you_mean, replacements
from osiris.oml.yamltree import YMap, YNode, YScalar, YSeq, inner_span
from osiris.runtime.catalog.model import Catalog, Table
from osiris.runtime.contract.connections import ConnectionRef

if TYPE_CHECKING:
    from osiris.compiler.check import CheckContext
    from osiris.compiler.registry import ComponentSpec

Catalogs = Callable[[ConnectionRef], Catalog | None]

_EXACT = frozenset({"postgres", "supabase"})  # identifiers are quoted there: case matters
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A value for a param without a default, by type: only the query's shape is bound.
_PLACEHOLDER: dict[str | None, Any] = {
    "integer": 0,
    "number": 0,
    "boolean": True,
    "date": "2000-01-01",
    "string": "",
}


@dataclass(slots=True)
class _Schema:
    """One pass's state: catalogs looked up once each, step columns as they become known."""

    ctx: CheckContext
    catalogs: Catalogs
    looked_up: dict[tuple[str, str | None], Catalog | None] = field(default_factory=dict)
    columns: dict[str, Columns | None] = field(default_factory=dict)  # step id -> its output
    _binder: Binder | None = None

    def catalog(self, ref: ConnectionRef) -> Catalog | None:
        key = (ref.family, ref.alias)
        if key not in self.looked_up:
            try:
                self.looked_up[key] = self.catalogs(ref)
            except Exception:  # a broken cache must never break a check
                self.looked_up[key] = None
        return self.looked_up[key]


def check_schema(ctx: CheckContext) -> None:
    """OML150-OML153, when the check was given catalogs (`--schema cached|live`)."""
    if ctx.catalogs is None:
        return
    state = _Schema(ctx, ctx.catalogs)
    for step_id, spec in ctx.specs.items():
        if step_id in ctx.unresolved or ctx.steps[step_id].config is None:
            continue
        if spec.role == "extractor":
            state.columns[step_id] = _check_extractor(state, step_id, spec)
        elif spec.role == "writer":
            _check_writer(state, step_id, spec)
    processors = [s for s, spec in ctx.specs.items() if spec.name == "duckdb.processor"]
    if processors and any(c is not None for c in state.columns.values()):
        with _session(state):
            for step_id in processors:
                _output(state, step_id)
    ctx.schema_columns = {s: c for s, c in state.columns.items() if c is not None}


# -- extractors and writers ---------------------------------------------------------------------


def _check_extractor(state: _Schema, step_id: str, spec: ComponentSpec) -> Columns | None:
    ctx = state.ctx
    config = ctx.steps[step_id].config
    assert config is not None
    target = _target(state, config, spec)
    if target is None:
        return None
    ref, catalog, name_node, name, schema = target
    exact = ref.family in _EXACT
    pool = _pool(catalog, schema, exact)
    if pool is None:
        return None
    table = next((t for t in pool if _same(t.name, name, exact)), None)
    if table is None and catalog.partial:
        return None  # discovered with --tables: the table may exist unlisted
    if table is None:
        names = sorted({t.name for t in pool})
        matches = close_matches(name, names)
        where = f"{ref}" + (f" (schema '{schema}')" if schema else "")
        ctx.diagnostics.error(
            "OML150",
            f"table '{name}' does not exist in {where}",
            name_node.span,
            why=f"The discovered catalog of {ref} has no table or view '{name}'."
            + did_you_mean(matches),
            fix=f"Correct the name; if the table was created since, run `osiris discover {ref} "
            "--refresh` (or check with --schema live).",
            suggestions=_replacements(matches, name_node),
        )
        return None
    entry = config.get("columns")
    if entry is None:
        return _arrow(tuple((c.name, c.arrow_type) for c in table.columns))
    if not isinstance(entry.value, YSeq):
        return None
    chosen: list[tuple[str, str]] = []
    complete = True
    for item in entry.value.items:
        column = _plain(item)
        if column is None:
            complete = False
            continue
        found = next((c for c in table.columns if _same(c.name, column, exact)), None)
        if found is not None:
            chosen.append((column, found.arrow_type))
            continue
        complete = False
        assert isinstance(item, YScalar)
        matches = close_matches(column, [c.name for c in table.columns])
        ctx.diagnostics.error(
            "OML151",
            f"column '{column}' is not in table '{table.name}' of {ref}",
            item.span,
            why=f"Columns of {table.name}: {_listing([c.name for c in table.columns])}."
            + did_you_mean(matches),
            fix="Correct the column name, or remove it from columns.",
            suggestions=_replacements(matches, item),
        )
    return _arrow(tuple(chosen)) if complete else None


def _check_writer(state: _Schema, step_id: str, spec: ComponentSpec) -> None:
    ctx = state.ctx
    config = ctx.steps[step_id].config
    assert config is not None
    target = _target(state, config, spec)
    if target is None:
        return
    ref, catalog, _, name, schema = target
    exact = ref.family in _EXACT
    pool = _pool(catalog, schema, exact)
    table = next((t for t in pool or () if _same(t.name, name, exact)), None)
    if table is None:
        return  # a writer may create its table
    entry = config.get("primary_key") or config.get("upsert_keys")
    if entry is None:
        return
    keys = entry.value.items if isinstance(entry.value, YSeq) else (entry.value,)
    columns = [c.name for c in table.columns]
    for node in keys:
        key = _plain(node)
        if key is None or any(_same(c, key, exact) for c in columns):
            continue
        assert isinstance(node, YScalar)
        matches = close_matches(key, columns)
        ctx.diagnostics.warning(
            "OML152",
            f"key column '{key}' is not a column of the existing table '{table.name}' in {ref}",
            node.span,
            why=f"The target exists (columns: {_listing(columns)}); rows are matched by the key "
            "columns, so the load would fail unless the table changes first."
            + did_you_mean(matches),
            fix="Name columns of the target table as the key.",
            suggestions=_replacements(matches, node),
        )


def _target(
    state: _Schema, config: YMap, spec: ComponentSpec
) -> tuple[ConnectionRef, Catalog, YScalar, str, str | None] | None:
    """The catalog, table node, table name and schema a step with `table:` names, when known."""
    family = spec.connection_family
    connection_entry = config.get("connection")
    connection = _plain(connection_entry.value) if connection_entry else None
    name_entry = config.get("table")
    if family is None or connection is None or name_entry is None:
        return None
    ref = ConnectionRef.parse(connection)
    name = _plain(name_entry.value)
    if ref is None or ref.family != family or name is None:
        return None
    catalog = state.catalog(ref)
    if catalog is None or not catalog.tables:
        return None
    schema_entry = config.get("schema")
    schema = _plain(schema_entry.value) if schema_entry else None
    if schema_entry is not None and schema is None:
        return None  # a schema only known with the params
    if family == "mysql":
        schema = None  # a MySQL schema is the connection's database
    elif family == "duckdb":
        if schema is None and "." in name and '"' not in name:
            schema, _, name = name.partition(".")
        if spec.role == "writer":
            schema = schema or "main"
    elif schema is None:
        schema = _connection_schema(state.ctx, ref)
    assert isinstance(name_entry.value, YScalar)
    return ref, catalog, name_entry.value, name, schema


def _connection_schema(ctx: CheckContext, ref: ConnectionRef) -> str | None:
    alias = ctx.connections.lookup(ref.family, ref.alias) if ctx.connections else None
    value = alias.fields.get("schema") if alias else None
    return value if isinstance(value, str) and value and "${" not in value else None


def _pool(catalog: Catalog, schema: str | None, exact: bool) -> list[Table] | None:
    """The tables a name is looked up among; None when the catalog knows nothing of schema."""
    if schema is None:
        return list(catalog.tables)
    found = [t for t in catalog.tables if t.schema is not None and _same(t.schema, schema, exact)]
    return found or None  # discovered with another --schema, perhaps: not judged


def _same(a: str, b: str, exact: bool) -> bool:
    return a == b if exact else a.lower() == b.lower()


def _plain(node: YNode | None) -> str | None:
    """A string written as is (no ${...}), else None."""
    if isinstance(node, YScalar) and isinstance(node.value, str) and node.template is None:
        return node.value
    return None


def _arrow(columns: tuple[tuple[str, str], ...]) -> Columns | None:
    return as_columns(columns) if columns else None


def _listing(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


def _replacements(matches: list[str], node: YScalar) -> tuple[Suggestion, ...]:
    quote = node.style is not None or any(not _PLAIN.fullmatch(m) for m in matches)
    return replacements(matches, node.span, quote=quote)


# -- processors ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _session(state: _Schema) -> Iterator[None]:
    with binder() as session:
        state._binder = session
        try:
            yield
        finally:
            state._binder = None


def _output(state: _Schema, step_id: str) -> Columns | None:
    """The columns a step produces, when known; processors are bound (and reported) once."""
    if step_id in state.columns:
        return state.columns[step_id]
    state.columns[step_id] = None  # a cycle (OML033) ends here
    spec = state.ctx.specs.get(step_id)
    if spec is not None and spec.name == "duckdb.processor" and step_id not in state.ctx.unresolved:
        state.columns[step_id] = _bind(state, step_id)
    return state.columns[step_id]


def _bind(state: _Schema, step_id: str) -> Columns | None:
    ctx = state.ctx
    config = ctx.steps[step_id].config
    entry = config.get("query") if config else None
    if entry is None or not isinstance(entry.value, YScalar):
        return None
    scalar = entry.value
    rendered = _render(ctx, step_id, scalar)
    upstream = ctx.upstream(step_id)
    if rendered is None or not upstream:
        return None
    query, pieces = rendered
    from osiris.compiler.check_sql import query_tables

    parsed = query_tables(query)
    aliases = _aliases(ctx, step_id, upstream)
    available = {n.lower() for n in [*upstream, *aliases]}
    if parsed.error is not None or any(t.lower() not in available for t in parsed.tables):
        return None  # OML037 / OML038 say what is wrong
    inputs = {u: _output(state, u) for u in upstream}
    assert state._binder is not None
    if any(c is None for c in inputs.values()):
        return None
    for name, columns in inputs.items():
        assert columns is not None
        if not state._binder.table(name, columns):
            return None
    bound = state._binder.bind(query, aliases)
    if bound is None:
        return None
    if bound.error is None:
        return bound.columns
    span = scalar.span
    suggestions: tuple[Suggestion, ...] = ()
    if bound.offset is not None:
        start = _source_offset(pieces, bound.offset)
        word = re.match(r"[\w.]+", query[bound.offset :])
        length = len(word.group(0)) if word and start[1] else 1
        span = inner_span(ctx.source, scalar, start[0], start[0] + length)
        candidate = re.search(r'"([^"]+)"', bound.hint or "")
        if word and start[1] and "column" in bound.error and span != scalar.span:
            wrong = word.group(0)
            prefix, _, column = wrong.rpartition(".")
            known = [n for cols in inputs.values() for n, _ in cols or ()]
            matches = [candidate.group(1)] if candidate else close_matches(column, known, 1)
            if not candidate and matches:
                bound = replace(bound, hint=f'Candidate bindings: "{matches[0]}"')
            if matches and _PLAIN.fullmatch(matches[0]):
                fixed = prefix + ("." if prefix else "") + matches[0]
                suggestions = (Suggestion(f"Change to '{fixed}'", fixed, span),)
    shapes = "; ".join(f"{u}: {', '.join(n for n, _ in cols or ())}" for u, cols in inputs.items())
    ctx.diagnostics.error(
        "OML153",
        f"the query of '{step_id}' does not fit its inputs: {bound.error}",
        span,
        why="DuckDB bound the query (without data) against its inputs' columns, as discovered "
        f"for the upstream steps ({shapes})." + (f" {bound.hint}." if bound.hint else ""),
        fix="Correct the column name or expression.",
        suggestions=suggestions,
    )
    return None


def _aliases(ctx: CheckContext, step_id: str, upstream: list[str]) -> dict[str, str]:
    """The names besides the step ids a processor may read (the runtime's processor_aliases)."""
    named = {e.input_name: e.upstream for e in ctx.edges_into.get(step_id, ()) if e.input_name}
    aliases: dict[str, str] = {}
    if len(upstream) == 1:
        aliases["input"] = aliases["input_df"] = upstream[0]
    for table in upstream:
        aliases[f"df_{table}"] = table
    for name, table in named.items():
        aliases.setdefault(name, table)
    return {a: t for a, t in aliases.items() if a != t and a not in upstream}


def _render(
    ctx: CheckContext, step_id: str, scalar: YScalar
) -> tuple[str, list[tuple[int, int, bool]]] | None:
    """The query with each param written as its default (or a placeholder of its type), and
    where each piece of it starts in the scalar's value: (query offset, value offset, is text)."""
    value = scalar.value
    if not isinstance(value, str):
        return None
    template = scalar.template
    if template is None:
        return value, [(0, 0, True)]
    if not template.valid:
        return None
    from osiris.compiler.sql_params import SqlParamError, param_kind, write_values

    found = ctx.sql_params.get((step_id, "query"))
    written: list[str] = []
    if found is not None:
        sql = found[0]
        values = []
        for slot in sql.slots:
            param = ctx.document.param(slot.param)
            if param is None:
                return None
            if param.default is not None:
                values.append(param.default.to_python())
            elif param.enum:
                values.append(param.enum[0])
            elif param_kind(ctx.document, slot.param) in _PLACEHOLDER:
                values.append(_PLACEHOLDER[param_kind(ctx.document, slot.param)])
            else:
                return None
        try:
            written = write_values(
                sql, values, [param_kind(ctx.document, s.param) for s in sql.slots]
            )
        except SqlParamError:
            return None
    out: list[str] = []
    pieces: list[tuple[int, int, bool]] = []
    at = size = 0
    params = iter(written)
    for part in template.parts:
        if isinstance(part, Reference):
            if part.param is None:
                return None  # ${STEP.df} in SQL is OML037
            text = next(params, None)
            if text is None:
                return None
            pieces.append((size, at, False))
            at = value.index("}", at) + 1
        elif isinstance(part, Escape):
            text = part.text
            pieces.append((size, at, True))
            at += 3
        else:
            assert isinstance(part, Text)
            text = part.text
            pieces.append((size, at, True))
            at += len(text)
        out.append(text)
        size += len(text)
    return "".join(out), pieces


def _source_offset(pieces: list[tuple[int, int, bool]], offset: int) -> tuple[int, bool]:
    """The value offset of a query offset, and whether it falls in text written in the source."""
    start, origin, text = max((p for p in pieces if p[0] <= offset), default=(0, 0, True))
    return (origin + offset - start, True) if text else (origin, False)
