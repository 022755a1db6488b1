"""The published JSON Schemas of the commands' ``--json`` documents (``docs/schemas/<command>.schema.json``)
and one helper that checks a document against its command's schema, for every test that produces one."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def schema_path(command: str) -> Path:
    return SCHEMAS / f"{command}.schema.json"


@cache
def _validator(command: str) -> jsonschema.Draft202012Validator:
    schema = json.loads(schema_path(command).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate(command: str, doc: Any) -> Any:
    """Assert that ``doc`` (a parsed document, or the text printed) fits ``command``'s schema; returns
    the document. The failure lists every violation with its path in the document."""
    if isinstance(doc, str):
        doc = json.loads(doc)
    errors = sorted(_validator(command).iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    lines = []
    for e in errors:  # a oneOf names its closest branch's failures, not the whole document
        for sub in [e, *e.context][: 1 + 5]:
            lines.append(f"  {'/'.join(map(str, sub.absolute_path)) or '(top level)'}: {sub.message[:200]}")
    assert not errors, f"{command} --json does not fit {schema_path(command).name}:\n" + "\n".join(lines)
    return doc
