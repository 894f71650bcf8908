"""Seeded repetitions of the comparison judge on simulated scrapes: how often it fails an
identical canary (false positives) and passes one 20% slower (false negatives).

The samples imitate what the sandbox's Prometheus gives the judge for the latency query
of ``tests/integration/test_baseline_judge.py``: each revision serves 10 requests a
second with log-normal latencies (median 50 ms, sigma 0.25, as ``DEMO_LATENCY_SPREAD``),
and one sample a second is the mean latency of the last 3 s of requests, so consecutive
samples share two thirds of their requests (they are not independent, as real scrapes
of a rate window are not). Pure: numpy's seeded generator and the judge itself.

    .venv/bin/python -m tests.analysis.judge_rates     # prints the table of docs/analysis.md
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.analysis.compare import judge_samples
from controller.api.analysis import Compare

MEDIAN = 0.05
SPREAD = 0.25
RATE = 10  # requests a second per revision
WINDOW = 3  # seconds of requests in one sample
SAMPLES = 60  # one a second: a one-minute step


@dataclass(frozen=True)
class Rates:
    runs: int
    false_positives: int
    false_negatives: int
    inconclusive: int


def scrapes(seed: int, factor: float, *, overlap: bool = True) -> list[float]:
    """One revision's samples: windowed mean latencies, ``factor`` times the median;
    one a second over the last ``WINDOW`` seconds (``overlap``), or one per window."""
    import numpy as np

    generator = np.random.default_rng(seed)
    stride = 1 if overlap else WINDOW
    seconds = (SAMPLES - 1) * stride + WINDOW
    latencies = MEDIAN * factor * np.exp(generator.normal(0.0, SPREAD, size=(seconds, RATE)))
    sums = latencies.sum(axis=1)
    return [
        float(sums[i * stride : i * stride + WINDOW].sum() / (WINDOW * RATE))
        for i in range(SAMPLES)
    ]


def measure(
    compare: Compare, *, runs: int = 30, slower: float = 1.2, overlap: bool = True
) -> Rates:
    """``runs`` seeded repetitions of an identical canary and of a ``slower`` one."""
    false_positives = false_negatives = inconclusive = 0
    for run in range(runs):
        baseline = scrapes(1000 + run, 1.0, overlap=overlap)
        same = judge_samples(
            "latency", scrapes(2000 + run, 1.0, overlap=overlap), baseline, compare
        )
        slow = judge_samples(
            "latency", scrapes(3000 + run, slower, overlap=overlap), baseline, compare
        )
        false_positives += same.verdict == "Failed"
        false_negatives += slow.verdict == "Successful"
        inconclusive += (same.verdict == "Inconclusive") + (slow.verdict == "Inconclusive")
    return Rates(runs, false_positives, false_negatives, inconclusive)


def judge(confidence: float, tolerance: float) -> Compare:
    return Compare(confidence=confidence, tolerance=tolerance, min_samples=40)


SETTINGS: tuple[tuple[str, Compare, bool, int], ...] = (
    ("0.98, tolerance 0.1, overlapping windows", judge(0.98, 0.1), True, 30),
    ("0.98, tolerance 0, overlapping windows", judge(0.98, 0.0), True, 30),
    ("0.98, tolerance 0, overlapping windows", judge(0.98, 0.0), True, 300),
    ("0.98, tolerance 0, independent windows", judge(0.98, 0.0), False, 300),
    ("0.98, tolerance 0.25, overlapping windows", judge(0.98, 0.25), True, 30),
)


def main() -> None:
    print("| confidence, tolerance, samples | runs | identical failed | 20% slower passed |")
    print("| --- | --- | --- | --- |")
    for label, compare, overlap, runs in SETTINGS:
        rates = measure(compare, runs=runs, overlap=overlap)
        print(
            f"| {label} | {rates.runs} | {rates.false_positives} "
            f"({100 * rates.false_positives / runs:.1f}%) | {rates.false_negatives} "
            f"({100 * rates.false_negatives / runs:.1f}%) |"
        )


if __name__ == "__main__":
    main()
