"""Shard maths (pure): which shard a Rollout is in, and which member owns each shard.

A Rollout's shard is a stable hash of ``namespace/name`` (BLAKE2b, never Python's
``hash``, which is salted per process) modulo the shard count, so every replica, and
every restart, puts a Rollout in the same shard.

Shards are given to the live members by rendezvous (highest-random-weight) hashing
with bounded load (``assign``):

- every member's load is ``floor(N/M)`` or ``ceil(N/M)`` (an even split within one);
- given who holds what now (``current``), a member keeps what it holds up to its share,
  and only the shards that must move do: those of a member that left, and the excess
  of a member over its share (a joining member takes exactly ``floor(N/M)`` shards, all
  from members above their new share). Which members get the ``ceil`` share is decided
  by their current load (the most loaded keep one more), so no shard moves between two
  members that both stay;
- a shard that moves goes to the member with spare share that ranks it highest
  (``weight(member, shard)``), so the same inputs give the same answer on every
  replica, whatever order they list the members in.

Replicas that see the same Leases compute the same assignment; while their views differ
they may disagree for a retry period, which costs time, never safety: a shard is acted
on only by the holder of its Lease (``controller.shards``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def shard_of(key: str, shards: int) -> int:
    """The shard of the Rollout ``namespace/name``, in ``[0, shards)``."""
    if shards < 1:
        raise ValueError(f"need at least one shard (got {shards})")
    return _digest(key) % shards


def weight(member: str, shard: int) -> int:
    """How much ``member`` wants ``shard``: the rendezvous weight."""
    return _digest(f"{member}\x00{shard}")


def assign(
    shards: int, members: Iterable[str], current: Mapping[int, str] | None = None
) -> dict[int, str]:
    """shard -> member for every shard in ``[0, shards)``; ``{}`` when no member lives.

    ``current`` (shard -> holder, as seen in the Leases) lets live holders keep what they
    hold up to their share; holders that are not in ``members`` count as gone.
    """
    if shards < 1:
        raise ValueError(f"need at least one shard (got {shards})")
    live = sorted(set(members))
    if not live:
        return {}
    held: dict[str, list[int]] = {member: [] for member in live}
    for shard, holder in sorted((current or {}).items()):
        if 0 <= shard < shards and holder in held:
            held[holder].append(shard)
    base, extra = divmod(shards, len(live))
    # The ``extra`` members holding most now get one shard more than the others: that
    # keeps the most shards where they are. Loads are counted up to ``base + 1`` (all
    # that a bigger share can keep), so a member handing back its excess one shard at a
    # time keeps its rank, and the answer does not change while shards are in transit.
    # Ties go by a hash of the name, not its order.
    by_load = sorted(live, key=lambda m: (-min(len(held[m]), base + 1), _digest(m), m))
    share = {member: base + (1 if rank < extra else 0) for rank, member in enumerate(by_load)}
    owner: dict[int, str] = {}
    for member in live:
        # Over its share, a member keeps the shards it ranks highest.
        mine = sorted(held[member], key=lambda s: -weight(member, s))
        for shard in mine[: share[member]]:
            owner[shard] = member
    spare = {
        member: share[member] - sum(1 for o in owner.values() if o == member) for member in live
    }
    for shard in range(shards):
        if shard in owner:
            continue
        best = max((m for m in live if spare[m] > 0), key=lambda m: (weight(m, shard), m))
        owner[shard] = best
        spare[best] -= 1
    return owner


def owned_by(assignment: Mapping[int, str], member: str) -> frozenset[int]:
    """The shards ``assignment`` gives ``member``."""
    return frozenset(shard for shard, owner in assignment.items() if owner == member)
