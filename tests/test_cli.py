"""The CLI: clear one-line errors for bad config and bad input; facts/ops/revert output."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import cli
from tests.helpers import extracted, fact


def run(app, *args: str, input: str | bytes | None = None):  # noqa: ANN001, A002
    return CliRunner().invoke(cli, list(args), obj={"app": app, "cfg": app.cfg}, input=input, catch_exceptions=False)


def one_error_line(result) -> str:  # noqa: ANN001
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code != 0
    assert len(lines) == 1, result.output
    assert lines[0].startswith("knowd: error: "), lines[0]
    return lines[0]


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "yaml_text, expected",
    [
        ("llm:\n  backnd: llama_cpp\n", "llm.backnd: unknown key"),
        ("llm:\n  n_ctx: big\n", "llm.n_ctx: "),
        ("ingest:\n  classify_batch: 0\n", "ingest.classify_batch: "),
        ("colour: blue\n", "colour: unknown key"),
        ("llm: [1, 2\n", "not valid YAML"),
        ("daemon:\n  consolidate_at: '25:00'\n", "daemon.consolidate_at: "),
        ("connectors:\n  - {name: a, kind: feed}\n  - {name: a, kind: feed}\n", "duplicate name 'a'"),
        ("consolidation:\n  learning_rat: 1\n", "consolidation: unknown key 'learning_rat'"),
        ("consolidation:\n  lora_r: many\n", "consolidation: lora_r: "),
    ],
)
def test_bad_config_is_one_line_naming_the_key(tmp_path: Path, yaml_text: str, expected: str):
    p = tmp_path / "config.yaml"
    p.write_text(yaml_text)
    r = CliRunner().invoke(cli, ["--config", str(p), "facts"])
    assert r.exit_code == 2
    line = one_error_line(r)
    assert expected in line and str(p) in line


def test_yaml_off_is_the_adapter_setting_off(tmp_path: Path):
    """`llm.adapter: off` unquoted is YAML's false: it means off, not a type error."""
    from agent.config import load_config

    p = tmp_path / "config.yaml"
    p.write_text("llm:\n  adapter: off\n")
    assert load_config(p).llm.adapter == "off"
    p.write_text("llm:\n  adapter: on\n")  # true: which of routed/always is not for us to guess
    r = CliRunner().invoke(cli, ["--config", str(p), "facts"])
    assert r.exit_code == 2 and "llm.adapter: " in one_error_line(r)


def test_missing_config_file(tmp_path: Path):
    r = CliRunner().invoke(cli, ["--config", str(tmp_path / "nope.yaml"), "facts"])
    assert "config file not found" in one_error_line(r)


def test_shipped_config_is_valid():
    from agent.config import load_config

    cfg = load_config(Path(__file__).resolve().parent.parent / "config.yaml")
    assert cfg.llm.backend == "llama_cpp" and cfg.llm.model_path is None


def test_code_defaults_equal_the_shipped_config():
    """Every section's defaults (agent, graphs, trainer) are what config.yaml ships; only the
    sample connectors are the file's own."""
    from agent.config import Config, load_config

    shipped = load_config(Path(__file__).resolve().parent.parent / "config.yaml")
    assert shipped.ingest.extract_unit == "sentence"
    assert Config().model_dump(exclude={"connectors"}) == shipped.model_dump(exclude={"connectors"})


def test_consolidation_commands_call_the_trainer(app):
    r = run(app, "consolidate")
    assert r.exit_code == 0 and r.output.strip() == "skipped: no facts changed since the beginning"
    assert not (app.cfg.data_path / "models").exists()  # nothing to train: the model is never assembled
    listed = run(app, "adapters", "list").output.splitlines()
    assert listed[0] == "no adapters yet" and "recent runs:" in listed  # the skipped run, and why
    assert "skipped" in listed[-1] and "no facts changed" in listed[-1]
    assert "no adapter version 'v0042'" in one_error_line(run(app, "adapters", "use", "v0042"))
    assert "consolidation: unknown key 'learning_rat'" in one_error_line(run(app, "consolidate", "--set", "learning_rat=1"))


