"""knowd CLI commands: bench, a thin front for the benchmark harness (bench/harness/).

    knowd bench STREAM.jsonl [options]          # = knowd bench run STREAM.jsonl
    knowd bench generate --world multi-hop --seed 1 --out FILE

The harness is not part of the product package: it is imported only when a bench
command runs, from the source checkout the `agent` package sits in.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from agent.cli.context import get_config
from agent.errors import KnowdError

ROOT = Path(__file__).resolve().parents[2]


def harness(module: str) -> ModuleType:
    """`bench.harness.<module>`; a checkout that was pip-installed (editable) does not put
    bench/ on the path, so the checkout's root is added when the harness is there."""
    name = f"bench.harness.{module}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name not in ("bench", "bench.harness"):
            raise
    if not (ROOT / "bench" / "harness" / "__init__.py").is_file():
        raise KnowdError("knowd bench needs the benchmark harness (bench/harness/ in a source checkout of knowd)")
    sys.path.insert(0, str(ROOT))
    return importlib.import_module(name)


class _BenchGroup(click.Group):
    """A group whose default command is `run`: `knowd bench S.jsonl` means `knowd bench run S.jsonl`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_BenchGroup)
def bench() -> None:
    """Benchmarks: replay a knowledge-update stream (run, the default) or generate one."""


@bench.command("run")
@click.argument("stream_path", metavar="STREAM.jsonl", type=click.Path(exists=True, dir_okay=False))
@click.option("--system", "systems", multiple=True,
              type=click.Choice(["knowd", "rag", "fact-rag", "long-context", "weights"]),
              help="system to run (repeatable; default: knowd, rag, fact-rag, long-context)")
@click.option("--max-questions", type=click.IntRange(min=1), help="changed questions first, then as many unchanged (seeded)")
@click.option("--max-docs", type=click.IntRange(min=1), help="replay at most this many documents (see --subset)")
@click.option("--subset", type=click.Choice(["time", "entities"]), default="time", show_default=True,
              help="how --max-docs picks documents: the first N in time, or the documents of sampled question subjects")
@click.option("--seed", default=0, show_default=True, help="seed for question and subject sampling")
@click.option("--model", help="a GGUF path, or 'openai' for the configured server (default: the configured model)")
@click.option("--k", "k", type=click.IntRange(min=1), help="facts or chunks retrieved per question (default: chat.top_k)")
@click.option("--budget-tokens", type=click.IntRange(min=16), help="context tokens for retrieved items (default: half the context)")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="bench/out", show_default=True)
@click.pass_context
def run(
    ctx: click.Context, stream_path: str, systems: tuple[str, ...], max_questions: int | None, max_docs: int | None,
    subset: str, seed: int, model: str | None, k: int | None, budget_tokens: int | None, out_dir: str,
) -> None:
    """Replay STREAM.jsonl through each system and write results.json, results.md and accuracy.png."""
    from agent.config import config_from_dict
    from agent.embeddings import build_embedder
    from agent.llm import build_llm

    runner = harness("runner")
    cfg = get_config(ctx)
    if model:
        llm_over: dict[str, Any] = {"backend": "openai"} if model == "openai" else {"backend": "llama_cpp", "model_path": str(Path(model).resolve())}
        raw = cfg.model_dump()
        raw["llm"] = {**raw["llm"], **llm_over}
        cfg = config_from_dict(raw, base_dir=cfg.base_dir)
    stream = harness("stream").read_stream(stream_path)
    opts = runner.BenchOptions(
        systems=list(systems) or runner.BenchOptions().systems, max_questions=max_questions, max_docs=max_docs,
        subset=subset, seed=seed, k=k or cfg.chat.top_k, budget_tokens=budget_tokens, out=Path(out_dir),
    )
    results = runner.run_benchmark(
        stream, opts, llm=build_llm(cfg), embedder=build_embedder(cfg), cfg=cfg, stream_name=Path(stream_path).name,
        progress=lambda s: click.echo(s, err=True),
    )
    for name, r in results["systems"].items():
        a = r["accuracy"]["overall"]
        acc = "-" if a["accuracy"] is None else f"{100 * a['accuracy']:.1f}%"
        click.echo(f"{name}: {acc} ({a['correct']}/{a['n']})")
    click.echo(f"wrote {Path(out_dir) / 'results.json'}, results.md, accuracy.png")


@bench.command()
@click.option("--world", "kind", type=click.Choice(["single-hop", "multi-hop"]), default="multi-hop", show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--people", default=7, show_default=True, help="people in the world (at least 2 x companies + 1)")
@click.option("--companies", default=3, show_default=True)
@click.option("--changes", default=4, show_default=True, help="transitions (two thirds of them job changes)")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False))
def generate(kind: str, seed: int, people: int, companies: int, changes: int, out_path: str) -> None:
    """Write a synthetic conversation world as a stream (same seed, same file)."""
    w = harness("world").generate_world(kind, seed, people=people, companies=companies, changes=changes)
    harness("stream").write_stream(w.stream, out_path)
    qs = w.stream.questions
    click.echo(f"wrote {out_path}: {len(w.stream.documents)} documents, {len(qs)} questions ({sum(q.changed for q in qs)} changed)")


@bench.command()
@click.argument("out_dir", metavar="OUT", type=click.Path(exists=True, file_okay=False))
def report(out_dir: str) -> None:
    """Re-write OUT/results.md and OUT/accuracy.png from OUT/results.json."""
    paths = harness("runner").rerender(Path(out_dir))
    click.echo(f"wrote {paths['md']}, {paths['png']}")


COMMANDS = [bench]
