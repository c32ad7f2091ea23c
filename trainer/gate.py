"""The acceptance gate: does a trained adapter ship?

Pure function of the metrics and the config, so the decision is easy to test
and to explain in the report.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Check:
    name: str
    passed: bool
    value: float
    threshold: float
    detail: str


@dataclass
class GateDecision:
    ship: bool
    checks: list[Check] = field(default_factory=list)

    @property
    def reason(self) -> str:
        failed = [c.detail for c in self.checks if not c.passed]
        if failed:
            return "refused: " + "; ".join(failed)
        return "shipped: " + "; ".join(c.detail for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"ship": self.ship, "reason": self.reason, "checks": [asdict(c) for c in self.checks]}


def decide(base: dict[str, float], before: dict[str, float], after: dict[str, float], cfg: Any, cut_short: bool = False) -> GateDecision:
    """Apply the thresholds of ``cfg`` (a TrainerConfig).

    * locality: share of probes whose answer equals the *base* model's answer
      must be >= ``gate_min_locality``;
    * arithmetic: accuracy may fall at most ``gate_max_arithmetic_drop``
      percentage points below the base model's;
    * efficacy: must rise by at least ``gate_min_efficacy_gain`` points over the
      model the run started from (negative threshold disables the check);
    * retention: the earlier nights' facts (not trained on this run) still known must be
      at least ``gate_min_retention`` times the share the live adapter knew;
    * unlearned: at most ``gate_max_asserted`` of the retracted facts may still be
      asserted (their own sentence completed with the old value);
    * complete: training was not cut short by the time budget (the adapter would then
      depend on the machine's speed).

    ``after`` holds the metrics of the adapter as served (routed by its scope).
    """
    checks = []
    if cut_short:
        checks.append(Check("complete", False, 0.0, 1.0, "training was cut short by train_time_budget_s"))
    loc = after["locality"]
    checks.append(Check("locality", loc >= cfg.gate_min_locality, loc, cfg.gate_min_locality,
                        f"locality {loc:.3f} {'>=' if loc >= cfg.gate_min_locality else '<'} {cfg.gate_min_locality:.2f}"))
    drop = 100.0 * (base["arithmetic"] - after["arithmetic"])
    ok = drop <= cfg.gate_max_arithmetic_drop + 1e-9
    checks.append(Check("arithmetic", ok, drop, cfg.gate_max_arithmetic_drop,
                        f"arithmetic {100 * after['arithmetic']:.0f}% vs base {100 * base['arithmetic']:.0f}% "
                        f"(drop {drop:.0f} pts, allowed {cfg.gate_max_arithmetic_drop:g})"))
    if cfg.gate_min_efficacy_gain >= 0:
        gain = 100.0 * (after["efficacy"] - before["efficacy"])
        ok = gain >= cfg.gate_min_efficacy_gain - 1e-9
        checks.append(Check("efficacy", ok, gain, cfg.gate_min_efficacy_gain,
                            f"efficacy {100 * before['efficacy']:.0f}% -> {100 * after['efficacy']:.0f}% "
                            f"(gain {gain:+.0f} pts, required >= {cfg.gate_min_efficacy_gain:g})"))
    kept, was = after.get("retention"), before.get("retention")
    if kept is not None and was:
        ratio = kept / was
        ok = ratio >= cfg.gate_min_retention - 1e-9
        checks.append(Check("retention", ok, ratio, cfg.gate_min_retention,
                            f"earlier nights' facts {100 * was:.0f}% -> {100 * kept:.0f}% known "
                            f"(kept {ratio:.2f}, required >= {cfg.gate_min_retention:g})"))
    asserted = after.get("asserted")
    if asserted is not None:
        ok = asserted <= cfg.gate_max_asserted + 1e-9
        checks.append(Check("unlearned", ok, asserted, cfg.gate_max_asserted,
                            f"retracted facts still asserted {100 * asserted:.0f}% (allowed {100 * cfg.gate_max_asserted:.0f}%)"))
    return GateDecision(all(c.passed for c in checks), checks)
