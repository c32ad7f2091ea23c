"""config.yaml's `connectors:` list, edited in place: what `knowd connectors add` and the
review console (agent/console.py) both write. Only that block of the file is touched;
every other line, comments included, stays as it was."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agent.config import ConnectorConfig, load_config
from agent.errors import ConfigError


def parse_option(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--option {text!r}: expected key=value")
    if raw == "":
        return key, ""
    try:  # YAML scalars: numbers, booleans, {glob: format} maps; anything else stays a string
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    return key, raw if value is None else value


def _item_yaml(item: dict[str, Any], indent: str) -> list[str]:
    text = yaml.safe_dump([item], sort_keys=False, default_flow_style=False, allow_unicode=True, width=200)
    return [indent + line + "\n" for line in text.splitlines()]


def add_connector_text(text: str, item: dict[str, Any]) -> str:
    """config.yaml's text with `item` appended to its `connectors:` list, every other line
    (comments included) unchanged. No round-trip YAML library is needed: only the
    `connectors:` block is touched."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    key = re.compile(r"^connectors\s*:(?P<rest>.*)$")
    at = next((i for i, line in enumerate(lines) if key.match(line.rstrip("\r\n"))), None)
    if at is None:
        return "".join(lines) + "\nconnectors:\n" + "".join(_item_yaml(item, "  "))
    rest = key.match(lines[at].rstrip("\r\n")).group("rest")  # type: ignore[union-attr]
    m = re.search(r"\s#", rest)  # a trailing comment is kept on the key's line
    value, comment = (rest[: m.start()], rest[m.start() :].rstrip()) if m else (rest, "")
    value = value.strip()
    if value == "":  # block list (or empty): insert after its last item line
        end, indent = at, None
        for j in range(at + 1, len(lines)):
            line = lines[j]
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0] in " \t-":
                end = j
                m = re.match(r"^(\s*)- ", line)
                if indent is None and m:
                    indent = m.group(1)
                continue
            break
        return "".join(lines[: end + 1] + _item_yaml(item, indent if indent is not None else "  ") + lines[end + 1 :])
    try:  # a one-line flow list ("connectors: []"): rewritten as a block list
        existing = yaml.safe_load(value)
    except yaml.YAMLError:
        existing = None
    if not isinstance(existing, list):
        raise ConfigError("connectors: is not a one-line list or a block list; add the connector by hand")
    block = [f"connectors:{comment}\n"]
    for old in [*existing, item]:
        block += _item_yaml(old, "  ")
    return "".join(lines[:at] + block + lines[at + 1 :])


def add_connector(path: Path, item: dict[str, Any]) -> ConnectorConfig:
    """Append connector `item` ({"name", "kind", "interval_s"?, "enabled"?, "options"?}) to
    config.yaml at `path`: validated and built first (an unknown kind or option is a
    ConfigError/ConnectorError and the file is not touched), every other line kept, the
    result re-read before it atomically replaces the file. `knowd connectors add` and the
    review console (agent/console.py) both call this."""
    from agent.daemon import resolve_options
    from connectors.registry import build_connector

    name = item.get("name")
    cfg = load_config(path)  # a broken config is reported as it is, before anything is written
    if any(c.name == name for c in cfg.connectors):
        raise ConfigError(f"a connector named {name!r} is already configured (see: knowd connectors list)")
    try:
        cc = ConnectorConfig.model_validate(item)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"connector {name!r}: {where}: {first['msg']}") from None
    build_connector(cc.kind, cc.name, resolve_options(cfg, cc))  # bad kind or options: nothing is written

    new_text = add_connector_text(path.read_text(encoding="utf-8"), item)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(new_text, encoding="utf-8")
        check = load_config(tmp)
        if [c.model_dump() for c in check.connectors] != [c.model_dump() for c in cfg.connectors] + [cc.model_dump()]:
            raise ConfigError(f"{path}: editing the connectors: list went wrong; the file is unchanged")
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)  # atomic: the file is either the old one or the validated new one
    finally:
        tmp.unlink(missing_ok=True)
    return cc
