"""Baseline pods for a canary by replica share: pure arithmetic, no state. (Behind a
traffic router the baseline is not taken out of the stable's pods: ``canary.py`` gives
it as many as the canary on top, and the router its own backend.)

Called by ``canary.py`` when ``canary.baseline.enabled``. A baseline is fresh pods of the
stable revision started beside the canary, as many as it has, so that a comparison
(``compare.against: baseline``) sees two revisions of the same age under the same share
of traffic: long-running stable pods differ from new ones (warm caches, JIT, leaked
memory) in ways that have nothing to do with the code being released.

The baseline's pods are taken out of the stable's, not added on top: the rollout keeps
``replicas`` pods in all, so the canary's share of the traffic is exactly the weight it
has without a baseline, the baseline gets the same share, and the moves stay within
maxSurge / maxUnavailable like any other (``scaling.converge``, the baseline least
important: it grows last and shrinks first). The stable keeps at least one pod, so at
a weight above half the baseline has fewer pods than the canary (10 replicas at 60%:
canary 6, baseline 3, stable 1). At 0% (an abort) and 100% (promotion) there is none.

Worked examples (replicas = 10):

=======  ======  ========  ======
weight   canary  baseline  stable
=======  ======  ========  ======
10       1       1         8
25       2       2         6
50       5       4         1
90       9       0         1
=======  ======  ========  ======

Its pods carry the stable's template with their own revision label value
(``baseline_revision``: the stable's hash and ``-baseline``) and
``deployctl.io/role: baseline``, so their metrics are their own series.
"""

from __future__ import annotations

from controller.names import BASELINE_SUFFIX

__all__ = ["BASELINE_SUFFIX", "baseline_revision", "baseline_split", "is_baseline"]


def baseline_revision(stable: str) -> str:
    """The revision label value of the baseline of ``stable``.

    >>> baseline_revision("6f7c9d")
    '6f7c9d-baseline'
    """
    return f"{stable}{BASELINE_SUFFIX}"


def is_baseline(revision: str) -> bool:
    """Whether a revision label value names a baseline.

    >>> is_baseline("6f7c9d-baseline"), is_baseline("6f7c9d")
    (True, False)
    """
    return revision.endswith(BASELINE_SUFFIX)


def baseline_split(canary: int, stable: int) -> tuple[int, int]:
    """(baseline, stable) pods out of the stable's ``stable`` pods beside ``canary``
    canary pods: the baseline as large as the canary, the stable keeping one pod.

    >>> baseline_split(1, 9), baseline_split(5, 5), baseline_split(9, 1)
    ((1, 8), (4, 1), (0, 1))
    >>> baseline_split(0, 10), baseline_split(10, 0), baseline_split(1, 1)
    ((0, 10), (0, 0), (0, 1))
    """
    if canary <= 0 or stable <= 1:
        return 0, max(stable, 0)
    baseline = min(canary, stable - 1)
    return baseline, stable - baseline
