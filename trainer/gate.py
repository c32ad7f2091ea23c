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


def decide(base: dict[str, float], before: dict[str, float], after: dict[str, float], cfg: Any) -> GateDecision:
    """Apply the thresholds of ``cfg`` (a TrainerConfig).

    * locality: share of probes whose answer equals the *base* model's answer
      must be >= ``gate_min_locality``;
    * arithmetic: accuracy may fall at most ``gate_max_arithmetic_drop``
      percentage points below the base model's;
    * efficacy: must rise by at least ``gate_min_efficacy_gain`` points over the
      model the run started from (negative threshold disables the check).
    """
    checks = []
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
    return GateDecision(all(c.passed for c in checks), checks)
