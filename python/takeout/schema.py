"""The function's signature as the manifest records it: parameters and a JSON Schema
(draft 2020-12) derived from annotations, which the server validates against and
`/openapi.json` publishes.

Each annotation's schema is a lookup in the type table (`takeout._types`); unannotated
parameters accept any JSON (`{}`). Classes that need a name (dataclasses, TypedDicts, pydantic
models, enums) go to `$defs` and are referenced, so recursive types terminate.
"""

from __future__ import annotations

import inspect
import json
import typing
from typing import Any, Callable, Optional

from . import _types


def describe(fn: Callable[..., Any], *, batch: bool = False) -> dict[str, Any]:
    """The manifest's `function` entry (without qualname/module, which the caller adds).

    For a batch function (`batch`) the first parameter and the result are described per item
    (`list[X]` is described as `X`), as clients send and receive them."""
    target = inspect.unwrap(fn) if inspect.isfunction(fn) else fn
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        signature = None
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: describe what we can
        hints = {}
    if batch and signature is not None and signature.parameters:
        first = next(iter(signature.parameters))
        hints = {
            **hints,
            first: _element(hints.get(first)),
            "return": _element(hints.get("return")),
        }
        hints = {k: v for k, v in hints.items() if v is not None}
        signature = _per_item(signature, hints)
    builder = _types.Builder()
    parameters = []
    properties: dict[str, Any] = {}
    required: list[str] = []
    extra_keywords = False
    if signature is not None:
        for param in signature.parameters.values():
            schema = builder.schema(hints[param.name]) if param.name in hints else {}
            entry: dict[str, Any] = {
                "name": param.name,
                "kind": param.kind.name,
                "required": param.default is param.empty
                and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD),
                "schema": schema,
            }
            if param.default is not param.empty and _is_json(param.default):
                entry["default"] = param.default
            parameters.append(entry)
            if param.kind is param.VAR_KEYWORD:
                extra_keywords = True
            elif param.kind is param.VAR_POSITIONAL:
                continue
            elif param.kind is not param.POSITIONAL_ONLY:
                prop = dict(schema)
                if "default" in entry:
                    prop["default"] = entry["default"]
                properties[param.name] = prop
                if entry["required"]:
                    required.append(param.name)
    object_schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        object_schema["required"] = required
    if not extra_keywords:
        object_schema["additionalProperties"] = False
    returns = builder.schema(hints["return"]) if "return" in hints else {}
    if builder.defs:
        object_schema["$defs"] = builder.defs
    return {
        "signature": str(signature) if signature is not None else "(...)",
        "doc": inspect.getdoc(target),
        "is_async": inspect.iscoroutinefunction(target),
        "is_generator": inspect.isgeneratorfunction(target),
        "parameters": parameters,
        "schema": object_schema,
        "returns": returns,
    }


def result_warning(fn: Callable[..., Any]) -> Optional[str]:
    """A sentence when the return annotation names a type with no JSON form, so that pack
    says so rather than every call failing; None otherwise."""
    try:
        returns = typing.get_type_hints(fn).get("return")
    except Exception:  # unresolvable forward references: nothing to say
        return None
    kind = _types.unconvertible(returns)
    if kind is None:
        return None
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return (
        f"`{name}` is annotated to return `{kind}`, which has no JSON form, so every call "
        "will fail; return lists, dicts, numbers, strings, numpy or pandas objects, "
        "dataclasses, or a figure or image (anything with `_repr_png_`)"
    )


def _per_item(signature: inspect.Signature, hints: dict[str, Any]) -> inspect.Signature:
    """The signature as clients see a batch function: the first parameter takes one item."""
    empty = inspect.Parameter.empty
    params = list(signature.parameters.values())
    first = params[0].replace(annotation=hints.get(params[0].name, empty))
    return signature.replace(
        parameters=[first, *params[1:]], return_annotation=hints.get("return", empty)
    )


def _element(hint: Any) -> Any:
    """The item type of a sequence annotation (`list[X]`, `Sequence[X]`, `tuple[X, ...]`);
    None (any JSON) for anything else, such as a numpy array or no annotation."""
    import collections.abc

    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (list, collections.abc.Sequence) and len(args) == 1:
        return args[0]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    return None


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True
