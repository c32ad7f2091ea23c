"""Versioned adapters and the live pointer, under ``data_dir/adapters/``.

::

    adapters/
      live.json          {"version": "v0003", "gguf": "/abs/.../v0003/adapter.gguf", "scale": 1.0}
                         (absent = the base model runs without an adapter)
      history.jsonl      one line per change of live.json (ship, use, rollback, clear)
      v0003/
        adapter_model.safetensors, adapter_config.json   the peft LoRA
        adapter.gguf                                     the llama.cpp LoRA
        meta.json                                        version, run, time, base model, facts
        trainer_config.json, data.json, metrics.json

The LLM backend watches live.json and reloads when it changes; this module is
its only writer and always replaces it atomically. Pure stdlib: the CLI and
the daemon import it without torch.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.errors import AdapterError
from trainer.runs import atomic_write_json, iso, read_json, utcnow

_VERSION_RE = re.compile(r"^v(\d{4,})$")


def adapters_dir(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / "adapters"


def live_path(data_dir: str | os.PathLike) -> Path:
    return adapters_dir(data_dir) / "live.json"


@dataclass
class AdapterVersion:
    version: str
    path: Path
    meta: dict[str, Any]
    live: bool

    @property
    def gguf(self) -> Path:
        return self.path / "adapter.gguf"

    def row(self) -> list[str]:
        """The cells of `adapters list`: what it learned and what it left alone, as the
        report says (trainer/report.py), figures of the adapter as served."""
        m = self.meta.get("metrics", {})
        after, unrouted, base, router = (m.get(k) or {} for k in ("after", "after_unrouted", "base", "router"))
        kinds = [f.get("kind") for f in self.meta.get("facts", [])]
        facts = f"{kinds.count('new')}" + (f"+{kinds.count('retracted')}r" if "retracted" in kinds else "") + (
            f"+{kinds.count('replay')}p" if "replay" in kinds else "")
        arith = f"{_pct(base.get('arithmetic'))}→{_pct(after.get('arithmetic'))}" if after else "–"
        rout = f"{_pct(router.get('recall'))}/{_pct(router.get('false_positive_rate'))}" if router else "off"
        return [
            self.version + (" *" if self.live else ""), (self.meta.get("created_at") or "")[:16].replace("T", " "), facts,
            _pct(after.get("efficacy")), _pct(after.get("paraphrase")), _pct(after.get("portability")),
            _pct(after.get("retention")), _pct(after.get("asserted")),
            _pct(after.get("locality")), _pct(unrouted.get("locality")) if unrouted else "–", arith, rout,
        ]


LIST_HEAD = ["version", "shipped (UTC)", "facts", "effic.", "para.", "multi.", "retain", "assert", "local.", "unrouted", "arith.", "router R/FP"]
LIST_NOTE = ("* = live. facts: new(+r retracted, +p replayed). effic./para./multi.: the facts' own sentence, held-out paraphrases "
             "and multi-hop questions; retain: earlier nights' facts still known; assert: retracted facts still asserted; "
             "local.: unrelated prompts unchanged as served (routed), unrouted: with the adapter on every prompt; "
             "router R/FP: recall on in-scope questions / false positives on unrelated prompts.")


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def format_table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def list_lines(data_dir: str | os.PathLike, runs_shown: int = 5) -> list[str]:
    """`adapters list`: the versions as a table, then the last runs and why each did or
    did not ship."""
    from trainer.runs import list_runs

    vs = list_versions(data_dir)
    out = format_table([LIST_HEAD] + [v.row() for v in vs]) + [LIST_NOTE] if vs else ["no adapters yet"]
    recs = list_runs(data_dir)[-runs_shown:]
    if recs:
        out += ["", "recent runs:"]
        out += format_table([[r.get("id", "?"), r.get("status", "?"), (r.get("reason") or "")[:160]] for r in recs])
    return out


def live(data_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The contents of live.json, or None when no adapter is live."""
    return read_json(live_path(data_dir))


def live_version(data_dir: str | os.PathLike) -> str | None:
    cur = live(data_dir)
    return cur.get("version") if cur else None


def _versions(data_dir: str | os.PathLike) -> list[tuple[int, str, Path]]:
    d = adapters_dir(data_dir)
    out = []
    if d.is_dir():
        for p in d.iterdir():
            m = _VERSION_RE.match(p.name)
            if m and p.is_dir():
                out.append((int(m.group(1)), p.name, p))
    return sorted(out)


def list_versions(data_dir: str | os.PathLike) -> list[AdapterVersion]:
    """Every stored adapter version, oldest first, with its meta.json and whether it is live."""
    cur = live_version(data_dir)
    return [AdapterVersion(name, p, read_json(p / "meta.json", {}) or {}, name == cur) for _, name, p in _versions(data_dir)]


