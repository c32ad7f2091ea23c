"""The graphs' settings: the `ingest:` and `chat:` sections of config.yaml.

agent/config.py composes them into the whole file and validates it at start;
every key has a default equal to the shipped config.yaml.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class IngestConfig(_Section):
    revision: Literal["keys", "model"] = Field(
        "keys", description="keys: propositions from a parse, revised by the key of the question each answers "
        "(deterministic, no model call; graphs/keyed/slots.py); model: ERASE as published, the model extracts, "
        "classifies and rewrites (for a model that can judge contradiction)",
    )
    chunk_tokens: int = Field(400, ge=32, description="document chunk size in model tokens")
    top_k_doc: int = Field(8, ge=0, description="facts retrieved by the chunk's embedding")
    top_k_per_fact: int = Field(3, ge=0, description="facts retrieved per newly extracted fact")
    same_subject: bool = Field(True, description="add facts sharing a subject/entity")
    second_hop: bool = Field(True, description="add facts sharing a subject with retrieved ones")
    max_candidates: int = Field(24, ge=1, description="cap on facts sent to classification")
    classify_batch: int = Field(6, ge=1, description="facts classified per model call")
    max_new_facts: int = Field(8, ge=1, le=32, description="facts extracted per chunk")
    extract_unit: Literal["chunk", "sentence"] = Field(
        "sentence", description="extract from whole chunks (one call each), or from each sentence, "
        "speakers resolved (one short call per sentence; better for small models, graphs/sentences.py)",
    )
    duplicate_similarity: float = Field(0.93, ge=0, le=1, description="cosine above which a new fact duplicates a current one")
    max_attempts: int = Field(5, ge=1, description="tries before a document is marked failed for good")
    max_document_bytes: int = Field(5_000_000, ge=1, description="larger inputs are refused")


class ChatConfig(_Section):
    retrieval: bool = Field(
        True, description="answer from the facts in the store (true) or from the model's weights alone "
        "(false: closed book, what the nightly adapter learned; each request may choose too)",
    )
    lookup: bool = Field(
        True, description="answer from the store's structure first (a choice or a slot value a fact true then "
        "supports; graphs/lookup.py); the model answers only what the store cannot decide",
    )
    closed_world: bool = Field(
        True, description="a yes/no choice about a subject the store has never heard of is answered no "
        "(nothing known makes it true) rather than guessed by the model",
    )
    top_k: int = Field(8, ge=1)
    min_relevance: float = Field(0.25, ge=0, le=1, description="below this cosine nothing is 'known'")
    max_tokens: int = Field(200, ge=1)
    history_extra: int = Field(4, ge=0, description="history questions: extra facts on the same subjects")
    max_sources: int = Field(3, ge=1, description="sources shown per fact")
    max_question_chars: int = Field(4000, ge=1, description="longer questions are refused (the model's context is small)")
    unmatched_name_relevance: float = Field(
        0.6, ge=0, le=1, description="a question naming something no retrieved fact mentions is answered only above this cosine"
    )
