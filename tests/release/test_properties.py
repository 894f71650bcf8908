"""Properties of the release planner over generated fleets (hypothesis).

Any waves, any mix of member behaviours (promote, promote slowly, roll back by analysis,
be held by a freeze, never see the change, be unreachable), either ``onFailure``, and a
release controller that dies between writing status and acting on random passes:

- a cluster is changed only once every earlier wave succeeded (soak included), and
  never more than ``maxParallel`` of a wave roll out at once;
- every change is in status before it is sent; after a halt no cluster is changed any
  more, except back to its previous revision (every changed one under ``rollbackAll``,
  under ``halt`` only a change a member's policy still holds);
- a member gets the new template at most once, and only ever goes back to the old one;
- without holds or partitions a release always finishes, and its outcome agrees with the
  members: Succeeded means every member is stable on the new revision; rollbackAll
  leaves every member it changed on its previous revision.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from controller.api.release_status import IN_FLIGHT
from controller.release.actions import RollBack, SetTemplate
from tests.release.world import Fleet, SimMember, make_release, revision, template

V1 = revision(template("shop:1"))
V2 = revision(template("shop:2"))
BEHAVIOURS = ("ok", "ok", "ok", "slow", "fail", "hold", "stuck", "down")
FINISHED = ("Succeeded", "Failed", "RolledBack")


@st.composite
def fleets(draw: Any) -> tuple[Fleet, frozenset[int]]:
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    waves, index = [], 0
    for number, size in enumerate(sizes):
        clusters = [f"c{index + i}" for i in range(size)]
        index += size
        wave: dict[str, Any] = {"name": f"w{number}", "clusters": clusters}
        soak = draw(st.sampled_from([0, 0, 5, 20]))
        if soak:
            wave["soak"] = f"{soak}s"
        parallel = draw(st.none() | st.integers(1, size))
        if parallel is not None:
            wave["maxParallel"] = parallel
        waves.append(wave)
    release = make_release(
        waves,
        on_failure=draw(st.sampled_from(["halt", "rollbackAll"])),
        clusterTimeout="60s",
        unreachableTimeout="20s",
    )
    members = {
        name: SimMember(
            name, draw(st.sampled_from(BEHAVIOURS)), promote_after=draw(st.integers(1, 4))
        )
        for name in release.spec.clusters()
    }
    crashes = draw(st.frozensets(st.integers(0, 120), max_size=8))
    return Fleet(release, members), crashes


def wave_index(fleet: Fleet, cluster: str) -> int:
    return next(i for i, w in enumerate(fleet.release.spec.waves) if cluster in w.clusters)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets())
def test_release_invariants(case: tuple[Fleet, frozenset[int]]) -> None:
    fleet, crashes = case
    spec = fleet.release.spec
    halted_before = False
    for step in range(400):
        before = fleet.release.status
        result = fleet.step(crash=step in crashes)
        status = result.status
        for action in result.actions:
            cluster = status.cluster(action.cluster)
            assert cluster is not None
            if isinstance(action, SetTemplate):
                # Status first: the change is recorded as asked before it is sent.
                assert cluster.phase in IN_FLIGHT and cluster.revision == action.revision
                assert not halted_before and status.phase in ("Progressing", "Waiting")
                # Only once every earlier wave succeeded.
                for earlier in spec.waves[: wave_index(fleet, action.cluster)]:
                    state = status.wave(earlier.name)
                    assert state is not None and state.phase == "Succeeded"
                    assert state.finished_at is not None and state.soak_until is not None
                    assert state.finished_at >= state.soak_until
            else:
                assert isinstance(action, RollBack) and cluster.phase == "RollingBack"
                # halt only withdraws a change a member's policy still holds.
                held = fleet.members[action.cluster].behaviour == "hold"
                assert spec.on_failure == "rollbackAll" or held
                assert action.revision == cluster.previous_revision == V1
        for wave in spec.waves:
            rolling = [
                c for c in wave.clusters if (s := status.cluster(c)) and s.phase in IN_FLIGHT
            ]
            assert len(rolling) <= wave.parallel
        halted_before = halted_before or status.phase in ("Failed", "RollingBack", "RolledBack")
        assert before is None or before.phase not in FINISHED or status.phase == before.phase
        if not result.active:
            break

    for name, member in fleet.members.items():
        assert member.changes in ([], [V2], [V2, V1]), (name, member.changes)
        if member.changes == [V2, V1]:
            assert spec.on_failure == "rollbackAll" or member.behaviour == "hold"
    final = fleet.release.status
    assert final is not None
    event(f"outcome {final.phase}, crashes {bool(crashes)}")
    behaviours = {m.behaviour for m in fleet.members.values()}
    if behaviours <= {"ok", "slow", "fail", "stuck"}:
        assert final.phase in FINISHED, final
    if final.phase == "Succeeded":
        assert all(
            m.revision == V2 and m.status["stableRevision"] == V2 for m in fleet.members.values()
        )
    if final.phase == "RolledBack":
        for name, member in fleet.members.items():
            cluster = final.cluster(name)
            assert cluster is not None
            if member.changes:
                assert member.revision == V1 and cluster.phase in ("RolledBack", "Failed")
    if final.phase in ("Failed", "RolledBack"):
        # Nothing past the wave that failed was ever changed.
        failed_waves = [
            wave_index(fleet, c.name) for c in final.clusters if c.reason and c.phase == "Failed"
        ] or [len(spec.waves)]
        first = min(failed_waves)
        for name, member in fleet.members.items():
            if wave_index(fleet, name) > first:
                assert member.changes == [], name
