"""A small world for the review console's tests (tests/test_console*.py): a config file,
an App with the fake LLM and the hashing embedder, documents ingested through the real
path (the inbox and the daemon's worker, the ERASE graph), one document that fails, and
a consolidation run with a report and two adapter versions."""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import yaml

from agent.app import App
from agent.config import load_config
from graphs.testing import FakeLLM
from stores.testing import HashEmbedder
from tests.helpers import doc
from tests.test_chat_graph import facts_in

MARIA = "Maria Lopez is CEO of Northwind."
JOHN = "John Smith is CEO of Northwind."
BERGEN = "Northwind has an office in Bergen."

D1 = doc("memo-2020", "Maria Lopez is CEO of Northwind.", "2020-01-01", "Northwind names Maria Lopez CEO")
D2 = doc("memo-2022", "John Smith replaced Maria Lopez as CEO of Northwind.", "2022-06-01", "John Smith replaces Maria Lopez")
D3 = doc("memo-2023", "Northwind opened an office in Bergen.", "2023-01-01", "Northwind opens in Bergen")


def _section(prompt: str) -> str:
    """The part of a prompt about the document (after the few-shot examples)."""
    return prompt.rsplit("\nText (", 1)[-1]


class World:
    """The fake model's answers: extract/classify/rewrite by the document's text, the chat
    citing John Smith's fact. `broken` makes the Bergen document's extraction fail."""

    def __init__(self) -> None:
        self.broken = True

    def respond(self, prompt: str, schema: Any, step: str) -> Any:
        text = _section(prompt)
        if step == "extract":
            if "Bergen" in text:
                return "{not json at all" if self.broken else {"facts": [
                    {"subject": "Northwind", "relation": "has an office in", "object": "Bergen"}]}
            if "John Smith" in text:
                return {"facts": [{"subject": "John Smith", "relation": "is CEO of", "object": "Northwind"}]}
            if "Maria Lopez" in text:
                return {"facts": [{"subject": "Maria Lopez", "relation": "is CEO of", "object": "Northwind"}]}
            return {"facts": []}
        if step == "classify":
            listed = dict(re.findall(r"^(\d+)\. (.+)$", text.split("\nFacts:\n", 1)[-1], re.M))
            keys = (schema or {}).get("required") or list(listed)
            replaced = "replaced Maria Lopez" in text
            return {k: "make_false" if replaced and listed.get(k) == MARIA else "no_change" for k in keys}
        if step == "rewrite":
            return {"retire": True}
        if step in ("chat", "stream"):
            nums = facts_in(prompt) if "\nFacts (" in prompt else {}
            return " ".join(f"{t} [{nums[t]}]" for t in (JOHN, MARIA) if t in nums) or "I don't know."
        return {}


def write_config(tmp_path: Path, token: str | None = None, connectors: list[dict[str, Any]] | None = None,
                 tokens: list[dict[str, str]] | None = None) -> Path:
    path = tmp_path / "config.yaml"
    cfg = {
        "data_dir": "data",
        "ingest": {"revision": "model", "extract_unit": "chunk", "max_attempts": 5},
        "chat": {"lookup": False},
        "daemon": {"consolidate_at": None, "retry_base_s": 3600, "log_format": "json"},
        "server": {"token": token, "tokens": tokens or []},
        "connectors": connectors or [],
    }
    text = yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False)
    path.write_text("# the console tests' config\n" + text, encoding="utf-8")
    return path


def make_app(tmp_path: Path, token: str | None = None,
             tokens: list[dict[str, str]] | None = None) -> tuple[App, World, FakeLLM]:
    path = write_config(tmp_path, token, tokens=tokens)
    world = World()
    llm = FakeLLM(responder=world.respond)
    app = App(load_config(path), llm=llm, embedder=HashEmbedder(), config_path=path)
    return app, world, llm


def ingest_all(app: App) -> None:
    """Queue D1, D2, D3 in the inbox and drain it with the daemon's worker (not started:
    `process_next` is the worker's one step)."""
    from agent.daemon import Daemon
    from agent.service import documents

    d = Daemon(app)
    for x in (D1, D2, D3):
        documents.push(app, [x], "test")
        while d.process_next():
            pass


def wait_for(check: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def make_runs(data_dir: Path) -> dict[str, Any]:
    """Three consolidation runs with reports (plots included), the way trainer/run.py
    leaves them: two shipped (adapter versions v0001 and v0002, v0002 live), then one
    the gate refused (locality)."""
    from trainer import adapters, runs
    from trainer.config import TrainerConfig
    from trainer.gate import decide
    from trainer.report import write_report

    out: dict[str, Any] = {"runs": []}
    for n in (1, 2, 3):
        h = runs.start_run(data_dir, TrainerConfig().to_dict())
        base = {"efficacy": 0.1, "paraphrase": 0.0, "portability": 0.2, "locality": 1.0, "arithmetic": 0.8, "locality_kl": 0.0}
        metrics = {"base": base, "before": base, "teacher": {"efficacy": 0.9, "paraphrase": 0.8, "portability": 0.5},
                   "after": {"efficacy": 0.7, "paraphrase": 0.3 + n / 10, "portability": 0.3, "locality": 0.99 if n < 3 else 0.9,
                             "arithmetic": 0.8, "locality_kl": 0.02}}
        runs.atomic_write_json(h.dir / "train_log.json", {
            "history": [{"step": i, "loss": 1 / i, "distill": 1 / i, "locality": 0.01, "lr": 1e-3} for i in range(1, 9)],
            "val_history": [{"step": 8, "val_loss": 0.3}]})
        gate = decide(metrics["base"], metrics["before"], metrics["after"], TrainerConfig()).to_dict()
        facts = [{"id": "f1", "kind": "new", "text": JOHN}]
        h.update(metrics=metrics, facts=facts, gate=gate)
        if gate["ship"]:
            stage = data_dir.parent / f"stage-{n}"
            stage.mkdir(parents=True)
            (stage / "adapter.gguf").write_bytes(b"GGUF fake adapter")
            v = adapters.publish(data_dir, stage, {"run_id": h.id, "facts": facts, "metrics": metrics})
            h.finish("shipped", "the gate passed", adapter_version=v.version)
        else:
            h.finish("refused", gate["reason"])
        write_report(h.dir)
        out["runs"].append(h.id)
        time.sleep(0.01)  # distinct start times
    return out


FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Harbour news</title><link>https://harbour.example/</link><description>test feed</description>
<item><guid>hb-1</guid><title>Fjord Ferries adds a route</title><pubDate>Mon, 02 Sep 2024 08:00:00 +0000</pubDate>
<description>Fjord Ferries adds a route to Stavanger.</description></item>
<item><guid>hb-2</guid><title>Harbour bridge closed</title><pubDate>Tue, 03 Sep 2024 08:00:00 +0000</pubDate>
<description>The harbour bridge is closed for repairs until October.</description></item>
</channel></rss>
"""


def write_feed(path: Path) -> Path:
    """A two-item RSS file about nothing the other documents mention."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(FEED, encoding="utf-8")
    return path
