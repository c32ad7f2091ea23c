"""config.yaml's `server.tokens` list, edited in place (`knowd token add|remove`).

A round-trip YAML library (ruamel.yaml) keeps every other line and comment as it was;
the edited file is validated as a whole before it replaces the old one (atomically), so a
bad edit changes nothing. Only the token's SHA-256 is written: the token itself is shown
once, to the person who made it.
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agent.config import Config, _one_line
from agent.errors import ConfigError
from agent.security import Scope, hash_token, new_token


def _yaml() -> Any:
    from ruamel.yaml import YAML

    y = YAML()  # round-trip: comments, order and quoting kept
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _load(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    doc = _yaml().load(text) if text.strip() else None
    if doc is None:
        from ruamel.yaml.comments import CommentedMap

        doc = CommentedMap()
    return doc


def _write(path: Path, doc: Any) -> None:
    buf = io.StringIO()
    _yaml().dump(doc, buf)
    text = buf.getvalue()
    try:  # the whole file must still be a valid config
        Config.model_validate({**(yaml.safe_load(text) or {}), "base_dir": path.resolve().parent})
    except ValidationError as e:
        raise ConfigError(_one_line(e, str(path))) from None
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=".config-", suffix=".yaml")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def add_token(path: str | Path, name: str, scope: str) -> str:
    """Make a token named `name` with `scope`, write its hash to config.yaml, return the token."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    path = Path(path)
    Scope.parse(scope)
    doc = _load(path)
    server = doc.get("server")
    if server is None:
        server = doc["server"] = CommentedMap()
    tokens = server.get("tokens")
    if tokens is None:
        tokens = server["tokens"] = CommentedSeq()
    if any(isinstance(t, dict) and t.get("name") == name for t in tokens):
        raise ConfigError(f"{path}: a token named {name!r} exists already (knowd token remove {name} first)")
    token = new_token()
    entry = CommentedMap()
    entry["name"], entry["scope"], entry["sha256"] = name, scope, hash_token(token)
    tokens.append(entry)
    _write(path, doc)
    return token


def remove_token(path: str | Path, name: str) -> None:
    path = Path(path)
    doc = _load(path)
    tokens = (doc.get("server") or {}).get("tokens") or []
    keep = [t for t in tokens if not (isinstance(t, dict) and t.get("name") == name)]
    if len(keep) == len(tokens):
        raise ConfigError(f"{path}: no token named {name!r}")
    tokens[:] = keep
    _write(path, doc)
