"""knowd connector plugin example: every .txt file in a folder is a note.

A note becomes a document when it appears, and again (as a new version) each time
its text changes. Registered in pyproject.toml under the `knowd.connectors`
entry-point group as kind "notes".
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from connectors.base import ConnectorError, PollResult, check_options
from stores.types import Document, content_hash, utcnow


class NotesConnector:
    """Options: `path` (required), the folder of notes; `pattern` (default "*.txt")."""

    kind = "notes"

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        check_options(self.kind, name, options, ("path", "pattern"), required=("path",))
        self.name = name
        self.folder = Path(str(options["path"])).expanduser()
        self.pattern = str(options.get("pattern") or "*.txt")

    def poll(self, state: dict[str, Any]) -> PollResult:
        if not self.folder.is_dir():
            raise ConnectorError(f"notes {self.name}: {self.folder} is not a folder")
        seen: dict[str, str] = dict(state.get("hashes") or {})  # note -> hash of the version last sent
        documents, warnings = [], []
        for path in sorted(self.folder.rglob(self.pattern)):
            relative = path.relative_to(self.folder).as_posix()
            try:
                text = path.read_text("utf-8").strip()
                modified = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
            except (OSError, UnicodeDecodeError) as exc:  # one bad note never stops the others
                warnings.append(f"notes {relative}: skipped: {exc}")
                continue
            digest = content_hash(text)
            if not text or seen.get(relative) == digest:
                continue
            seen[relative] = digest
            title = text.splitlines()[0].lstrip("# ").strip()
            documents.append(Document(
                id=f"notes:{relative}@{digest[:12]}",  # a new id per version: edits are new documents
                text=text,
                source=f"{self.kind}:{self.name}",
                title=title,
                published_at=modified,
                read_at=utcnow(),
                meta={"file": relative, "content_hash": digest},
            ))
        # The cursor is returned, never kept: the daemon stores it only after the documents.
        return PollResult(documents=documents, state={"hashes": seen}, warnings=warnings)