# ----------------------------------------------------------------------------- bad input
def test_empty_file(app, tmp_path: Path):
    p = tmp_path / "empty.txt"
    p.write_text("  \n")
    assert "empty input" in one_error_line(run(app, "ingest", str(p)))


def test_binary_file(app, tmp_path: Path):
    p = tmp_path / "blob.bin"
    p.write_bytes(bytes(range(256)) * 40)
    assert "binary" in one_error_line(run(app, "ingest", str(p)))


def test_five_megabyte_document_is_refused(app, tmp_path: Path):
    p = tmp_path / "big.txt"
    p.write_text("Northwind sells tea. " * (5 * 1024 * 1024 // 21 + 1))
    line = one_error_line(run(app, "ingest", str(p)))
    assert "byte limit" in line and "ingest.max_document_bytes" in line
    assert app.store.list_documents() == []  # nothing half-written


def test_missing_file_and_directory(app, tmp_path: Path):
    assert "No such file" in one_error_line(run(app, "ingest", str(tmp_path / "nope.txt")))
    assert "is a directory" in one_error_line(run(app, "ingest", str(tmp_path)))


def test_bad_jsonl_line_names_the_line(app, tmp_path: Path):
    p = tmp_path / "docs.jsonl"
    p.write_text('{"id": "a", "text": "ok"}\n{oops\n')
    assert f"{p}:2: invalid JSON" in one_error_line(run(app, "ingest", str(p)))


def test_jsonl_field_of_the_wrong_type_names_the_line_and_field(app, tmp_path: Path):
    """The JSONL schema is read by agent.inputs.document_from_object, as POST /v1/documents is."""
    p = tmp_path / "docs.jsonl"
    p.write_text('{"id": "a", "text": "ok"}\n{"id": "b", "text": "ok", "title": 5}\n')
    assert f"{p}:2: 'title' must be a string or null, not a number" in one_error_line(run(app, "ingest", str(p)))
    p.write_text('{"id": "a", "text": "ok", "time": 1700000000}\n')
    assert f"{p}:1: 'time' must be an ISO date or time string" in one_error_line(run(app, "ingest", str(p)))
    p.write_text('[' * 100_000 + ']' * 100_000 + '\n')
    assert f"{p}:1: invalid JSON" in one_error_line(run(app, "ingest", str(p)))
    assert app.store.list_documents() == []


def test_bad_time_option(app, tmp_path: Path):
    p = tmp_path / "a.txt"
    p.write_text("Maria Lopez is CEO of Northwind.")
    assert "not an ISO date" in one_error_line(run(app, "ingest", str(p), "--time", "last tuesday"))


def test_non_utf8_text_is_decoded_and_ingested(erase_app, fake_llm, tmp_path: Path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("José Núñez é o novo diretor da Açúcar Lda. A mudança foi anunciada em São Paulo.".encode("latin-1"))
    fake_llm.queue(extracted(fact("José Núñez", "is director of", "Açúcar Lda")))
    r = run(erase_app, "ingest", str(p), "--time", "2022-01-01")
    assert r.exit_code == 0, r.output
    assert "José Núñez" in fake_llm.calls[0].prompt  # decoded correctly, not mojibake
    assert [f.text for f in erase_app.store.list_facts()] == ["José Núñez is director of Açúcar Lda."]


def test_stdin_and_jsonl_stream_format(erase_app, fake_llm):
    stream = (
        '{"type":"document","id":"n1","time":"2020-01-01T00:00:00Z","title":"t","text":"Maria Lopez is CEO of Northwind."}\n'
        '{"type":"question","id":"q1","time":"2020-02-01T00:00:00Z","question":"?","choices":["a"],"answer":"a"}\n'
    )
    fake_llm.queue(extracted(fact("Maria Lopez", "is CEO of", "Northwind")))
    r = run(erase_app, "ingest", "-", input=stream)
    assert r.exit_code == 0, r.output
    assert "n1: extract 1" in r.output
    assert erase_app.store.get_document("n1").published_at.year == 2020


def test_model_failure_exits_nonzero_and_points_to_ops(erase_app, fake_llm, tmp_path: Path):
    p = tmp_path / "a.txt"
    p.write_text("Maria Lopez is CEO of Northwind.")
    fake_llm.queue("garbage")
    r = run(erase_app, "ingest", str(p))
    assert r.exit_code == 1 and "failed" in r.output and "knowd ops --doc" in r.output
    doc_id = r.output.split(":")[0] + ":" + r.output.split(":")[1]
    ops = run(erase_app, "ops", "--doc", doc_id.strip())
    assert "reject" in ops.output and "garbage" in ops.output and "failed" in ops.output


# ----------------------------------------------------------------------------- facts, ops, revert
def _two_documents(app, fake_llm, tmp_path: Path) -> None:  # noqa: ANN001
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("Maria Lopez is CEO of Northwind.")
    b.write_text("John Smith replaced Maria Lopez as CEO of Northwind.")
    fake_llm.queue(extracted(fact("Maria Lopez", "is CEO of", "Northwind")))
    assert run(app, "ingest", str(a), "--time", "2020-01-01").exit_code == 0
    fake_llm.queue(extracted(fact("John Smith", "is CEO of", "Northwind")), {"1": "make_false"}, {"retire": True})
    assert run(app, "ingest", str(b), "--time", "2022-06-01").exit_code == 0


def test_facts_as_of_history_ops_and_revert(erase_app, fake_llm, tmp_path: Path):
    _two_documents(erase_app, fake_llm, tmp_path)
    now = run(erase_app, "facts").output
    assert "John Smith is CEO of Northwind." in now and "Maria Lopez" not in now
    then = run(erase_app, "facts", "--as-of", "2021-01-01").output
    assert "Maria Lopez is CEO of Northwind." in then and "John Smith" not in then
    for phrase in ("March 2021", "2021", "end of 2021"):  # the chat's /asof phrases
        then = run(erase_app, "facts", "--as-of", phrase).output
        assert "Maria Lopez is CEO of Northwind." in then and "John Smith" not in then, phrase
    assert "John Smith" in run(erase_app, "facts", "--as-of", "August 2022").output
    bad = run(erase_app, "facts", "--as-of", "last blue moon")
    assert bad.exit_code == 2 and "not a date or time" in one_error_line(bad)
    hist = run(erase_app, "facts", "--all", "--history").output
    assert "false  make_false" in hist and "true   extract" in hist
    q = run(erase_app, "facts", "--query", "who runs Northwind", "--all").output
    assert "Maria Lopez" in q and "John Smith" in q

    doc_b = [d["id"] for d in erase_app.store.list_documents() if "b.txt" in d["id"]][0]
    ops = run(erase_app, "ops", "--doc", doc_b).output
    assert "make_false" in ops and "retire" in ops and "model[classify]" in ops and "make_false" in ops

    r = run(erase_app, "revert", "--doc", doc_b)
    assert r.exit_code == 0 and "reverted 2 history entries" in r.output
    assert "Maria Lopez is CEO of Northwind." in run(erase_app, "facts").output
    assert "unknown document" not in run(erase_app, "ops", "--doc", doc_b).output
    assert "no document 'zzz'" in one_error_line(run(erase_app, "revert", "--doc", "zzz"))


def test_reindex_rebuilds_from_store(erase_app, fake_llm, tmp_path: Path):
    _two_documents(erase_app, fake_llm, tmp_path)
    r = run(erase_app, "reindex")
    assert r.exit_code == 0 and "indexed 2 facts" in r.output
    assert erase_app.index.count() == 2


@pytest.mark.parametrize("module", ["agent", "agent.cli"])
def test_python_dash_m_has_every_command(module: str) -> None:
    """`python -m agent` (and `-m agent.cli`) is the same command as `knowd`, with the
    commands the other parts register (bench, chat, run, consolidate)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for command in ("bench", "chat", "run", "consolidate", "serve", "facts"):
        assert f"  {command}" in out.stdout
