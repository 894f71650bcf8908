"""Shard maths: a stable hash, an even split, and only what must move on a join or leave."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.sharding import assign, owned_by, shard_of

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
member_sets = st.sets(names, min_size=1, max_size=9)
shard_counts = st.integers(min_value=1, max_value=64)
# No per-example deadline: the suite runs on loaded machines, and these are not timed.
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def loads(assignment: dict[int, str], members: set[str]) -> list[int]:
    counted = Counter(assignment.values())
    return [counted.get(member, 0) for member in members]


def moved(before: dict[int, str], after: dict[int, str]) -> set[int]:
    return {shard for shard, owner in after.items() if before.get(shard) != owner}


def test_shard_of_is_stable_across_processes_and_in_range() -> None:
    # Fixed values: a change of hash would move every Rollout at upgrade time.
    assert shard_of("default/web", 16) == shard_of("default/web", 16)
    assert [shard_of(f"ns/r{i}", 8) for i in range(6)] == [
        shard_of(f"ns/r{i}", 8) for i in range(6)
    ]
    assert all(0 <= shard_of(f"ns/r{i}", 5) < 5 for i in range(200))
    assert shard_of("default/web", 1) == 0
    with pytest.raises(ValueError, match="at least one shard"):
        shard_of("default/web", 0)


def test_shard_of_spreads_rollouts() -> None:
    counted = Counter(shard_of(f"team-{i % 7}/app-{i}", 4) for i in range(3000))
    assert all(600 < n < 900 for n in counted.values()), counted


def test_no_members_no_assignment() -> None:
    assert assign(4, []) == {}


@SETTINGS
@given(shard_counts, member_sets)
def test_every_shard_has_one_live_owner_and_the_split_is_even(
    shards: int, members: set[str]
) -> None:
    assignment = assign(shards, members)
    assert sorted(assignment) == list(range(shards))
    assert set(assignment.values()) <= members
    counted = loads(assignment, members)
    assert max(counted) - min(counted) <= 1


@SETTINGS
@given(shard_counts, member_sets, st.randoms())
def test_deterministic_whatever_the_order_members_are_listed_in(
    shards: int, members: set[str], rnd: object
) -> None:
    listed = sorted(members)
    shuffled = list(listed)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert assign(shards, listed) == assign(shards, shuffled)
    current = assign(shards, listed)
    assert assign(shards, shuffled, current) == current


@SETTINGS
@given(shard_counts, member_sets, names)
def test_a_join_moves_only_shards_to_the_newcomer_and_only_its_share(
    shards: int, members: set[str], newcomer: str
) -> None:
    if newcomer in members:
        return
    before = assign(shards, members)
    after = assign(shards, members | {newcomer}, before)
    changed = moved(before, after)
    assert all(after[shard] == newcomer for shard in changed)
    assert len(changed) == shards // (len(members) + 1)
    counted = loads(after, members | {newcomer})
    assert max(counted) - min(counted) <= 1


@SETTINGS
@given(shard_counts, member_sets.filter(lambda m: len(m) >= 2), st.data())
def test_a_leave_moves_only_the_leavers_shards(
    shards: int, members: set[str], data: st.DataObject
) -> None:
    leaver = data.draw(st.sampled_from(sorted(members)))
    before = assign(shards, members)
    after = assign(shards, members - {leaver}, before)
    assert moved(before, after) == set(owned_by(before, leaver))
    counted = loads(after, members - {leaver})
    assert max(counted) - min(counted) <= 1


def settle(
    shards: int, members: set[str], current: dict[int, str], order: st.DataObject
) -> tuple[dict[int, str], int]:
    """Play the replicas' rounds: a holder that is not assigned its shard releases it
    (one shard at a time, in any order), a free shard is claimed by its assignee. Returns
    the settled holders and how many times a shard changed hands."""
    holders = dict(current)
    handovers = 0
    for _round in range(4 * shards + 4):
        target = assign(shards, members, holders)
        leaving = sorted(s for s, o in holders.items() if target[s] != o)
        free = sorted(s for s in range(shards) if s not in holders)
        if not leaving and not free:
            return holders, handovers
        if free:
            shard = order.draw(st.sampled_from(free))
            holders[shard] = target[shard]
            handovers += 1
        else:
            del holders[order.draw(st.sampled_from(leaving))]
    raise AssertionError(f"no settled assignment from {current} for {members}")


@SETTINGS
@given(shard_counts, member_sets, names, st.data())
def test_a_join_settles_with_only_the_newcomers_share_moving(
    shards: int, members: set[str], newcomer: str, order: st.DataObject
) -> None:
    # Shards move one release and one claim at a time (as Leases do), in any order; the
    # assignment must not change its mind on the way, so each moves once.
    if newcomer in members:
        return
    before = assign(shards, members)
    everyone = members | {newcomer}
    after, handovers = settle(shards, everyone, before, order)
    assert after == assign(shards, everyone, before)
    assert handovers == len(moved(before, after)) == shards // len(everyone)


@SETTINGS
@given(shard_counts, member_sets.filter(lambda m: len(m) >= 2), st.data())
def test_a_leave_settles_with_only_the_leavers_shards_moving(
    shards: int, members: set[str], order: st.DataObject
) -> None:
    leaver = order.draw(st.sampled_from(sorted(members)))
    before = assign(shards, members)
    rest = members - {leaver}
    current = {s: o for s, o in before.items() if o != leaver}
    after, handovers = settle(shards, rest, current, order)
    assert moved(before, after) == set(owned_by(before, leaver))
    assert handovers == len(owned_by(before, leaver))


@SETTINGS
@given(shard_counts, member_sets, st.dictionaries(st.integers(0, 70), names))
def test_holders_gone_or_out_of_range_are_ignored(
    shards: int, members: set[str], current: dict[int, str]
) -> None:
    assignment = assign(shards, members, current)
    assert sorted(assignment) == list(range(shards))
    assert set(assignment.values()) <= members
    counted = loads(assignment, members)
    assert max(counted) - min(counted) <= 1