def get_version(data_dir: str | os.PathLike, version: str) -> AdapterVersion:
    for v in list_versions(data_dir):
        if v.version == version:
            return v
    known = ", ".join(v.version for v in list_versions(data_dir)) or "none"
    raise AdapterError(f"no adapter version {version!r} (known: {known})")


def next_version(data_dir: str | os.PathLike) -> str:
    vs = _versions(data_dir)
    return f"v{(vs[-1][0] + 1 if vs else 1):04d}"


def _log(data_dir: str | os.PathLike, action: str, version: str | None, previous: str | None, note: str = "") -> None:
    p = adapters_dir(data_dir) / "history.jsonl"
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"time": iso(utcnow()), "action": action, "version": version, "previous": previous, "note": note}) + "\n")


def history(data_dir: str | os.PathLike) -> list[dict[str, Any]]:
    p = adapters_dir(data_dir) / "history.jsonl"
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def _set_live(data_dir: str | os.PathLike, v: AdapterVersion | None, action: str, note: str = "", scale: float | None = None) -> None:
    prev = live_version(data_dir)
    if v is None:
        try:
            os.remove(live_path(data_dir))
        except FileNotFoundError:
            pass
    else:
        if not v.gguf.is_file():
            raise AdapterError(f"adapter {v.version} has no adapter.gguf at {v.gguf}; it cannot be made live")
        if scale is None:
            scale = float(v.meta.get("scale", 1.0))
        atomic_write_json(live_path(data_dir), {"version": v.version, "gguf": str(v.gguf.resolve()), "scale": scale})
    _log(data_dir, action, v.version if v else None, prev, note)


def use_version(data_dir: str | os.PathLike, version: str, scale: float | None = None) -> AdapterVersion:
    """Make ``version`` live (the backend hot-reloads it)."""
    v = get_version(data_dir, version)
    _set_live(data_dir, v, "use", scale=scale)
    return v


def clear_live(data_dir: str | os.PathLike) -> None:
    """Run the base model without an adapter."""
    _set_live(data_dir, None, "clear")


def rollback(data_dir: str | os.PathLike) -> str | None:
    """Make the version before the live one live (none before it = no adapter); return it.

    Versions are numbered in shipping order, so repeated rollbacks walk back
    through the nights: v0003 -> v0002 -> v0001 -> base model.
    """
    cur = live_version(data_dir)
    if cur is None:
        raise AdapterError("no adapter is live; nothing to roll back")
    older = [v for v in list_versions(data_dir) if v.version < cur and v.gguf.is_file()]
    if older:
        _set_live(data_dir, older[-1], "rollback", note=f"from {cur}")
        return older[-1].version
    _set_live(data_dir, None, "rollback", note=f"from {cur}")
    return None


def publish(data_dir: str | os.PathLike, staging: Path, meta: dict[str, Any], make_live: bool = True, scale: float = 1.0) -> AdapterVersion:
    """Move a finished staging folder into place as the next version, then (optionally) make it live.

    The folder appears under its version name in one rename, so a crash never
    leaves half an adapter that `use` could pick.
    """
    version = next_version(data_dir)
    meta = dict(meta, version=version, scale=scale, created_at=meta.get("created_at") or iso(utcnow()))
    atomic_write_json(staging / "meta.json", meta)
    dest = adapters_dir(data_dir) / version
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, dest)
    v = AdapterVersion(version, dest, meta, False)
    if make_live:
        _set_live(data_dir, v, "ship", note=f"run {meta.get('run_id')}", scale=scale)
        v.live = True
    return v


ACTIONS = ("list", "use", "rollback", "clear")


def run_action(data_dir: str | os.PathLike, action: str, version: str | None = None) -> list[str]:
    """`adapters list|use VERSION|rollback|clear` (knowd's CLI and ``python -m trainer``):
    do it, and return the lines to show."""
    if action == "list":
        return list_lines(data_dir)
    if action == "use":
        if not version:
            raise AdapterError("adapters use needs a VERSION (see `adapters list`)")
        return [f"live: {use_version(data_dir, version).version}"]
    if action == "rollback":
        return [f"live: {rollback(data_dir) or 'base model (no adapter)'}"]
    if action == "clear":
        clear_live(data_dir)
        return ["live: base model (no adapter)"]
    raise AdapterError(f"unknown adapters action {action!r}; one of {', '.join(ACTIONS)}")


def remove_version(data_dir: str | os.PathLike, version: str) -> None:
    """Delete a version that is not live (housekeeping; never called automatically)."""
    v = get_version(data_dir, version)
    if v.live:
        raise AdapterError(f"{version} is live; use or roll back to another version first")
    shutil.rmtree(v.path)
