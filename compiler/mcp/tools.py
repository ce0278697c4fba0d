"""What each MCP tool does, as plain functions of the project and their arguments (no MCP here).

Each returns JSON-able data or raises ToolFailure; the server only registers them.
"""

from __future__ import annotations

import json
from functools import partial
from importlib import resources
from typing import Any

from osiris.compiler.mcp.project import Project, ToolFailure, display, pipeline_target
from osiris.compiler.mcp.secrets import SecretGuard
from osiris.oml.diagnostics import Diagnostic, Severity
from osiris.runtime.contract.config_file import ConfigFileError
from osiris.runtime.contract.connections import ConnectionRef

MAX_OML_CHARS = 1_000_000  # a pipeline is a few KB; anything this big is a mistake or an attack
MAX_DIAGNOSTICS = 200
MAX_SAMPLES = 100
PING_TIMEOUT = 5.0  # seconds per alias; aliases are checked concurrently
PIPELINE_NAME = "pipeline.oml"  # how diagnostics name the text an assistant passed


# -- connections ------------------------------------------------------------------------------


def raw_aliases(project: Project) -> dict[str, dict[str, dict[str, Any]]]:
    """family -> alias -> fields as written (${VAR} unexpanded); {} without a connections file."""
    index, _ = _connections(project)
    if index is None:
        return {}
    return {
        f: {a: dict(e.fields) for a, e in entries.items()} for f, entries in index.aliases.items()
    }


def guard(project: Project) -> SecretGuard:
    try:
        return SecretGuard.from_aliases(raw_aliases(project), project.environ)
    except ToolFailure:
        return SecretGuard(())


def connections_list(project: Project) -> dict[str, Any]:
    """`osiris connections list` as data: aliases by family, non-secret fields, which variables
    they use and whether those are set (environment or the project's .env), never a secret."""
    from osiris.compiler.connections_cmd import describe_connections

    index, problems = _connections(project)
    path = project.connections_path
    families: list[dict[str, Any]] = []
    unreadable: list[str] = []
    if index is not None:
        families, unreadable = describe_connections(
            index, project.root, secrets_file=None, environ=project.environ
        )
    return {
        "project": str(project.root),
        "connections_file": str(path) if path is not None else None,
        "families": families,
        "problems": [_diagnostic(d) for d in problems] + [{"summary": u} for u in unreadable],
    }


def connections_doctor(project: Project, connection: str | None = None) -> dict[str, Any]:
    """`osiris connections doctor` as data: connect to each alias (or the one named) and say how
    it answered, with the runtime's classified reasons."""
    from osiris.compiler.connections_cmd import report_to_json
    from osiris.runtime.catalog.doctor import doctor

    index, _ = _connections(project)
    path = project.connections_path
    if index is None or path is None:
        raise ToolFailure("no connections file in the project (osiris init writes one)")
    known = [f"@{f}.{a}" for f in index.families() for a in index.aliases[f]]
    refs = known
    if connection:
        ref = ConnectionRef.parse(connection if connection.startswith("@") else f"@{connection}")
        if ref is None:
            raise ToolFailure(f"{connection!r} is not a connection reference such as @mysql.shop")
        if ref.alias is not None and str(ref) not in known:
            raise ToolFailure(
                f"no connection {ref} in the connections file (known: {', '.join(known) or 'none'})"
            )
        refs = [str(ref)]
    reports = doctor(
        refs, connections=path, root=project.root, environ=project.environ, timeout=PING_TIMEOUT
    )
    return {
        "ok": all(r.status != "failed" for r in reports),
        "connections": [report_to_json(r) for r in reports],
    }


def _connections(project: Project) -> tuple[Any, list[Diagnostic]]:
    from osiris.compiler.frontend import load_connections

    try:
        return load_connections(project.connections_path)
    except ConfigFileError as err:
        raise ToolFailure(str(err)) from None


# -- components and schema --------------------------------------------------------------------


def components_list(mode: str | None = None) -> dict[str, Any]:
    from osiris.compiler.components_cmd import _summary
    from osiris.compiler.modes import MODE_NAMES, spec_mode_of
    from osiris.compiler.registry import load_registry

    if mode and mode not in MODE_NAMES:
        raise ToolFailure(f"mode {mode!r} is not one of {', '.join(MODE_NAMES)}")
    wanted = spec_mode_of(mode or "")
    specs = [s for s in load_registry() if wanted is None or wanted in s.modes]
    return {"components": [_compact(_summary(s)) for s in specs]}


