#!/usr/bin/env bash
# The benchmark runs behind docs/benchmarks.md's "revision by keys" section, on the bundled
# model (Gemma 3 270M, CPU). Seeds 2-4 of the worlds and half B of CLARK-News dev are held
# out: knowd was developed on world seed 1, the shipped samples and CLARK half A.
# Every real-model command holds /tmp/knowd-cpu.lock: the machine's cores are shared.
set -euo pipefail
cd "$(dirname "$0")/.."
KNOWD=${KNOWD:-.venv/bin/knowd}
OUT=${OUT:-bench/out/keys}
mkdir -p "$OUT"
for s in 2 3 4; do
  for w in single-hop multi-hop; do
    "$KNOWD" bench generate --world "$w" --seed "$s" --out "$OUT/world-$w-s$s.jsonl" --gold-out "$OUT/world-$w-s$s.gold.json"
    "$KNOWD" bench audit "$OUT/world-$w-s$s.jsonl" --gold "$OUT/world-$w-s$s.gold.json" \
        --system knowd --system fact-rag --out "$OUT/audit-world-$w-s$s"
    extra=()
    if [ "$s" = 2 ]; then extra=(--system knowd-erase); fi
    flock /tmp/knowd-cpu.lock "$KNOWD" bench "$OUT/world-$w-s$s.jsonl" --system knowd --system rag --system fact-rag \
        "${extra[@]}" --max-questions 60 --seed 0 --out "$OUT/world-$w-s$s"
  done
done
.venv/bin/python bench/clark_split.py ../shared/data/clark-news-dev.jsonl "$OUT/clark"
flock /tmp/knowd-cpu.lock "$KNOWD" bench "$OUT/clark-B.jsonl" --system knowd --system rag --system fact-rag \
    --system knowd-erase --subset entities --max-docs 150 --seed 1 --out "$OUT/clark-B"
"$KNOWD" bench samples --out "$OUT/samples.jsonl"
flock /tmp/knowd-cpu.lock "$KNOWD" bench audit "$OUT/samples.jsonl" --gold bench/gold/samples.yaml \
    --system knowd --system fact-rag --system knowd-erase --out "$OUT/audit-samples"
flock /tmp/knowd-cpu.lock .venv/bin/python bench/samples_api.py --out "$OUT/samples-api"
flock /tmp/knowd-cpu.lock .venv/bin/python bench/keys_cost.py --n 30 > "$OUT/keys_cost.md"
