"""GitHub's published REST description, as githubkit-schemas-2022-11-28 holds it: the contract
the emulator and the plugin are held to.

Every endpoint function of ``githubkit_schemas.v2022_11_28.rest`` names its method and path in
its docstring and passes ``response_model``, ``error_models`` and (for a JSON body) the body
model to the request it makes. ``catalog()`` reads those from the source, so nothing here is
transcribed by hand.
"""

from __future__ import annotations

import ast
import functools
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import githubkit_schemas.v2022_11_28.models as models
import githubkit_schemas.v2022_11_28.rest as rest
import pydantic

ENDPOINT_LINE = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) (/\S*)$", re.MULTILINE)
# Path parameters that may hold slashes: a file path, a git ref such as heads/main.
MULTI_SEGMENT = {"path", "ref"}


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str  # e.g. /repos/{owner}/{repo}/releases/{release_id}/assets
    response_model: str | None  # a type expression over githubkit's models
    error_models: dict[str, str]
    body_model: str | None

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        parts = re.split(r"(\{[^}]+\})", self.template)
        regex = "".join(
            ("(.+)" if part[1:-1] in MULTI_SEGMENT else "([^/]+)")
            if part.startswith("{")
            else re.escape(part)
            for part in parts
        )
        return re.compile(regex + "$")

    @property
    def literal_length(self) -> int:
        return len(re.sub(r"\{[^}]+\}", "", self.template))


@functools.cache
def catalog() -> dict[tuple[str, str], Endpoint]:
    """Every documented endpoint by (method, path template)."""
    endpoints: dict[tuple[str, str], Endpoint] = {}
    for source in sorted(Path(rest.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.FunctionDef):
                endpoint = _endpoint(node)
                if endpoint is not None:
                    endpoints.setdefault((endpoint.method, endpoint.template), endpoint)
    return endpoints


def _endpoint(function: ast.FunctionDef) -> Endpoint | None:
    match = ENDPOINT_LINE.search(ast.get_docstring(function) or "")
    if match is None:
        return None
    response_model = body_model = None
    error_models: dict[str, str] = {}
    for node in ast.walk(function):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg == "response_model":
                response_model = ast.unparse(keyword.value)
            elif keyword.arg == "error_models" and isinstance(keyword.value, ast.Dict):
                error_models = {
                    ast.literal_eval(key): ast.unparse(value)
                    for key, value in zip(keyword.value.keys, keyword.value.values, strict=True)
                    if key is not None
                }
        if isinstance(node.func, ast.Name) and node.func.id == "type_validate_python":
            body_model = ast.unparse(node.args[0])
    return Endpoint(match[1], match[2], response_model, error_models, body_model)


def endpoint_for(method: str, path: str) -> Endpoint | None:
    """The documented endpoint a concrete request path is a call of (the most literal one)."""
    candidates = [
        endpoint
        for (m, _), endpoint in catalog().items()
        if m == method and endpoint.pattern.match(path)
    ]
    return max(candidates, key=lambda e: e.literal_length, default=None)


class _ModelNames(dict[str, Any]):
    """Names in githubkit's type expressions: typing's, and the models (imported lazily)."""

    def __missing__(self, name: str) -> Any:
        for module in (typing, models):
            if hasattr(module, name):
                return getattr(module, name)
        raise KeyError(name)  # a builtin such as list


@functools.cache
def _adapter(expression: str) -> pydantic.TypeAdapter[Any]:
    # githubkit's own generated text, evaluated with nothing but its models in scope.
    return pydantic.TypeAdapter(eval(expression, {}, _ModelNames()))


def check_response(endpoint: Endpoint, status: int, body: Any) -> str | None:
    """Why ``body`` is not what the endpoint documents for ``status``; ``None`` when it is."""
    if status < 400:
        expression = endpoint.response_model
        if expression is None:
            return f"{endpoint.template} documents no body, yet one was sent"
    else:
        default = "ValidationError" if status == 422 else "BasicError"
        expression = endpoint.error_models.get(str(status), default)
    return _check(expression, body)


def check_request_body(endpoint: Endpoint, body: Any) -> str | None:
    if endpoint.body_model is None:
        return None
    return _check(endpoint.body_model, body)


def _check(expression: str, value: Any) -> str | None:
    try:
        _adapter(expression).validate_python(value)
    except pydantic.ValidationError as error:
        return f"not a valid {expression}: {error}"
    return None
