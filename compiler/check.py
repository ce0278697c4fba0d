"""Semantic checks of an OML document against the spec registry: a tuple of passes over one context."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from osiris.compiler.check_config import check_config, check_constraints
from osiris.compiler.check_files import check_dtype
from osiris.compiler.check_partition import check_partition_columns, check_partitions
from osiris.compiler.check_schema import Catalogs, check_schema
from osiris.compiler.connections import ConnectionsIndex
from osiris.compiler.locate import key_span, node_at
from osiris.compiler.sql_params import SqlTemplate, check_sql_params
from osiris.compiler.upstream import check_upstream, normalise
from osiris.oml.ast import Document, Name, Step
from osiris.oml.diagnostics import DiagnosticList, Suggestion
from osiris.oml.expr import ExpressionError, Reference, parse_connection_ref
from osiris.oml.span import Span
from osiris.oml.suggest import close_matches, did_you_mean, replacements
from osiris.oml.types import PLACEHOLDERS, conforms
from osiris.oml.visitor import NodeVisitor, find_all
from osiris.oml.yamltree import YEntry, YMap, YScalar, YSeq, inner_span
from osiris.runtime.contract.connections import DEFAULT_KEY, pinned_overrides

if TYPE_CHECKING:
    from osiris.compiler.registry import ComponentSpec, Registry


@dataclass(frozen=True, slots=True)
class Edge:
    upstream: str
    downstream: str
    span: Span
    input_name: str | None  # set for `inputs:` edges


@dataclass(slots=True)
class CheckContext:
    """Everything the passes share; passes add diagnostics and fill in derived facts."""

    document: Document
    registry: Registry
    diagnostics: DiagnosticList
    connections: ConnectionsIndex | None = None
    steps: dict[str, Step] = field(default_factory=dict)  # first step with each id
    specs: dict[str, ComponentSpec] = field(default_factory=dict)  # step id -> its spec
    edges: list[Edge] = field(default_factory=list)
    param_uses: dict[str, list[Span]] = field(default_factory=dict)
    param_steps: set[str] = field(default_factory=set)  # steps whose config uses a param
    unresolved: set[str] = field(default_factory=set)  # steps with a reference to an unknown step
    # (step id, SQL field) -> where its params sit; filled by check_sql_params
    sql_params: dict[tuple[str, str], tuple[SqlTemplate, YScalar]] = field(default_factory=dict)
    # connection -> its discovered catalog (None: no schema-aware checks); see check_schema
    catalogs: Catalogs | None = None
    # step id -> its output columns (name, DuckDB type), where a catalog made them known
    schema_columns: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    _edges_into: dict[str, list[Edge]] | None = field(default=None, repr=False)
    _edges_indexed: int = field(default=-1, repr=False)

    @property
    def source(self) -> Any:
        return self.document.source

    def upstream(self, step_id: str) -> list[str]:
        """Distinct upstream step ids of a step, in declaration order."""
        return list(dict.fromkeys(e.upstream for e in self.edges_into.get(step_id, ())))

    @property
    def edges_into(self) -> dict[str, list[Edge]]:
        if self._edges_into is None or self._edges_indexed != len(self.edges):
            index: dict[str, list[Edge]] = {}
            for edge in self.edges:
                index.setdefault(edge.downstream, []).append(edge)
            self._edges_into, self._edges_indexed = index, len(self.edges)
        return self._edges_into


# -- passes -----------------------------------------------------------------------------------


def check_registry(ctx: CheckContext) -> None:
    for problem in ctx.registry.problems:
        ctx.diagnostics.error(
            "OML050",
            f"component spec {problem.file} is broken: {problem.message}",
            None,
            why="A spec that does not validate cannot be used; the components it defines are "
            "unavailable.",
            fix="Fix the spec file (see specs/spec.schema.json).",
        )


def check_step_ids(ctx: CheckContext) -> None:
    for step in ctx.document.steps:
        if step.id is None:
            continue
        first = ctx.steps.get(step.id.value)
        if first is None:
            ctx.steps[step.id.value] = step
            continue
        ctx.diagnostics.error(
            "OML013",
            f"duplicate step id '{step.id.value}'",
            step.id.span,
            why=f"'{step.id.value}' is already the id of the step on line "
            f"{first.span.start.line}; ids name tables and references, so they must be unique.",
            fix="Rename one of the steps.",
        )


# Upstream Osiris components not shipped here -> (ours instead, an example step).
UPSTREAM_ONLY = {
    "posthog.extractor": (
        "rest.extractor",
        "# osiris_connections.yaml\nconnections:\n  http:\n    posthog:\n"
        "      base_url: https://us.posthog.com\n"
        '      auth: {type: bearer, token: "${POSTHOG_API_KEY}"}\n'
        "# pipeline step\n- id: events\n  component: rest.extractor\n  mode: read\n"
        '  config:\n    connection: "@http.posthog"\n'
        "    path: /api/projects/12345/events\n    data_selector: results\n"
        "    paginator: {type: json_link, next_url_path: next}",
    ),
}


def check_components(ctx: CheckContext) -> None:
    for step in ctx.document.steps:
        if step.component is None:
            continue
        spec = ctx.registry.get(step.component.value)
        if spec is None and step.component.value in UPSTREAM_ONLY:
            instead, example = UPSTREAM_ONLY[step.component.value]
            ctx.diagnostics.error(
                "OML180",
                f"upstream component '{step.component.value}' is not available here; use {instead}",
                step.component.span,
                why=f"Upstream Osiris ships {step.component.value}; here its API is read with the "
                f"generic {instead} (an http connection, a path and a paginator).",
                fix=f"Replace the step with a {instead} step and put the API key in an http "
                "connection.",
                example=example,
            )
            continue
        if spec is None:
            matches = ctx.registry.suggest(step.component.value)
            ctx.diagnostics.error(
                "OML014",
                f"unknown component '{step.component.value}'",
                step.component.span,
                why="Components come from the spec registry." + did_you_mean(matches),
                fix="Use a registered component (`osiris components list`).",
                suggestions=replacements(matches, step.component.span, word=step.component.value),
            )
            continue
        if step.id is not None and ctx.steps.get(step.id.value) is step:
            ctx.specs[step.id.value] = spec
        if step.mode is not None and step.mode.value not in spec.oml_modes:
            allowed = sorted(spec.oml_modes)
            matches = close_matches(step.mode.value, allowed)
            ctx.diagnostics.error(
                "OML015",
                f"mode '{step.mode.value}' is not allowed for {spec.name}",
                step.mode.span,
                why=f"{spec.name} is a {spec.role}; its modes are: {', '.join(allowed)}."
                + did_you_mean(matches),
                fix="Use one of the allowed modes.",
                suggestions=_mode_fix(spec, step.mode, matches or allowed[:1]),
            )


def _mode_fix(spec: ComponentSpec, mode: Name, matches: list[str]) -> tuple[Suggestion, ...]:
    """A mode that names the component's own role in other words (`load` on a writer) is
    safely its usual mode: the component already says what the step does."""
    from osiris.compiler.registry import role_of_word

    if role_of_word(mode.value) == spec.role:
        usual = spec.oml_modes[0]
        return (Suggestion(f"Use '{usual}'", usual, mode.span, safe=True),)
    return replacements(matches, mode.span)


def check_edges(ctx: CheckContext) -> None:
    ids = list(ctx.steps)
    for step in ctx.document.steps:
        if step.id is None or ctx.steps.get(step.id.value) is not step:
            continue
        me = step.id.value
        seen: set[str] = set()
        for ref in step.needs:
            if ref.id in seen:
                ctx.diagnostics.warning(
                    "OML044",
                    f"'{ref.id}' is listed twice in needs",
                    ref.span,
                    why="A step is needed once; the second entry has no effect.",
                    fix="Remove the duplicate.",
                    suggestions=(Suggestion("Remove the duplicate", "", ref.span),),
                )
            seen.add(ref.id)
            _edge(ctx, ids, ref.id, me, ref.span, None)
        for item in step.inputs:
            reference = item.upstream
            if reference is None or reference.step is None:
                ctx.diagnostics.error(
                    "OML043",
                    f"input '{item.name.value}' must reference an upstream step's output",
                    item.value.span,
                    why="An input names the data it reads as ${STEP.df} (or ${steps.STEP.df}).",
                    fix="Write the input as a reference to an earlier step.",
                    example='inputs: {df: "${extract-orders.df}"}',
                )
                continue
            _edge(ctx, ids, reference.step, me, reference.span, item.name.value)
        for reference in find_all(step.config, Reference):
            used = reference.step
            if used is None:
                continue
            if used not in ctx.steps:
                _unknown_step(ctx, ids, used, reference.span)
            elif used not in ctx.upstream(me):
                ctx.diagnostics.error(
                    "OML032",
                    f"step '{me}' uses '{used}' without declaring it",
                    reference.span,
                    why="Data flows only along declared edges (needs or inputs).",
                    fix=f"Add '{used}' to the step's needs.",
                    example=f"needs: [{used}]",
                )


def _edge(
    ctx: CheckContext, ids: list[str], upstream: str, me: str, span: Span, name: str | None
) -> None:
    if upstream not in ctx.steps:
        _unknown_step(ctx, ids, upstream, span)
        ctx.unresolved.add(me)  # its role cannot be judged; don't pile errors on the typo
        return
    if upstream == me:
        ctx.diagnostics.error(
            "OML033",
            f"step '{me}' depends on itself",
            span,
            why="A step cannot read its own output.",
            fix="Remove the reference.",
        )
        return
    ctx.edges.append(Edge(upstream, me, span, name))


def _unknown_step(ctx: CheckContext, ids: list[str], name: str, span: Span) -> None:
    matches = close_matches(name, ids)
    ctx.diagnostics.error(
        "OML032",
        f"unknown step '{name}'",
        span,
        why="needs, inputs and ${STEP.df} must name a step of this pipeline."
        + did_you_mean(matches),
        fix="Use the id of an existing step.",
        suggestions=replacements(matches, span),
    )


def check_cycles(ctx: CheckContext) -> None:
    downstream: dict[str, list[Edge]] = {}
    for edge in ctx.edges:
        downstream.setdefault(edge.upstream, []).append(edge)
    state: dict[str, int] = {}  # 1 visiting, 2 done
    reported: set[frozenset[str]] = set()

    for root in ctx.steps:
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            node, index = stack.pop()
            if index == 0:
                state[node] = 1
                path.append(node)
            edges = downstream.get(node, [])
            if index < len(edges):
                stack.append((node, index + 1))
                edge = edges[index]
                nxt = edge.downstream
                if state.get(nxt) == 1:
                    cycle = [*path[path.index(nxt) :], nxt]
                    key = frozenset(cycle)
                    if key not in reported:
                        reported.add(key)
                        ctx.diagnostics.error(
                            "OML033",
                            "dependency cycle: " + " -> ".join(cycle),
                            edge.span,
                            why="Steps run in dependency order, so a cycle can never start.",
                            fix="Remove one of the references in the cycle.",
                        )
                elif not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                path.pop()


def check_roles(ctx: CheckContext) -> None:
    for step_id, spec in ctx.specs.items():
        if step_id in ctx.unresolved:
            continue
        step = ctx.steps[step_id]
        upstream = ctx.upstream(step_id)
        anchor = step.component.span if step.component else step.span
        if spec.role == "extractor" and upstream:
            ctx.diagnostics.error(
                "OML034",
                f"{spec.name} is an extractor and takes no input, but '{step_id}' reads "
                + ", ".join(f"'{u}'" for u in upstream),
                _first_edge_span(ctx, step_id) or anchor,
                why="Extractors read from an external system, never from other steps.",
                fix="Remove needs/inputs from this step, or use a processor or writer.",
            )
        elif spec.role == "writer" and len(upstream) != 1:
            ctx.diagnostics.error(
                "OML035",
                f"writer '{step_id}' needs exactly one input, it has {len(upstream)}",
                _first_edge_span(ctx, step_id, second=True) or anchor,
                why="A writer loads one upstream table into its target. Unlike upstream "
                "Osiris, a step's place in the list creates no edge: only needs and inputs do.",
                fix="Name exactly one upstream step in needs (or inputs); to combine several, "
                "put a duckdb.processor in between.",
                example=f"needs: [{_example_upstream(ctx, step_id, upstream)}]",
            )
        elif spec.role == "processor" and not upstream:
            ctx.diagnostics.error(
                "OML036",
                f"processor '{step_id}' has no input",
                anchor,
                why="A processor transforms the output of earlier steps.",
                fix="Name the steps it reads in needs.",
                example="needs: [extract-orders]",
            )


def _example_upstream(ctx: CheckContext, step_id: str, upstream: list[str]) -> str:
    """A step the writer could read: one it already names, else the step before it."""
    if upstream:
        return upstream[0]
    ids = list(ctx.steps)
    before = ids[: ids.index(step_id)] if step_id in ids else []
    others = before[::-1] + [i for i in ids if i != step_id and i not in before]
    readable = [i for i in others if i in ctx.specs and ctx.specs[i].role != "writer"]
    return (readable or others or ["extract-orders"])[0]


def _first_edge_span(ctx: CheckContext, step_id: str, second: bool = False) -> Span | None:
    spans = [e.span for e in ctx.edges if e.downstream == step_id]
    if second and len(spans) > 1:
        return spans[1]
    return spans[0] if spans else None


def check_params(ctx: CheckContext) -> None:
    declared: dict[str, Name] = {}
    for param in ctx.document.params:
        declared.setdefault(param.name.value, param.name)
        if param.type is None or param.default is None:
            continue
        value = param.default.to_python()
        if not conforms(value, param.type.value):
            ctx.diagnostics.error(
                "OML030",
                f"default of param '{param.name.value}' is {type(value).__name__}, "
                f"but the param is declared {param.type.value}",
                param.default.span,
                why="A param's default must have its declared type.",
                fix=f"Change the default to a {param.type.value}, or the type.",
            )
        elif param.enum is not None and value not in param.enum:
            ctx.diagnostics.error(
                "OML030",
                f"default of param '{param.name.value}' is not one of its enum values",
                param.default.span,
                why="Allowed: " + ", ".join(map(str, param.enum)),
                fix="Use one of the allowed values as the default.",
            )
    for profile in ctx.document.profiles:
        for entry in profile.params:
            name = str(entry.key.value)
            if name not in declared:
                _unknown_param(
                    ctx, name, entry.key.span, declared, where=f"profile '{profile.name.value}'"
                )
    for step in ctx.document.steps:
        refs = [*find_all(step.config, Reference), *find_all(step.partition, Reference)]
        for ref in refs:
            if ref.path[0] != "params":
                continue
            if ref.param is None:
                ctx.diagnostics.error(
                    "OML029",
                    f"'{ref.source}' is not a param reference",
                    ref.span,
                    why="A param is referenced as ${params.NAME}.",
                    fix="Name one param.",
                )
                continue
            ctx.param_uses.setdefault(ref.param, []).append(ref.span)
            if step.id is not None:
                ctx.param_steps.add(step.id.value)
            if ref.param not in declared:
                _unknown_param(ctx, ref.param, ref.span, declared, where=f"step '{step.key}'")
    for name, node in declared.items():
        if name not in ctx.param_uses:
            ctx.diagnostics.warning(
                "OML031",
                f"param '{name}' is never used",
                node.span,
                why="No step references ${params." + name + "}.",
                fix="Remove the param, or use it.",
            )


def _unknown_param(
    ctx: CheckContext, name: str, span: Span, declared: dict[str, Name], where: str
) -> None:
    matches = close_matches(name, declared)
    ctx.diagnostics.error(
        "OML029",
        f"unknown param '{name}' in {where}",
        span,
        why="Every param used must be declared under params:." + did_you_mean(matches),
        fix="Declare it, or correct the name.",
        example=f'params:\n  {name}: {{type: string, default: "..."}}',
    )


def check_connections(ctx: CheckContext) -> None:
    for step_id, spec in ctx.specs.items():
        config = ctx.steps[step_id].config
        entry = config.get("connection") if config else None
        if entry is None or spec.connection_family is None:
            continue
        node = entry.value
        if not isinstance(node, YScalar) or not isinstance(node.value, str):
            continue  # the schema reports the type
        text = node.value
        if not text.startswith("@"):
            fixed = "@" + text if re.fullmatch(r"[a-z][a-z0-9_]*(\.[\w-]+)?", text) else ""
            ctx.diagnostics.error(
                "OML025",
                f'connection must be a reference like "@{spec.connection_family}.alias", '
                f"not {text!r}",
                node.span,
                why="Connections are never written inline: the step names an entry of "
                "osiris_connections.yaml, which holds the host and secrets.",
                fix="Write the reference in quotes (YAML reads a bare @ as reserved).",
                example=f'connection: "@{spec.connection_family}.main"',
                suggestions=(Suggestion(f'Change to "{fixed}"', f'"{fixed}"', node.span),)
                if fixed
                else (),
            )
            continue
        try:
            ref = parse_connection_ref(text)
        except ExpressionError as err:
            ctx.diagnostics.error(
                "OML025",
                err.message,
                inner_span(ctx.source, node, err.offset, err.offset + 1),
                why="A connection reference is @family.alias (or @family for the family's "
                "default), lowercase family, alias of letters, digits, '_' and '-'.",
                fix="Correct the reference.",
                example=f'connection: "@{spec.connection_family}.main"',
            )
            continue
        if ref.family != spec.connection_family:
            fixed = f'"@{spec.connection_family}' + (f'.{ref.alias}"' if ref.alias else '"')
            ctx.diagnostics.error(
                "OML026",
                f"{spec.name} needs a {spec.connection_family} connection, not @{ref.family}",
                node.span,
                why=f"The connection's family decides which driver reaches it; {spec.name} "
                f"speaks {spec.connection_family}.",
                fix=f"Reference a connection of family {spec.connection_family}.",
                suggestions=(Suggestion(f"Change to {fixed}", fixed, node.span),),
            )
            continue
        if ctx.connections is not None and ctx.connections.lookup(ref.family, ref.alias) is None:
            _unknown_connection(ctx, ref.family, ref.alias, node)


def _unknown_connection(ctx: CheckContext, family: str, alias: str | None, node: YScalar) -> None:
    assert ctx.connections is not None
    known = sorted(ctx.connections.aliases.get(family, {}))
    matches = close_matches(alias or "", known) if alias else []
    file = Path(ctx.connections.file).name
    problem = ctx.connections.default_problem(family) if alias is None else None
    fix = "Add the connection to the connections file, or use an existing alias" + (
        "" if alias else " (mark one `default: true`)"
    )
    if alias is not None:
        summary = f"{file} has no {family} connection '{alias}'"
    elif problem is not None and problem.marked:
        summary = f"{file} marks several {family} connections as default"
        fix = "Keep `default: true` on one alias, or name the alias in the reference"
    else:
        summary = f"{file} has no default {family} connection"
    if not known:
        why = f"The connections file defines no {family} connections."
    elif problem is not None and problem.marked:
        why = _sentence(str(problem)) + "."
    else:
        why = f"Known {family} aliases: {', '.join(known)}."
    ctx.diagnostics.error(
        "OML027",
        summary,
        node.span,
        why=why + did_you_mean(matches),
        fix=fix + ".",
        suggestions=tuple(
            Suggestion(f"Change to @{family}.{m}", f'"@{family}.{m}"', node.span) for m in matches
        ),
    )


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


class _ValidationValue(NodeVisitor):
    """Config as Python for schema validation; a whole-scalar ${params.x} takes the param's type.

    The JSON paths of values only known with the params (interpolated text, params without a
    default, invalid templates) are collected in `dynamic`: the schema cannot judge them yet.
    """

    def __init__(self, document: Document) -> None:
        self.document = document
        self.path: list[Any] = []
        self.dynamic: set[tuple[Any, ...]] = set()

    def visit_YMap(self, node: YMap) -> dict[Any, Any]:
        return dict(self.visit_YEntry(entry) for entry in node.entries)

    def visit_YEntry(self, node: YEntry) -> tuple[Any, Any]:
        self.path.append(node.key.value)
        value = self.visit(node.value)
        self.path.pop()
        return node.key.value, value

    def visit_YSeq(self, node: YSeq) -> list[Any]:
        out = []
        for i, item in enumerate(node.items):
            self.path.append(i)
            out.append(self.visit(item))
            self.path.pop()
        return out

    def visit_YScalar(self, node: YScalar) -> Any:
        template = node.template
        if template is None:
            return node.value
        whole = template.whole_reference
        param = self.document.param(whole.param) if whole and whole.param else None
        if param is not None and param.default is not None:
            return param.default.to_python()
        self.dynamic.add(tuple(self.path))
        if param is not None and param.type is not None:
            return PLACEHOLDERS[param.type.value]
        return node.value


def check_configs(ctx: CheckContext) -> None:
    for step_id, spec in ctx.specs.items():
        step = ctx.steps[step_id]
        config_node = step.config or YMap((), step.span)
        values = _ValidationValue(ctx.document)
        config = values.visit_YMap(config_node)
        skip = values.dynamic
        if spec.connection_family is not None and isinstance(config.get("connection"), str):
            skip.add(("connection",))  # check_connections explains a bad reference better
        failed = check_config(
            spec.name,
            spec.config_schema,
            ctx.registry.config_validator(spec.name),
            config_node,
            config,
            skip,
            ctx.diagnostics,
        )
        check_upstream(spec.name, spec.config_schema, config_node, ctx.diagnostics)
        config = normalise(config, spec.config_schema)
        check_constraints(
            spec.name, spec.constraints, config_node, config, step.span, ctx.diagnostics, failed
        )
        _check_secrets(ctx, spec, config_node)
        _check_overrides(ctx, spec, config_node, config)
        if spec.name == "filesystem.csv_extractor":
            check_dtype(spec.name, config_node, ctx.diagnostics)


def _check_secrets(ctx: CheckContext, spec: ComponentSpec, config_node: YMap) -> None:
    family = spec.connection_family
    schema = ctx.registry.connection_schema(family) if family else None
    for pointer in spec.secrets:
        path = tuple(p for p in pointer.split("/")[1:])
        node, found = node_at(config_node, path)
        if not found or (isinstance(node, YScalar) and node.value in (None, "")):
            continue
        ctx.diagnostics.error(
            "OML024",
            f"secret '{'.'.join(path)}' is written inline in the pipeline",
            node.span,
            why="Pipelines are shared, committed and compiled into manifests; secrets must never "
            "be in them.",
            fix="Put the secret in osiris_connections.yaml as ${ENV_VAR} and reference the "
            "connection from the step.",
            example=f"# osiris_connections.yaml\nconnections:\n  {family or 'family'}:"
            f"\n    main:\n      " + "\n      ".join(_connection_secret(schema, str(path[-1]))),
            suggestions=(
                Suggestion(
                    "Remove the inline secret", "", _entry_span(config_node, path) or node.span
                ),
            ),
            masked=(node.span,),
        )


def _connection_secret(schema: dict[str, Any] | None, name: str) -> list[str]:
    """The connection field a step's inline secret belongs in, as lines of an alias in the
    connections file: the field of the same name, or one nested in an object field
    (auth_token -> auth: type: bearer, token: …, with the kind of object that requires it)."""
    variable = f"${{{name.upper()}}}"  # block style: a plain ${VAR} would break a flow {…}
    properties = (schema or {}).get("properties") or {}
    head, _, leaf = name.partition("_")
    holder = properties.get(head) if name not in properties else None
    if not isinstance(holder, dict) or leaf not in (holder.get("properties") or {}):
        return [f"{name}: {variable}"]
    fields = [f"{leaf}: {variable}"]
    for rule in holder.get("allOf") or ():
        then, when = rule.get("then") or {}, (rule.get("if") or {}).get("properties") or {}
        if leaf in then.get("required", ()):
            fields[:0] = [f"{k}: {v['const']}" for k, v in when.items() if "const" in v]
            break
    return [f"{head}:", *(f"  {line}" for line in fields)]


def _entry_span(config_node: YMap, path: tuple[Any, ...]) -> Span | None:
    parent, found = node_at(config_node, path[:-1])
    if found and isinstance(parent, YMap):
        entry = parent.get(path[-1])
        return entry.span if entry else None
    return None


def _check_overrides(
    ctx: CheckContext, spec: ComponentSpec, config_node: YMap, config: dict[str, Any]
) -> None:
    if "connection" not in config:
        return
    family = spec.connection_family
    schema = ctx.registry.connection_schema(family) if family else None
    defined = frozenset((schema or {}).get("properties") or ()) - {DEFAULT_KEY}
    known = spec.config_schema.get("properties") or {}
    pinned = set(pinned_overrides(config, defined))
    for name in config:
        override = "forbidden" if name in pinned else spec.connection_fields.get(name, "allowed")
        if name not in known or override == "allowed":
            continue  # an unknown field is OML017
        span = key_span(config_node, (name,)) or config_node.span
        remove = (Suggestion(f"Remove '{name}'", "", _entry_span(config_node, (name,)) or span),)
        if override == "forbidden":
            ctx.diagnostics.error(
                "OML022",
                f"'{name}' must not override the connection",
                span,
                why=f"The step uses connection {config['connection']}: where it connects, as "
                "whom and with which TLS settings is the connection's to say. The connections "
                f"file is the trust boundary: a step that could set '{name}' could send the "
                "connection's credentials to another server.",
                fix="Remove it from the step: move it into the connection alias in "
                "osiris_connections.yaml, or define a new alias.",
                example=f"# osiris_connections.yaml\nconnections:\n  {family or 'family'}:\n"
                f"    other:\n      {name}: ...",
                suggestions=remove,
            )
        else:
            ctx.diagnostics.warning(
                "OML023",
                f"'{name}' overrides the connection's value",
                span,
                why=f"'{name}' comes from the connection; setting it in the step overrides "
                "the connection's value.",
                fix=f"Remove '{name}' from the step, or change it in the connections file.",
                suggestions=remove,
            )


def check_processor_sql(ctx: CheckContext) -> None:
    for step_id, spec in ctx.specs.items():
        if spec.name != "duckdb.processor":
            continue
        config = ctx.steps[step_id].config
        entry = config.get("query") if config else None
        if (
            entry is None
            or not isinstance(entry.value, YScalar)
            or not isinstance(entry.value.value, str)
        ):
            continue
        scalar = entry.value
        if _step_references_in_sql(ctx, step_id, scalar):
            continue
        query = sql_with_param_defaults(ctx.document, scalar)
        if query is None:
            continue
        from osiris.compiler.check_sql import query_tables

        result = query_tables(query)
        if result.error is not None:
            offset = result.error_offset if result.error_offset is not None else 0
            same_text = query == scalar.value
            ctx.diagnostics.error(
                "OML038",
                f"SQL error in the query of '{step_id}': {result.error}",
                inner_span(ctx.source, scalar, offset, offset + 1) if same_text else scalar.span,
                why="duckdb.processor runs this query in DuckDB; DuckDB cannot parse it.",
                fix="Correct the SQL.",
            )
            continue
        upstream = ctx.upstream(step_id)
        available = set(upstream) | {f"df_{u}" for u in upstream}
        if len(upstream) <= 1:  # with none, OML036 says what is wrong
            available |= {"input", "input_df"} if upstream else {"input_df"}
        for table in result.tables:
            if table in available or table.lower() in {a.lower() for a in available}:
                continue
            found = re.search(
                rf"(?<![\w$]){re.escape(table)}(?![\w$])", scalar.value, flags=re.IGNORECASE
            )
            span = (
                inner_span(ctx.source, scalar, found.start(), found.end()) if found else scalar.span
            )
            if table.lower() in ("input", "input_df") and len(upstream) > 1:
                _input_alias_with_inputs(ctx, step_id, table, upstream, span)
                continue
            matches = close_matches(table, sorted(available))
            declared_elsewhere = table in ctx.steps
            ctx.diagnostics.error(
                "OML037",
                f"the query of '{step_id}' reads table '{table}', which none of its inputs provide",
                span,
                why=(
                    f"'{table}' is a step, but '{step_id}' does not list it in needs."
                    if declared_elsewhere
                    else "A processor sees only its inputs, as tables named by step id"
                    + (" (or 'input')" if len(upstream) == 1 else "")
                    + ". Available: "
                    + (", ".join(sorted(upstream)) or "none")
                    + "."
                )
                + did_you_mean(matches),
                fix=f"Add '{table}' to needs." if declared_elsewhere else "Read one of the inputs.",
                suggestions=_add_needs(ctx, ctx.steps[step_id], table)
                if declared_elsewhere
                else replacements([m for m in matches if re.fullmatch(r"[A-Za-z_]\w*", m)], span),
            )


def _input_alias_with_inputs(
    ctx: CheckContext, step_id: str, table: str, upstream: list[str], span: Span
) -> None:
    """`input` / `input_df` read by a processor with several inputs: which one is meant?"""
    tables = ", ".join(upstream)
    ctx.diagnostics.error(
        "OML037",
        f"the query of '{step_id}' reads '{table}', but '{step_id}' has {len(upstream)} inputs: "
        f"{tables}",
        span,
        why=f"'{table}' names a processor's only input; with several inputs it is not defined, "
        "so the query would fail at run time. Each input is a table named by its step id (or "
        "df_<id>).",
        fix=f"Read the inputs by name: {tables}.",
        suggestions=replacements([u for u in upstream if re.fullmatch(r"[A-Za-z_]\w*", u)], span),
    )


def _step_references_in_sql(ctx: CheckContext, step_id: str, scalar: YScalar) -> bool:
    """A query that writes ${STEP.df} where a table name belongs (reported as OML037)."""
    found = False
    for reference in find_all(scalar, Reference):
        if reference.step is None or reference.step not in ctx.steps:
            continue  # params are fine; unknown names are reported as OML032
        found = True
        table = '"' + reference.step + '"'
        span = reference.span
        bare = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", reference.step) is not None
        # the name as the YAML scalar must spell it: a bare identifier needs no SQL quotes;
        # inside a double-quoted scalar the SQL quotes are escaped
        written = reference.step if bare else '\\"' + reference.step + '\\"'
        editable = bare or scalar.style == '"'
        ctx.diagnostics.error(
            "OML037",
            f"the query of '{step_id}' reads '{reference.source}'; write its table name {table}",
            span,
            why="A duckdb.processor sees each input as a table named by the upstream step id "
            "(or 'input' when there is one); ${STEP.df} is for a step's inputs: mapping.",
            fix=f"Replace {reference.source} with {table}.",
            # safe: the reference names the step whose data the query wants, exactly
            suggestions=(
                Suggestion(
                    f"Replace with {reference.step if bare else table}", written, span, safe=True
                ),
            )
            if editable
            else (Suggestion(f"Replace with {table}", table, span),),
        )
    return found


def _reaches(ctx: CheckContext, start: str, target: str) -> bool:
    """Whether target is upstream of start (or start itself), following declared edges."""
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == target:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(e.upstream for e in ctx.edges_into.get(node, ()))
    return False


def _add_needs(ctx: CheckContext, step: Step, upstream: str) -> tuple[Suggestion, ...]:
    """Add upstream to a step's needs: to its list (flow or block), else as a `needs:` line
    before `config:`. Safe: the step's query names that step as a table. None when the edge
    would close a cycle or the layout is not one we can edit without guessing."""
    me = step.id.value if step.id else None
    if me is None or not re.fullmatch(r"[a-z0-9_][a-z0-9_-]*", upstream, re.IGNORECASE):
        return ()
    if _reaches(ctx, upstream, me):
        return ()
    source, title = ctx.source, f"Add '{upstream}' to needs"
    text = source.text
    if step.needs:
        last = step.needs[-1].span
        start = source.offset_of(last.start.line - 1, last.start.column - 1)
        end = source.offset_of(last.end.line - 1, last.end.column - 1)
        if text[end:].lstrip(" ").startswith(("]", ",")):
            return (Suggestion(title, f", {upstream}", source.span(end, end), safe=True),)
        prefix = text[source.offset_of(last.start.line - 1, 0) : start]
        if prefix.strip() == "-":
            return (Suggestion(title, f"\n{prefix}{upstream}", source.span(end, end), safe=True),)
        return ()
    if step.config is None:
        return ()
    value = step.config.span
    value_at = source.offset_of(value.start.line - 1, value.start.column - 1)
    key_at = text.rfind("config", 0, value_at)
    line_at = text.rfind("\n", 0, key_at) + 1
    indent = text[line_at:key_at]
    between = text[key_at + len("config") : value_at]
    if key_at < 0 or indent.strip(" ") not in ("", "-") or between.strip() != ":":
        return ()
    pad = " " * len(indent)
    at = source.span(key_at, key_at)
    return (Suggestion(title, f"needs: [{upstream}]\n{pad}", at, safe=True),)


def sql_with_param_defaults(document: Document, query: YScalar) -> str | None:
    """A processor query with ${...} replaced by param defaults ("0" when unknown), for parsing;
    None when its template is invalid."""
    template = query.template
    if template is None:
        return query.value
    if not template.valid:
        return None
    out = []
    for part in template.parts:
        if isinstance(part, Reference):
            param = document.param(part.param) if part.param else None
            default = param.default.to_python() if param and param.default else None
            out.append(str(default) if default is not None else "0")
        else:
            out.append(part.text)
    return "".join(out)


PASSES: tuple[Callable[[CheckContext], None], ...] = (
    check_registry,
    check_step_ids,
    check_components,
    check_edges,
    check_cycles,
    check_roles,
    check_params,
    check_sql_params,
    check_connections,
    check_configs,
    check_processor_sql,
    check_schema,
    check_partitions,
    check_partition_columns,
)


def check(
    document: Document,
    registry: Registry,
    diagnostics: DiagnosticList,
    connections: ConnectionsIndex | None = None,
    catalogs: Catalogs | None = None,
) -> CheckContext:
    """Run every semantic pass over a parsed document; with catalogs, also against the
    discovered schemas of its connections."""
    ctx = CheckContext(document, registry, diagnostics, connections, catalogs=catalogs)
    for run in PASSES:
        run(ctx)
    return ctx
