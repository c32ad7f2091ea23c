#!/usr/bin/env bash
# The benchmark runs behind docs/benchmarks.md, on the bundled model (Gemma 3 270M, CPU).
# Every real-model command holds /tmp/knowd-cpu.lock: the machine's cores are shared.
# Outputs go to bench/out/ (git-ignored). 
set -euo pipefail
cd "$(dirname "$0")/.."
KNOWD=${KNOWD:-.venv/bin/knowd}
OUT=${OUT:-bench/out}
ALL=(--system knowd --system fact-rag --system rag --system long-context --system weights)
mkdir -p "$OUT"

"$KNOWD" bench generate --world single-hop --seed 1 --people 7 --changes 3 --out "$OUT/world-single-s1.jsonl"
"$KNOWD" bench generate --world multi-hop --seed 1 --people 7 --changes 3 --out "$OUT/world-multi-s1.jsonl"

# one lock for both worlds: the same code and an otherwise idle model for the paired runs
# (both worlds hold the same questions, so the same seed samples the same 48)
flock /tmp/knowd-cpu.lock sh -c '
  "$0" bench "$2/world-single-s1.jsonl" $1 --max-questions 48 --seed 0 --out "$2/world-single-s1" &&
  "$0" bench "$2/world-multi-s1.jsonl" $1 --max-questions 48 --seed 0 --out "$2/world-multi-s1"' \
  "$KNOWD" "${ALL[*]}" "$OUT"
flock /tmp/knowd-cpu.lock "$KNOWD" bench ../shared/data/clark-news-dev.jsonl "${ALL[@]}" \
    --subset entities --max-docs 24 --seed 1 --out "$OUT/clark-dev-e24-s1"

.venv/bin/python bench/knowd_decisions.py "$OUT/world-single-s1" "$OUT/world-single-s1.jsonl"
.venv/bin/python bench/knowd_decisions.py "$OUT/world-multi-s1" "$OUT/world-multi-s1.jsonl"
