"""config.yaml: one file, validated at start.

Every section is a pydantic model with `extra="forbid"`, so a misspelt key is an
error naming the key, not a silently ignored setting. Relative paths resolve
against the directory holding config.yaml.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.errors import ConfigError

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class OpenAIServer(_Section):
    base_url: str = Field("http://127.0.0.1:8080/v1", description="OpenAI-compatible API root")
    model: str = Field("default", description="model name sent to the server")
    api_key_env: str | None = Field(None, description="environment variable holding the API key")
    timeout_s: float = Field(120.0, gt=0)
    structured: Literal["response_format", "json_schema", "guided_json", "grammar", "none"] = Field(
        "response_format",
        description="how the server takes a JSON schema: OpenAI/vLLM response_format, "
        "llama.cpp server json_schema, older vLLM guided_json, llama-cpp-python server grammar "
        "(GBNF), or none (validate only)",
    )


class LLMConfig(_Section):
    backend: Literal["llama_cpp", "openai"] = "llama_cpp"
    model_path: str | None = Field(None, description="a GGUF file; null = the bundled Gemma 3 270M")
    n_ctx: int = Field(2048, ge=256, le=131072)
    n_threads: int | None = Field(None, ge=1)
    seed: int = 0
    max_tokens: int = Field(256, ge=1, le=8192, description="default cap on generated tokens")
    openai: OpenAIServer = Field(default_factory=OpenAIServer)


class EmbeddingsConfig(_Section):
    model: str = Field("bundled", description="'bundled' (all-MiniLM-L6-v2) or a sentence-transformers dir")
    device: str = "cpu"


class IndexConfig(_Section):
    mode: Literal["embedded", "server"] = "embedded"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    collection: str = "facts"


class IngestConfig(_Section):
    chunk_tokens: int = Field(400, ge=32, description="document chunk size in model tokens")
    top_k_doc: int = Field(8, ge=0, description="facts retrieved by the chunk's embedding")
    top_k_per_fact: int = Field(3, ge=0, description="facts retrieved per newly extracted fact")
    same_subject: bool = Field(True, description="add facts sharing a subject/entity")
    second_hop: bool = Field(True, description="add facts sharing a subject with retrieved ones")
    max_candidates: int = Field(24, ge=1, description="cap on facts sent to classification")
    classify_batch: int = Field(6, ge=1, description="facts classified per model call")
    max_new_facts: int = Field(8, ge=1, le=32, description="facts extracted per chunk")
    extract_unit: Literal["chunk", "sentence"] = Field(
        "chunk", description="extract from whole chunks (one call each), or from each sentence, "
        "speakers resolved (one short call per sentence; better for small models, graphs/sentences.py)",
    )
    duplicate_similarity: float = Field(0.93, ge=0, le=1, description="cosine above which a new fact duplicates a current one")
    max_attempts: int = Field(5, ge=1, description="tries before a document is marked failed for good")
    max_document_bytes: int = Field(5_000_000, ge=1, description="larger inputs are refused")


class ConnectorConfig(_Section):
    name: str
    kind: str
    interval_s: float = Field(900, gt=0)
    enabled: bool = True
    options: dict[str, Any] = Field(default_factory=dict)


class DaemonConfig(_Section):
    consolidate_at: str | None = Field("03:00", description="HH:MM local time for nightly consolidation; null = never")
    retry_base_s: float = Field(30, gt=0, description="first retry of a failed document after this; doubles per attempt")
    retry_max_s: float = Field(3600, gt=0, description="cap on the wait between retries of a failed document")
    poll_backoff_max_s: float = Field(
        3600, gt=0, description="cap on a failing connector's wait; it doubles from interval_s per failure"
    )
    stop_timeout_s: float = Field(
        30, gt=0, description="SIGTERM: how long to wait for the model call in flight before exiting anyway"
    )
    failure_log_every: int = Field(
        0, ge=0, description="a source still failing is logged again every N failures; 0 = only first and recovery"
    )
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("consolidate_at")
    @classmethod
    def _hhmm(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            h, m = (int(x) for x in v.split(":"))
            assert 0 <= h < 24 and 0 <= m < 60
        except Exception:
            raise ValueError("must be HH:MM") from None
        return v


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8321, ge=0, le=65535, description="0 = any free port")
    token: str | None = Field(None, description="bearer token; required when host is not loopback")
    token_env: str = "KNOWD_TOKEN"
    max_request_bytes: int = Field(1_000_000, ge=1024)
    model_name: str = Field("knowd", description="the model id the OpenAI-compatible API serves")
    append_sources: bool = Field(True, description="end each API answer with its cited facts and sources")


class ChatConfig(_Section):
    top_k: int = Field(8, ge=1)
    min_relevance: float = Field(0.25, ge=0, le=1, description="below this cosine nothing is 'known'")
    max_tokens: int = Field(200, ge=1)
    history_extra: int = Field(4, ge=0, description="history questions: extra facts on the same subjects")
    max_sources: int = Field(3, ge=1, description="sources shown per fact")
    max_question_chars: int = Field(4000, ge=1, description="longer questions are refused (the model's context is small)")
    unmatched_name_relevance: float = Field(
        0.6, ge=0, le=1, description="a question naming something no retrieved fact mentions is answered only above this cosine"
    )


class Config(_Section):
    data_dir: str = "data"
    llm: LLMConfig = Field(default_factory=LLMConfig)
    embeddings: EmbeddingsConfig = Field(default_factory=EmbeddingsConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    connectors: list[ConnectorConfig] = Field(default_factory=list)
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    chat: ChatConfig = Field(default_factory=ChatConfig)
    consolidation: dict[str, Any] = Field(
        default_factory=dict, description="trainer settings, validated by trainer.config.TrainerConfig"
    )

    # set by load_config: the folder relative paths resolve against
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    def path(self, p: str | Path) -> Path:
        p = Path(os.path.expanduser(str(p)))
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    @property
    def data_path(self) -> Path:
        return self.path(self.data_dir)


def _one_line(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{source}: {key}: {msg}{more}"


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate config.yaml (default: the repository's, or $KNOWD_CONFIG)."""
    path = Path(path or os.environ.get("KNOWD_CONFIG") or DEFAULT_CONFIG)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    if overrides:
        raw = _deep_merge(raw, overrides)
    try:
        cfg = Config.model_validate({**raw, "base_dir": path.resolve().parent})
    except ValidationError as e:
        raise ConfigError(_one_line(e, str(path))) from None
    names = [c.name for c in cfg.connectors]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"{path}: connectors: duplicate name {sorted(dup)[0]!r}")
    return cfg


def config_from_dict(raw: dict[str, Any], base_dir: Path | None = None) -> Config:
    """Validate a config given as a dict (tests, benchmarks)."""
    try:
        return Config.model_validate({**raw, "base_dir": base_dir or Path.cwd()})
    except ValidationError as e:
        raise ConfigError(_one_line(e, "config")) from None


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
