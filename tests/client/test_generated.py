"""The OpenAPI schema is the source of the clients: CI fails when a committed generated file is stale
(clients/openapi.json, src/shoprec/client/models.py, clients/typescript/src/schema.d.ts), when the Python
client lacks a route of the schema, or when its async twin drifts from it. Fix: `python -m
shoprec.api.openapi_dump` (docs/clients.md "Regenerating")."""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shoprec.api import openapi_dump
from shoprec.client import AsyncClient, Client
from shoprec.client._routes import ROUTES

REGENERATE = "stale: run `python -m shoprec.api.openapi_dump` and commit the result"
NODE_MODULES = openapi_dump.TYPESCRIPT_DIR / "node_modules"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return openapi_dump.current_schema()


def test_committed_schema_is_the_app_schema(schema: dict[str, Any]) -> None:
    assert openapi_dump.SCHEMA_FILE.read_text() == openapi_dump.schema_text(schema), REGENERATE


def test_committed_python_models_are_generated_from_the_schema(schema: dict[str, Any]) -> None:
    if not openapi_dump.codegen_available():
        pytest.skip("datamodel-codegen is not installed (pip install -e '.[dev]')")
    assert openapi_dump.MODELS_FILE.read_text() == openapi_dump.python_models(schema), REGENERATE


def test_the_python_client_has_a_method_for_every_v1_route(schema: dict[str, Any]) -> None:
    operations = {(method.upper(), path) for path, ops in schema["paths"].items() if path.startswith("/v1/")
                  for method in ops}
    covered = set(ROUTES.values())
    assert operations - covered == set(), "routes without a client method (add them to shoprec.client._routes, " \
                                          "Client and AsyncClient)"
    assert covered - operations == set(), "client methods for routes the API does not have"
    for name in ROUTES:
        assert callable(getattr(Client, name)) and inspect.iscoroutinefunction(getattr(AsyncClient, name)), name


def test_async_client_is_the_twin_of_client() -> None:
    def methods(cls: type) -> dict[str, inspect.Signature]:
        return {n: inspect.signature(f) for n, f in vars(cls).items() if callable(f) and not n.startswith("_")
                and n not in ("close", "aclose")}

    sync, aio = methods(Client), methods(AsyncClient)
    assert sync.keys() == aio.keys()
    for name in sync:
        assert list(sync[name].parameters) == list(aio[name].parameters), name
        assert str(sync[name].return_annotation) == str(aio[name].return_annotation), name


def test_the_client_imports_no_server_part() -> None:
    code = ("import sys, shoprec.client; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('fastapi', 'starlette', 'sqlalchemy', 'torch', 'numpy', 'uvicorn') or m.startswith('shoprec.') and "
            "not m.startswith('shoprec.client')); print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(Path(openapi_dump.ROOT / "src")), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout + done.stderr


def _npm_tools() -> Path:
    cli = NODE_MODULES / ".bin" / "openapi-typescript"
    if not cli.exists() or shutil.which("node") is None:
        pytest.skip(f"{NODE_MODULES} is absent (run `npm ci` in clients/typescript; CI does when npm is reachable)")
    return cli


def test_committed_typescript_types_are_generated_from_the_schema(tmp_path: Path) -> None:
    _npm_tools()
    out = tmp_path / "schema.d.ts"
    openapi_dump.typescript_types(openapi_dump.SCHEMA_FILE, out)
    assert openapi_dump.TYPESCRIPT_FILE.read_text() == out.read_text(), REGENERATE


def test_typescript_client_type_checks() -> None:
    _npm_tools()
    done = subprocess.run([str(NODE_MODULES / ".bin" / "tsc"), "--noEmit", "-p", "tsconfig.json"],
                          cwd=openapi_dump.TYPESCRIPT_DIR, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