def _compact(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if v not in (None, "", [], {})}


def component_spec(name: str) -> dict[str, Any]:
    from osiris.compiler.registry import load_registry

    registry = load_registry()
    spec = registry.get(name)
    if spec is None:
        matches = registry.suggest(name)
        hint = f"; did you mean {' or '.join(matches)}?" if matches else ""
        raise ToolFailure(f"unknown component {name!r}{hint} (components_list shows them all)")
    return {"name": spec.name, "spec": spec.document}


def oml_schema() -> dict[str, Any]:
    text = resources.files("osiris.specs").joinpath("oml.schema.json").read_text("utf-8")
    return dict(json.loads(text))


def oml_schema_get(project: Project) -> dict[str, Any]:
    """The OML schema and the compact context `osiris generate` gives a model (cached in the
    project's .osiris/prompts/ like there)."""
    from osiris.compiler.llm.context import load_context
    from osiris.compiler.registry import load_registry

    context = load_context(load_registry(), project.root)
    return {"schema": oml_schema(), "context": context.data, "context_tokens": context.tokens}


# -- validate, compile, format, save ----------------------------------------------------------


def _text(oml: str) -> str:
    if len(oml) > MAX_OML_CHARS:
        raise ToolFailure(
            f"the pipeline is {len(oml):,} characters; the limit is {MAX_OML_CHARS:,} "
            "(an OML pipeline is a few kilobytes)"
        )
    return oml


def _check(project: Project) -> Any:
    """check(text) against the project's connections and the schemas in its discovery cache
    (as `omlc check --schema cached`: never connecting), and the connections file's own
    problems."""
    from osiris.compiler.discovery.lookup import catalog_lookup
    from osiris.compiler.frontend import check_text

    index, problems = _connections(project)
    catalogs = catalog_lookup(
        "cached",
        project_root=project.root,
        connections_path=project.connections_path,
        environ=project.environ,
    )
    return partial(check_text, file=PIPELINE_NAME, connections=index, catalogs=catalogs), problems


def _envelope(diagnostics: list[Diagnostic] | tuple[Diagnostic, ...]) -> dict[str, Any]:
    from osiris.oml.render import render_json

    out = render_json(diagnostics)
    if len(out["diagnostics"]) > MAX_DIAGNOSTICS:
        out["diagnostics_truncated"] = len(out["diagnostics"]) - MAX_DIAGNOSTICS
        out["diagnostics"] = out["diagnostics"][:MAX_DIAGNOSTICS]
    return out


def _diagnostic(d: Diagnostic) -> dict[str, Any]:
    from osiris.oml.render import diagnostic_to_dict

    return diagnostic_to_dict(d)


def oml_validate(project: Project, oml: str) -> dict[str, Any]:
    """The checker's envelope for oml, plus the safe fixes it could apply and the text after them."""
    from osiris.compiler.fixes import fix_text

    text = _text(oml)
    check, problems = _check(project)
    first = check(text)
    outcome = fix_text(text, lambda t: first if t == text else check(t))
    out = _envelope([*problems, *first.diagnostics])
    out["safe_fixes"] = [
        f.to_dict() | {"before": f.before, "after": f.after} for f in outcome.applied
    ]
    if outcome.changed:
        out["fixed_oml"] = outcome.text
        out["fixed_valid"] = outcome.result.ok
        out["fixed_error_count"] = sum(
            1 for d in outcome.result.diagnostics if d.severity is Severity.ERROR
        )
    return out


