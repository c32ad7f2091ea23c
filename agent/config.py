"""config.yaml: one file, validated at start.

Each package owns its section as a typed model: `ingest:` and `chat:` are
graphs/config.py's, `consolidation:` is trainer/config.py's `TrainerConfig`;
the daemon's, the server's and the backends' sections are here. `Config`
composes them, so the whole file is validated when knowd starts. Every model
forbids extra keys, so a misspelt key is an error naming the key, not a silently
ignored setting. Code defaults equal the shipped config.yaml. Relative paths
resolve against the directory holding config.yaml.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from agent.errors import ConfigError
from graphs.config import ChatConfig, IngestConfig
from trainer.config import TrainerConfig
from trainer.errors import ConfigError as TrainerConfigError

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
    adapter: Literal["routed", "always", "off"] = Field(
        "routed", description="the nightly LoRA adapter: applied to requests about what it was trained on (routed), "
        "to every request (always), or never (off)",
    )
    openai: OpenAIServer = Field(default_factory=OpenAIServer)

    @field_validator("adapter", mode="before")
    @classmethod
    def _yaml_off(cls, v: object) -> object:
        """YAML reads a bare `off` (and `no`) as false: `adapter: off` means "off"."""
        return "off" if v is False else v


class EmbeddingsConfig(_Section):
    model: str = Field("bundled", description="'bundled' (all-MiniLM-L6-v2) or a sentence-transformers dir")
    device: str = "cpu"


class IndexConfig(_Section):
    mode: Literal["embedded", "server"] = "embedded"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    collection: str = "facts"


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
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="auto: text lines on a terminal, JSON lines otherwise (the journal, a pipe, a file)",
    )
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


class TokenConfig(_Section):
    """One API token: its name (written to the operations log), its scope, and only its hash."""

    name: str = Field(pattern=r"^[\w.@-]{1,64}$", description="who holds it, e.g. 'grafana' or 'alice'")
    scope: Literal["read", "write", "admin"] = Field(
        description="read: chat, search, history; write: + push documents; admin: + revert, retry, connectors, "
        "ship/rollback",
    )
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the token (`knowd token add` writes it)")


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8321, ge=0, le=65535, description="0 = any free port")
    tokens: list[TokenConfig] = Field(
        default_factory=list, description="bearer tokens with scopes, hashed (agent/security.py); "
        "required when host is not loopback",
    )
    token: str | None = Field(None, description="an admin token in plain text (older form; prefer tokens:)")
    token_env: str = Field("KNOWD_TOKEN", description="environment variable holding an admin token")
    max_request_bytes: int = Field(1_000_000, ge=1024, description="the largest chat request body (413 past it)")
    max_documents_bytes: int = Field(
        10_000_000, ge=1024, description="the largest POST /v1/documents body (413 past it); each document's "
        "text is also held to ingest.max_document_bytes",
    )
    model_name: str = Field("knowd", description="the model id the OpenAI-compatible API serves")
    append_sources: bool = Field(True, description="end each API answer with its cited facts and sources")

    @field_validator("tokens")
    @classmethod
    def _unique_names(cls, v: list[TokenConfig]) -> list[TokenConfig]:
        names = [t.name for t in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate token name {dup[0]!r}")
        return v


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
    consolidation: TrainerConfig = Field(
        default_factory=TrainerConfig, description="trainer settings (trainer.config.TrainerConfig, presets applied)"
    )

    # set by load_config: the folder relative paths resolve against
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    @field_validator("consolidation", mode="before")
    @classmethod
    def _trainer(cls, v: Any) -> Any:
        if isinstance(v, TrainerConfig):
            return v
        if not isinstance(v, dict):
            raise PydanticCustomError("consolidation", "must be a mapping of trainer settings")
        try:  # the trainer's own reading: the preset first, then the other keys
            return TrainerConfig.from_dict(v)
        except TrainerConfigError as e:
            raise PydanticCustomError("consolidation", str(e).removeprefix("consolidation: ")) from None

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
