"""Prompt builders and their output parsers, one module per task (graphiti style).

The bundled model is a *base* (pre-trained, not instruction-tuned) Gemma 3
270M, so every prompt is a few-shot completion: the model continues a pattern
and stops at a blank line or newline. Nodes in the trainer hold no prompt
strings: they call these builders and parse the text with the matching parser.
"""