def oml_compile(
    project: Project, oml: str, params: dict[str, Any] | None = None, profile: str | None = None
) -> dict[str, Any]:
    """Compile in memory: the diagnostics, and when it compiles the manifest summary and fingerprints."""
    from osiris.compiler.compile import compile_checked

    text = _text(oml)
    check, problems = _check(project)
    items = [f"{name}={_param_text(value)}" for name, value in sorted((params or {}).items())]
    result = compile_checked(check(text), params=items, profile=profile, environ=project.environ)
    diagnostics = [*problems, *result.diagnostics]
    compiled = result.emitted is not None and not any(
        d.severity is Severity.ERROR for d in problems
    )
    out = _envelope(diagnostics) | {"compiled": compiled, "exit_code": int(result.exit_code)}
    if compiled and result.emitted is not None:
        manifest = result.emitted.manifest
        out["manifest"] = {
            "pipeline": manifest.get("pipeline"),
            "fingerprints": manifest.get("fingerprints"),
            "params": manifest.get("params"),
            "steps": [
                {
                    k: step.get(k)
                    for k in ("id", "component", "mode", "driver", "connection", "needs")
                }
                for step in manifest.get("steps", [])
            ],
        }
        out["files"] = sorted(result.emitted.files)
    return out


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ToolFailure(f"param value {value!r} must be a string, number or boolean")


def oml_format(oml: str) -> dict[str, Any]:
    from osiris.oml.format import format_text

    text = _text(oml)
    formatted, diagnostics = format_text(text, PIPELINE_NAME)
    out = _envelope(diagnostics.sorted())
    if formatted is None:
        return out | {"formatted": False}
    return out | {"formatted": True, "changed": formatted != text, "oml": formatted}


def oml_save(project: Project, path: str, oml: str, draft: bool = False) -> dict[str, Any]:
    """Write oml to path inside the project, atomically; an invalid pipeline only when draft."""
    from osiris.compiler.fixes import write_atomically

    text = _text(oml)
    target = pipeline_target(project, path)
    check, problems = _check(project)
    checked = check(text)
    envelope = _envelope([*problems, *checked.diagnostics])
    if not checked.ok and not draft:
        first = next(d for d in checked.diagnostics if d.severity is Severity.ERROR)
        where = f" (line {first.span.start.line})" if first.span is not None else ""
        raise ToolFailure(
            f"not saved: the pipeline has {envelope['error_count']} error(s), the first "
            f"{first.code}{where}: {first.summary}. Fix them (oml_validate shows all), or pass "
            "draft: true to save it as a draft"
        )
    existed = target.exists()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, text)
    except OSError as err:
        raise ToolFailure(f"cannot write {path}: {err.strerror or type(err).__name__}") from None
    return envelope | {
        "saved": True,
        "path": display(project, target),
        "draft": not checked.ok,
        "replaced": existed,
        "bytes": len(text.encode("utf-8")),
    }


def discovery_request(
    project: Project,
    connection: str,
    tables: list[str] | None = None,
    samples: int = 0,
    refresh: bool = False,
) -> dict[str, Any]:
    if not 0 <= samples <= MAX_SAMPLES:
        raise ToolFailure(f"samples must be between 0 and {MAX_SAMPLES}")
    from osiris.compiler.discovery.service import DiscoveryError, discover, result_fields

    try:
        result = discover(
            connection,
            project_root=project.root,
            connections_path=project.connections_path,
            environ=project.environ,
            tables=tables or None,
            samples=samples,
            refresh=refresh,
        )
    except DiscoveryError as err:
        raise ToolFailure(str(err)) from None
    return result_fields(result)  # samples masked


def pipeline_guide(request: str = "") -> str:
    """The 'new pipeline' prompt: how to author a pipeline with these tools."""
    ask = f"\n\nThe pipeline to write: {request.strip()}" if request.strip() else ""
    return (
        'You are writing an Osiris OML pipeline (YAML, oml_version "0.1.0").\n'
        "1. Call connections_list to see the connection aliases (@family.alias) you may use; "
        "never ask for or write passwords.\n"
        "2. Call components_list, then component_spec for each component you pick, to learn its "
        "modes (read/write/transform) and config fields.\n"
        "3. Call discovery_request on a connection to see its tables and columns before writing "
        "queries.\n"
        "4. Write the pipeline: top-level oml_version, name, steps; each step has id, component, "
        'mode, config (with connection: "@family.alias" quoted), and needs/inputs for the '
        "steps it reads from.\n"
        "5. Call oml_validate and fix every error it reports (it lists the safe fixes it could "
        "apply and returns fixed_oml); repeat until valid.\n"
        "6. Call oml_compile to confirm it compiles, then oml_format, then oml_save with a path "
        "such as pipelines/<name>.oml. Save an invalid pipeline only as draft: true." + ask
    )
