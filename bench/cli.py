"""`knowd bench`: the benchmark harness's commands (bench/harness/), a `knowd` plugin.

    knowd bench STREAM.jsonl [options]          # = knowd bench run STREAM.jsonl
    knowd bench generate --world multi-hop --seed 1 --out FILE [--gold-out GOLD]
    knowd bench audit STREAM.jsonl --gold GOLD  # the store audit (bench/harness/audit.py)
    knowd bench samples --out FILE              # the configured connectors' documents, as a stream
    knowd bench report OUT                      # re-render OUT's results.md and accuracy.png

The product does not import the harness: this group is registered in the `knowd.commands`
entry-point group by the knowd-bench distribution (bench/pyproject.toml), and the `knowd`
group loads it from there (agent/cli/context.py). The harness modules are imported when a
command runs, so that `knowd --help` does not pay for them.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from agent.cli import progress
from agent.cli.context import get_config
from agent.cli.progress import Progress
from agent.errors import KnowdError
from agent.logging_setup import is_terminal


_STEP = re.compile(r"^\[(?P<system>[^\]]+)\] (?P<what>doc|question) (?P<k>\d+)/(?P<n>\d+)")


class BenchProgress:
    """The runner's progress lines (`[knowd] doc 3/150 ...`, `[rag] question 7/180 ...`)
    as a bar per system and phase on a terminal; the lines themselves everywhere else.
    Lines that are not steps (consolidations, warnings) are printed either way."""

    def __init__(self) -> None:
        self._bar: Progress | None = None
        self._key: tuple[str, str] | None = None
        self.on_terminal = is_terminal(progress.bar_stream())

    def __call__(self, line: str) -> None:
        m = _STEP.match(line)
        if not self.on_terminal or not m:
            (self._bar.echo if self._bar else click.echo)(line, err=True)
            return
        key = (m["system"], m["what"])
        if key != self._key:
            self.close()
            self._bar = Progress(int(m["n"]), f"{m['system']} {m['what']}s", m["what"], min_total=1)
            self._key = key
        assert self._bar is not None
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar, self._key = None, None


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
              type=click.Choice(["knowd", "knowd-erase", "rag", "fact-rag", "long-context", "weights",
                                 "knowd+weights"]),
              help="system to run (repeatable; default: knowd, rag, fact-rag, long-context)")
@click.option("--max-questions", type=click.IntRange(min=1),
              help="changed questions first, then as many unchanged (seeded)")
@click.option("--max-docs", type=click.IntRange(min=1), help="replay at most this many documents (see --subset)")
@click.option("--subset", type=click.Choice(["time", "entities"]), default="time", show_default=True,
              help="how --max-docs picks documents: the first N in time, or the documents of sampled question subjects")
@click.option("--seed", default=0, show_default=True, help="seed for question and subject sampling")
@click.option("--model", help="a GGUF path, or 'openai' for the configured server (default: the configured model)")
@click.option("--k", "k", type=click.IntRange(min=1),
              help="facts or chunks retrieved per question (default: chat.top_k)")
@click.option("--budget-tokens", type=click.IntRange(min=16),
              help="context tokens for retrieved items (default: half the context)")
@click.option("--weights-checkpoints", type=click.IntRange(min=0), default=0, show_default=True,
              help="weights systems: consolidate at this many question times, spread evenly (0 = at every one)")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="weights systems: override one consolidation setting")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="bench/out", show_default=True)
@click.pass_context
def run(
    ctx: click.Context, stream_path: str, systems: tuple[str, ...], max_questions: int | None, max_docs: int | None,
    subset: str, seed: int, model: str | None, k: int | None, budget_tokens: int | None, weights_checkpoints: int,
    sets: tuple[str, ...], out_dir: str,
) -> None:
    """Replay STREAM.jsonl through each system and write results.json, results.md and accuracy.png."""
    from agent.embeddings import build_embedder
    from agent.llm import build_llm

    from bench.harness import runner
    from bench.harness.stream import read_stream

    cfg = _with_model(get_config(ctx), model)
    if sets:
        from agent.config import load_config
        from trainer.config import parse_sets

        over = {"consolidation": parse_sets(sets)}
        cfg = _with_model(load_config(ctx.obj.get("config_path"), overrides=over), model)
    stream = read_stream(stream_path)
    opts = runner.BenchOptions(
        systems=list(systems) or runner.BenchOptions().systems, max_questions=max_questions, max_docs=max_docs,
        subset=subset, seed=seed, k=k or cfg.chat.top_k, budget_tokens=budget_tokens, out=Path(out_dir),
        weights_checkpoints=weights_checkpoints,
    )
    bar = BenchProgress()
    try:
        results = runner.run_benchmark(
            stream, opts, llm=build_llm(cfg), embedder=build_embedder(cfg), cfg=cfg, stream_name=Path(stream_path).name,
            progress=bar,
        )
    finally:
        bar.close()
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
@click.option("--gold-out", type=click.Path(dir_okay=False),
              help="also write the world's gold state, for `knowd bench audit`")
def generate(
    kind: str, seed: int, people: int, companies: int, changes: int, out_path: str, gold_out: str | None,
) -> None:
    """Write a synthetic conversation world as a stream (same seed, same file)."""
    from bench.harness.stream import write_stream
    from bench.harness.world import generate_world

    w = generate_world(kind, seed, people=people, companies=companies, changes=changes)
    write_stream(w.stream, out_path)
    qs = w.stream.questions
    changed = sum(q.changed for q in qs)
    click.echo(f"wrote {out_path}: {len(w.stream.documents)} documents, {len(qs)} questions ({changed} changed)")
    if gold_out:
        from bench.harness.audit import dump_gold, world_gold

        gold = world_gold(w)
        dump_gold(gold, gold_out)
        click.echo(f"wrote {gold_out}: {len(gold)} gold facts")


@bench.command("audit")
@click.argument("stream_path", metavar="STREAM.jsonl", type=click.Path(exists=True, dir_okay=False))
@click.option("--gold", "gold_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="the gold state: `knowd bench generate --gold-out`, or a file like bench/gold/samples.yaml")
@click.option("--system", "systems", multiple=True, type=click.Choice(["knowd", "knowd-erase", "fact-rag"]),
              help="fact-store systems to audit (repeatable; default: knowd)")
@click.option("--model", help="a GGUF path, or 'openai' for the configured server (knowd-erase uses the model)")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="bench/out/audit", show_default=True)
@click.pass_context
def audit(
    ctx: click.Context, stream_path: str, gold_path: str, systems: tuple[str, ...], model: str | None, out_dir: str,
) -> None:
    """Replay STREAM's documents and audit each store against GOLD at every checkpoint:
    precision, recall and stale rate of the facts, collateral make_false, reinforce precision."""
    from agent.embeddings import build_embedder
    from agent.llm import build_llm

    from bench.harness import audit as aud
    from bench.harness import systems as sysmod
    from bench.harness.stream import read_stream

    cfg = _with_model(get_config(ctx), model)
    stream = read_stream(stream_path)
    gold = aud.load_gold(gold_path)
    names = list(systems) or ["knowd"]
    needs_model = any(n != "knowd" and n != "fact-rag" or cfg.ingest.revision == "model" for n in names)
    llm = build_llm(cfg) if needs_model else _NoModel()
    embedder = build_embedder(cfg)
    out = Path(out_dir)

    def env_for(name: str):  # noqa: ANN202
        return sysmod.BenchEnv(llm=llm, embedder=embedder, cfg=cfg, workdir=out / "work" / name)

    result = aud.run_audit(stream, gold, names, env_for, out, progress=lambda s: click.echo(s, err=True))
    result["stream"] = Path(stream_path).name
    (out / "audit.md").write_text(aud.audit_markdown(result), encoding="utf-8")
    for name, r in result["systems"].items():
        s, o = r["summary"], r["operations"]
        click.echo(f"{name}: precision {s['precision']:.3f}, recall {s['recall']:.3f}, stale {s['stale_rate']:.3f}, "
                   f"collateral make_false {o['collateral_make_false']}/{o['make_false']}, "
                   f"reinforce precision {o['reinforce_precision']}")
    click.echo(f"wrote {out / 'audit.json'}, audit.md, audit.png")


@bench.command("samples")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False))
@click.pass_context
def samples(ctx: click.Context, out_path: str) -> None:
    """Write the documents of the configured connectors (config.yaml's samples, unless
    changed) as a stream, read as `knowd run` reads them."""
    from agent.daemon import resolve_options
    from connectors.registry import build_connector

    cfg = get_config(ctx)
    docs = []
    for c in cfg.connectors:
        if c.enabled:
            docs += build_connector(c.kind, c.name, resolve_options(cfg, c)).poll({}).documents
    from bench.harness.stream import Stream, write_stream

    write_stream(Stream(sorted(docs, key=lambda d: d.time), []), out_path)
    click.echo(f"wrote {out_path}: {len(docs)} documents from {len(cfg.connectors)} connectors")


def _with_model(cfg: Any, model: str | None) -> Any:
    if not model:
        return cfg
    from agent.config import config_from_dict

    over: dict[str, Any] = ({"backend": "openai"} if model == "openai"
                            else {"backend": "llama_cpp", "model_path": str(Path(model).resolve())})
    raw = cfg.model_dump()
    raw["llm"] = {**raw["llm"], **over}
    return config_from_dict(raw, base_dir=cfg.base_dir)


class _NoModel:
    """The keyed revision calls no model: the audit of knowd and fact-rag loads none."""

    name = "none"
    n_ctx = 2048

    def __init__(self) -> None:
        from graphs.llm import Meter

        self.meter = Meter()

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _refuse(self, *a: Any, **k: Any) -> Any:
        raise KnowdError("this audit loads no model; use --system knowd-erase with a model")

    complete = score_choices = stream = _refuse


@bench.command()
@click.argument("out_dir", metavar="OUT", type=click.Path(exists=True, file_okay=False))
def report(out_dir: str) -> None:
    """Re-write OUT/results.md and OUT/accuracy.png from OUT/results.json."""
    from bench.harness.runner import rerender

    paths = rerender(Path(out_dir))
    click.echo(f"wrote {paths['md']}, {paths['png']}")
