"""`osiris mcp`: serve the tools over stdio to an AI assistant (Claude Desktop, Claude Code, ...)."""

from __future__ import annotations

import argparse
import os
import sys

from osiris.runtime.contract.exits import ExitCode

CLIENT_SETUP = """\
Connect an assistant by adding this server to its MCP configuration, e.g. Claude Desktop's
claude_desktop_config.json or a project's .mcp.json for Claude Code:

  {
    "mcpServers": {
      "osiris": {
        "command": "osiris",
        "args": ["mcp", "--project", "/path/to/your/project"]
      }
    }
  }

or, with Claude Code:  claude mcp add osiris -- osiris mcp --project /path/to/your/project

Any other client: start `osiris mcp` as a subprocess and speak MCP (JSON-RPC) over its
stdin/stdout. Without --project the server uses the project around its working directory
(the nearest folder with osiris_connections.yaml or osiris.yaml). It writes only pipeline
files (*.oml) inside the project (oml_save) and never returns a secret value.

Tools: connections_list, connections_doctor, components_list, component_spec,
discovery_request, oml_schema_get, oml_validate, oml_compile, oml_format, oml_save.
Resources: osiris://schema/oml, osiris://components, osiris://components/{name}.
Prompt: new_pipeline.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "mcp",
        help="serve the compiler, registry and discovery to an AI assistant (MCP, stdio)",
        description="Run the Osiris Model Context Protocol server on stdin/stdout.",
        epilog=CLIENT_SETUP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=("run",),
        default="run",
        help="run the server (the default; `osiris mcp run` as in upstream Osiris works too)",
    )
    p.add_argument(
        "--project",
        metavar="DIR",
        help="the project folder (default: the project around the working directory)",
    )
    p.add_argument(
        "--connections",
        metavar="FILE",
        help="osiris_connections.yaml (default: $OSIRIS_CONNECTIONS, else the project's)",
    )
    p.set_defaults(func=cmd_mcp)


def cmd_mcp(args: argparse.Namespace) -> int:
    from osiris.compiler.mcp.project import Project, ToolFailure

    try:
        project = Project.locate(args.project, os.environ, args.connections)
    except ToolFailure as err:
        print(f"osiris mcp: error: {err}", file=sys.stderr)
        return ExitCode.INVALID
    try:
        from osiris.compiler.mcp.server import build_server
    except ModuleNotFoundError as err:
        if err.name != "mcp" and not (err.name or "").startswith("mcp"):
            raise
        print(
            "osiris mcp: error: the MCP SDK is not installed; pip install 'osiris-oml[mcp]'",
            file=sys.stderr,
        )
        return ExitCode.CONFIGURATION
    from osiris.compiler.registry import load_registry

    load_registry()  # once, before concurrent tool calls share it
    build_server(project).run("stdio")
    return ExitCode.OK
