"""Analysis run keys: which entry of a Rollout's spec an analysis run stands for.

A run in ``status.analysisRuns`` is named by its key, written as a string on the wire
(``background``, ``step-2``, ``gate-50``, ``prePromotion``, ``postPromotion``,
``hook-preRollout``, ``hook-postPromotion``, ``hook-onAbort``). The strategies start
runs under these keys, the reconciler finds the templates or hooks a key stands for
(``analysis_ref``, ``hooks_of``), notifications and ``deployctl status`` describe them.
All of them go through ``RunKey`` so that the spelling lives here only.

>>> RunKey.parse("step-2"), str(RunKey.gate(50)), RunKey.parse("hook-onAbort").is_hook
(RunKey(kind=<RunKind.STEP: 'step'>, number=2, hook=None), 'gate-50', True)
>>> RunKey.parse("gate-50").describe(), BACKGROUND.describe()
('gate at 50%', 'background analysis')
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:  # only in annotations: the CLI imports this module without the models
    from controller.api import AnalysisRef, Rollout
    from controller.api.rollout import Hook

HookPoint = Literal["preRollout", "postPromotion", "onAbort"]
_HOOK_POINTS: tuple[str, ...] = get_args(HookPoint)


class RunKind(StrEnum):
    BACKGROUND = "background"
    STEP = "step"
    GATE = "gate"
    PRE_PROMOTION = "prePromotion"
    POST_PROMOTION = "postPromotion"
    HOOK = "hook"


_NUMBERED = (RunKind.STEP, RunKind.GATE)


@dataclass(frozen=True)
class RunKey:
    """A run key as a value. ``number`` is the step index or the gate's percent."""

    kind: RunKind
    number: int | None = None
    hook: HookPoint | None = None

    def __post_init__(self) -> None:
        if (self.kind in _NUMBERED) != (self.number is not None):
            raise ValueError(f"a {self.kind} run key needs a number exactly when numbered")
        if (self.kind is RunKind.HOOK) != (self.hook is not None):
            raise ValueError("a hook run key names its hook point, and only it does")

    # -- building ------------------------------------------------------------------

    @classmethod
    def step(cls, index: int) -> RunKey:
        return cls(RunKind.STEP, number=index)

    @classmethod
    def gate(cls, percent: int) -> RunKey:
        return cls(RunKind.GATE, number=percent)

    @classmethod
    def for_hook(cls, point: HookPoint) -> RunKey:
        return cls(RunKind.HOOK, hook=point)

    @classmethod
    def parse(cls, text: str) -> RunKey:
        """The key written as ``text``; ValueError for a key this version does not know.

        >>> RunKey.parse("step-x")
        Traceback (most recent call last):
        ...
        ValueError: unknown analysis run key 'step-x'
        """
        kind, dash, rest = text.partition("-")
        try:
            if not dash:
                if kind in (RunKind.STEP, RunKind.GATE, RunKind.HOOK):
                    raise ValueError(text)
                return cls(RunKind(kind))
            if kind == RunKind.HOOK and rest in _HOOK_POINTS:
                return cls.for_hook(rest)  # type: ignore[arg-type]
            if kind in _NUMBERED and rest.isdigit() and str(int(rest)) == rest:
                return cls(RunKind(kind), number=int(rest))
        except ValueError:
            pass
        raise ValueError(f"unknown analysis run key {text!r}")

    # -- reading -------------------------------------------------------------------

    def __str__(self) -> str:
        if self.kind is RunKind.HOOK:
            return f"hook-{self.hook}"
        if self.number is not None:
            return f"{self.kind}-{self.number}"
        return str(self.kind)

    @property
    def is_hook(self) -> bool:
        return self.kind is RunKind.HOOK

    def describe(self) -> str:
        """The run as a person names it, for messages and ``deployctl status``."""
        if self.kind is RunKind.STEP:
            return f"step {self.number} analysis"
        if self.kind is RunKind.GATE:
            return f"gate at {self.number}%"
        if self.kind is RunKind.HOOK:
            return f"{self.hook} hooks"
        return {
            RunKind.BACKGROUND: "background analysis",
            RunKind.PRE_PROMOTION: "pre-promotion analysis",
            RunKind.POST_PROMOTION: "post-promotion analysis",
        }[self.kind]


BACKGROUND = RunKey(RunKind.BACKGROUND)
PRE_PROMOTION = RunKey(RunKind.PRE_PROMOTION)
POST_PROMOTION = RunKey(RunKind.POST_PROMOTION)
HOOK_PRE_ROLLOUT = RunKey.for_hook("preRollout")
HOOK_POST_PROMOTION = RunKey.for_hook("postPromotion")
HOOK_ON_ABORT = RunKey.for_hook("onAbort")


def analysis_ref(rollout: Rollout, key: RunKey) -> AnalysisRef | None:
    """The templates an analysis run stands for in this spec (None: gone, or a hook run)."""
    spec, strategy = rollout.spec, rollout.spec.strategy
    if key.kind is RunKind.BACKGROUND:
        return spec.analysis
    if key.kind is RunKind.STEP and strategy.canary is not None:
        steps = strategy.canary.steps
        index = key.number if key.number is not None else -1
        return steps[index].analysis if 0 <= index < len(steps) else None
    if key.kind is RunKind.GATE and strategy.rolling is not None:
        return next(
            (g.analysis for g in strategy.rolling.gates if g.at_percent == key.number), None
        )
    if strategy.blue_green is not None:
        if key.kind is RunKind.PRE_PROMOTION:
            return strategy.blue_green.pre_promotion_analysis
        if key.kind is RunKind.POST_PROMOTION:
            return strategy.blue_green.post_promotion_analysis
    return None


def hooks_of(rollout: Rollout, key: RunKey) -> list[Hook]:
    """The hooks a hook run stands for; [] for other runs or when the spec has none."""
    hooks = rollout.spec.hooks
    if hooks is None or key.hook is None:
        return []
    return {
        "preRollout": hooks.pre_rollout,
        "postPromotion": hooks.post_promotion,
        "onAbort": hooks.on_abort,
    }[key.hook]
