"""SIGKILL the controller at random moments while canary, blue-green and rolling
rollouts (healthy and broken) are in flight; every rollout must still reach the right
end state, without a step repeated or skipped, a weight above its step's, or a broken
revision ever promoted.

Small setting (``make test``): one round, at least 5 kills. ``DEPLOYCTL_RELIABILITY=large``:
rounds until at least 50 kills. The test prints ``kills survived / kills``.

The kill times come from a seed printed before anything else, so a failing run keeps it
in its captured output; ``DEPLOYCTL_CRASH_SEED=<seed>`` runs the same kill schedule again
(the moments a kill lands still depend on the machine's speed).
"""

from __future__ import annotations

import os
import random
import threading
from typing import Any

from tests.integration.harness import Cluster
from tests.reliability.conftest import LARGE
from tests.reliability.scenario import CANARY_STEPS, Fleet, Sampler, max_weight_allowed

MIN_KILLS = 50 if LARGE else 5
SEED_ENV = "DEPLOYCTL_CRASH_SEED"


class Killer:
    """Kills the running controller every 0.5-3 s and starts a new one at once."""

    def __init__(self, start: Any, current: Any, *, seed: int) -> None:
        self.start_controller = start
        self.random = random.Random(seed)
        self.kills = 0
        self.current = current
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Killer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(self.random.uniform(0.5, 3.0)):
            self.current.kill()
            self.kills += 1
            self.current = self.start_controller()


def step_event_counts(cluster: Cluster) -> dict[tuple[str, str, str], int]:
    return {
        (e.involved_object.name, e.reason, e.message): e.count or 1
        for e in cluster.events()
        if e.reason in ("StepStarted", "WeightSet")
    }


def test_rollouts_survive_random_controller_kills(
    cluster: Cluster, start_controller: Any, traffic: Any
) -> None:
    seed = int(os.environ.get(SEED_ENV) or random.randrange(1 << 30))
    print(f"\ncrash injection seed {seed} (replay: {SEED_ENV}={seed})", flush=True)
    kills = survived = 0
    rounds = 0
    fleet = Fleet(cluster, traffic)
    controller = start_controller()
    fleet.start()
    while kills < MIN_KILLS:
        rounds += 1
        version = f"v{rounds + 1}"
        for member in fleet.members:  # the previous round's end state is this one's start
            if member.new and not member.broken:
                member.stable = member.new
            member.new = ""
        before = step_event_counts(cluster)
        sampler = Sampler(cluster, fleet.members).start()
        with Killer(start_controller, controller, seed=seed + rounds) as killer:
            fleet.roll(version)
            statuses = fleet.settled(timeout=180)
        sampler.stop()
        controller = killer.current
        kills += killer.kills
        fleet.verify(statuses)
        assert not sampler.violations, sampler.violations
        for member in fleet.members:
            if member.kind == "canary" and not member.broken:
                # Each setWeight step's share of the pods was seen (25% of 2 pods is 50%).
                steps = {
                    max_weight_allowed(index)
                    for index, step in enumerate(CANARY_STEPS)
                    if "setWeight" in step
                }
                assert steps <= sampler.weights_seen.get(member.name, set()), (
                    member.name,
                    sampler.weights_seen,
                )
        survived += killer.kills  # every kill of this round was followed by a correct end
        # No step repeated: within this round each step's Event was recorded once
        # (messages repeat across rounds, so compare with the counts before it).
        after = step_event_counts(cluster)
        repeated = {
            k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) > 1
        }
        assert not repeated, repeated
    print(
        f"crash injection (seed {seed}): kills survived {survived} / kills {kills}, "
        f"{rounds} round(s), {len(fleet.members)} rollouts"
    )
    assert survived == kills >= MIN_KILLS
