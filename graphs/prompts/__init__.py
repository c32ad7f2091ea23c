"""Prompt builders and output schemas, one module per task (graphiti style).

Nodes in graphs/ hold no prompt strings: they call `build(...)` for the prompt,
pass `schema(...)` to the LLM for constrained decoding, and `parse(...)` to
validate what came back. Prompts are few-shot and short, written for a 270M
base model; larger models do fine with them too.
"""
