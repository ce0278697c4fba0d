"""One generation session: registry context, aliases, discovered schemas, the model seam, the loop."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from osiris.compiler.connections import ConnectionsIndex
from osiris.compiler.frontend import check_text, load_connections
from osiris.compiler.llm import client as llm
from osiris.compiler.llm.context import Context, load_context
from osiris.compiler.llm.loop import Attempt, Outcome, run_loop
from osiris.compiler.llm.pipeline import tool_definition
from osiris.compiler.llm.prompt import request_params, system_blocks, user_turn
from osiris.compiler.llm.rank import DEFAULT_BUDGET, Selection, rank_tables
from osiris.compiler.registry import Registry, load_registry
from osiris.oml.diagnostics import Diagnostic
from osiris.runtime.catalog.model import Catalog


@dataclass(slots=True)
class Session:
    """What every model call of one command shares."""

    registry: Registry
    context: Context
    connections: ConnectionsIndex | None
    connection_problems: list[Diagnostic]
    model: str
    environ: Mapping[str, str]
    project_root: Path
    connections_path: Path | None
    selection: Selection | None = None
    catalogs: list[tuple[str, Catalog]] | None = field(default=None, repr=False)
    client: Any = field(default=None, repr=False)

    @property
    def tool(self) -> dict[str, Any]:
        return tool_definition(self.registry)

    @property
    def system(self) -> list[dict[str, Any]]:
        return system_blocks(self.context.text)

    def aliases(self) -> dict[str, list[tuple[str, bool]]]:
        """family -> [(alias, is default)]; names only, never a field of an entry."""
        if self.connections is None:
            return {}
        return {
            family: [(a, e.default) for a, e in sorted(entries.items())]
            for family, entries in self.connections.aliases.items()
        }

    def check(self, file: str) -> Callable[[str], Any]:
        """The compiler's check as the loop, chat and the summary use it: with the catalogs
        --discover read (then the discovery cache's, never connecting), so a column or table
        the model misspelt is an error it gets back (OML150-OML153), as `omlc check` says."""
        from osiris.compiler.discovery.lookup import held_catalogs

        catalogs = held_catalogs(
            self.catalogs or [],
            project_root=self.project_root,
            connections_path=self.connections_path,
        )
        return partial(
            check_text,
            file=file,
            registry=self.registry,
            connections=self.connections,
            catalogs=catalogs,
        )

    def discover(self, refs: Sequence[str], request: str, budget: int = DEFAULT_BUDGET) -> None:
        """Read the --discover catalogs once (masked); rank their tables for this request."""
        if not refs:
            return
        if self.catalogs is None:
            from osiris.compiler.llm.discover import discovered_catalogs

            self.catalogs = discovered_catalogs(
                refs,
                project_root=self.project_root,
                connections_path=self.connections_path,
                environ=self.environ,
            )
        self.selection = rank_tables(request, self.catalogs, budget)

    def first_messages(self, request: str, current: str | None = None) -> list[dict[str, Any]]:
        schemas = [self.selection.text] if self.selection and self.selection.text else []
        text = user_turn(request, self.aliases(), schemas, current)
        return [{"role": "user", "content": text}]

    def params(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return request_params(
            model=self.model, system=self.system, tool=self.tool, messages=messages
        )

    def ensure_client(self) -> Any:
        if self.client is None:
            self.client = llm.make_client(self.environ)
        return self.client

    def call(self, messages: list[dict[str, Any]]) -> llm.Reply:
        return llm.create(self.ensure_client(), self.params(messages), self.environ)

    def generate(
        self,
        request: str,
        *,
        file: str,
        max_attempts: int,
        current: str | None = None,
        on_attempt: Callable[[Attempt], None] | None = None,
    ) -> Outcome:
        return run_loop(
            self.first_messages(request, current),
            self.call,
            self.check(file),
            request=request,
            max_attempts=max_attempts,
            on_attempt=on_attempt,
        )


def open_session(
    *,
    project_root: Path,
    connections_path: Path | None,
    environ: Mapping[str, str],
    model: str | None = None,
    registry: Registry | None = None,
) -> Session:
    registry = registry or load_registry()
    connections, problems = load_connections(connections_path)
    return Session(
        registry=registry,
        context=load_context(registry, project_root),
        connections=connections,
        connection_problems=problems,
        model=llm.model_name(model, environ),
        environ=environ,
        project_root=project_root,
        connections_path=connections_path,
    )
