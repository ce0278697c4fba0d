"""The MCP server: registers the tools, resources and prompt over the official SDK (MCPServer, stdio)."""

# No `from __future__ import annotations`: the SDK reads these signatures to build input schemas.

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from osiris.compiler.mcp import tools
from osiris.compiler.mcp.project import Project, ToolFailure
from osiris.runtime.contract.version import toolchain_version

T = TypeVar("T")

INSTRUCTIONS = (
    "Osiris compiles OML pipelines (YAML) into run manifests. Read connections_list and "
    "components_list, look at tables with discovery_request, write the pipeline, check it with "
    "oml_validate until it is valid, then oml_compile and oml_save. The prompt 'new_pipeline' "
    "walks through it."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
NETWORK = ToolAnnotations(read_only_hint=True, open_world_hint=True)

Oml = Annotated[str, Field(description="the OML pipeline text (YAML)")]


def guarded(project: Project, call: Callable[[], T]) -> T:
    """Run a tool: its result with every secret masked, or an MCP tool error with a clear message
    (never the server's own traceback, never a secret)."""
    guard = tools.guard(project)
    try:
        result = call()
    except ToolFailure as err:
        raise ToolError(guard.text(str(err))) from None
    except Exception as err:  # a bug or an unexpected library error: say what, keep serving
        first = (str(err).strip().splitlines() or [""])[0]
        raise ToolError(guard.text(f"internal error: {type(err).__name__}: {first}")) from None
    masked: T = guard.data(result)
    return masked


def build_server(project: Project) -> MCPServer:
    """An MCPServer for project with every tool, resource and prompt registered."""
    server: MCPServer = MCPServer(
        "osiris",
        title="Osiris",
        instructions=INSTRUCTIONS,
        version=toolchain_version(),
        log_level="WARNING",
    )

    @server.tool(annotations=READ_ONLY)
    def connections_list() -> dict[str, Any]:
        """The connection aliases of the project by family: non-secret fields, the environment
        variables they use and whether each is set. Secret values are never shown."""
        return guarded(project, lambda: tools.connections_list(project))

    @server.tool(annotations=NETWORK)
    def connections_doctor(
        connection: Annotated[
            str | None, Field(description="one alias such as @mysql.shop; default: all")
        ] = None,
    ) -> dict[str, Any]:
        """Connect to each connection (or one) and say whether it answers, and why not."""
        return guarded(project, lambda: tools.connections_doctor(project, connection))

    @server.tool(annotations=READ_ONLY)
    def components_list(
        mode: Annotated[
            str | None,
            Field(description="only components with this mode: read, write, transform, ..."),
        ] = None,
    ) -> dict[str, Any]:
        """The component registry, compact: name, title, modes, connection family."""
        return guarded(project, lambda: tools.components_list(mode))

    @server.tool(annotations=READ_ONLY)
    def component_spec(
        name: Annotated[str, Field(description="component name, e.g. mysql.extractor")],
    ) -> dict[str, Any]:
        """One component's spec: config schema, modes, examples."""
        return guarded(project, lambda: tools.component_spec(name))

    @server.tool(annotations=NETWORK)
    def discovery_request(
        connection: Annotated[str, Field(description="@family.alias to discover")],
        tables: Annotated[list[str] | None, Field(description="only these tables")] = None,
        samples: Annotated[int, Field(description="sample rows per table (masked)")] = 0,
        refresh: Annotated[bool, Field(description="ignore the cache")] = False,
    ) -> dict[str, Any]:
        """Tables, columns, keys and row estimates of a connection, from the discovery cache
        (refreshed when the catalog changed); sample values are always masked."""
        return guarded(
            project,
            lambda: tools.discovery_request(project, connection, tables, samples, refresh),
        )

    @server.tool(annotations=READ_ONLY)
    def oml_schema_get() -> dict[str, Any]:
        """The OML JSON schema and the compact authoring context."""
        return guarded(project, lambda: tools.oml_schema_get(project))

    @server.tool(annotations=READ_ONLY)
    def oml_validate(oml: Oml) -> dict[str, Any]:
        """Check a pipeline: `valid`, counts, diagnostics with line/column ranges and fixes, the
        safe fixes that could be applied and the text after them (fixed_oml)."""
        return guarded(project, lambda: tools.oml_validate(project, oml))

    @server.tool(annotations=READ_ONLY)
    def oml_compile(
        oml: Oml,
        params: Annotated[
            dict[str, str | int | float | bool] | None, Field(description="param values")
        ] = None,
        profile: Annotated[str | None, Field(description="apply profiles.<name>.params")] = None,
    ) -> dict[str, Any]:
        """Compile a pipeline in memory (nothing written): diagnostics, and when it compiles the
        manifest summary (steps, drivers) and fingerprints."""
        return guarded(project, lambda: tools.oml_compile(project, oml, params, profile))

    @server.tool(annotations=READ_ONLY)
    def oml_format(oml: Oml) -> dict[str, Any]:
        """Format a pipeline canonically (comments kept), as `omlc fmt` does."""
        return guarded(project, lambda: tools.oml_format(oml))

    @server.tool(annotations=ToolAnnotations(destructive_hint=False, open_world_hint=False))
    def oml_save(
        path: Annotated[str, Field(description="a .oml file inside the project")],
        oml: Oml,
        draft: Annotated[bool, Field(description="save even if invalid, as a draft")] = False,
    ) -> dict[str, Any]:
        """Write a pipeline inside the project, atomically. An invalid pipeline is saved only
        with draft: true."""
        return guarded(project, lambda: tools.oml_save(project, path, oml, draft))

    @server.resource("osiris://schema/oml", name="oml-schema", mime_type="application/schema+json")
    def oml_schema_resource() -> str:
        import json

        return json.dumps(tools.oml_schema(), indent=2)

    @server.resource("osiris://components", name="components", mime_type="application/json")
    def components_resource() -> str:
        import json

        return json.dumps(tools.components_list(), indent=2)

    @server.resource(
        "osiris://components/{name}", name="component-spec", mime_type="application/json"
    )
    def component_resource(name: str) -> str:
        import json

        try:
            return json.dumps(tools.component_spec(name)["spec"], indent=2, ensure_ascii=False)
        except ToolFailure as err:
            raise ResourceError(str(err)) from None

    @server.prompt(name="new_pipeline", title="New pipeline")
    def new_pipeline(
        request: Annotated[str, Field(description="what the pipeline should do")] = "",
    ) -> str:
        """A guide for writing a new Osiris pipeline with these tools."""
        return tools.pipeline_guide(request)

    return server
