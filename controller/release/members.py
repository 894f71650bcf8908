"""The release controller's only door to member clusters.

``MemberClients`` builds one ``controller.kube.Kube`` per ClusterTarget from the
kubeconfig in its Secret (checked by ``credentials.py`` first), caches it, and reads or
changes many members at once on a small thread pool:

- every read has its own short timeouts and at most two attempts (the adapter's
  bounded retry), and the pass waits for all of them at most ``read_timeout`` seconds:
  a member that hangs (a partition, a stopped apiserver) is "no answer" for this pass
  while the others are read and acted on as usual;
- a member whose previous read is still hanging is not asked again until it returns,
  so a partition never piles up threads;
- clients are rebuilt when the Secret or the ClusterTarget changes (checked every
  ``ttl`` seconds), so rotated credentials are picked up without a restart.

``MemberCluster`` holds the three calls the release controller makes in a member, which
are all the member Role must grant (``controller/rbac.py``): get and patch the Rollout,
list its ReplicaSets (the exact template of the revision a rollback returns to).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from controller.api import reasons as r
from controller.api.release import ClusterTarget, RolloutRef
from controller.kube import (
    Conflict,
    Forbidden,
    Kube,
    KubeconfigError,
    KubeError,
    NotFound,
    RetryPolicy,
    merge_patch,
)
from controller.metrics import RELEASE_MEMBER_READS
from controller.names import REVISION_LABEL, ROLLOUT_LABEL
from controller.release import credentials
from controller.release.actions import Action, RollBack, SetTemplate
from controller.release.observe import (
    MemberRollout,
    Observation,
    ReadFailure,
    template_revision,
    unreachable,
)
from controller.resources import saved_template

log = structlog.stdlib.get_logger(__name__)

# A member read gives up quickly: the pass must go on with the others.
MEMBER_RETRY = RetryPolicy(attempts=2, initial=0.2, maximum=1.0)
MEMBER_CONNECT_TIMEOUT = 3.0
MEMBER_REQUEST_TIMEOUT = 5.0
WRITE_ATTEMPTS = 4


class ChangedMeanwhile(Exception):
    """The member's template is neither what the plan saw nor what it asks for."""


class SecretReader(Protocol):
    def read_secret(self, namespace: str, name: str) -> dict[str, str]: ...


def default_factory(config: Mapping[str, Any], context: str | None) -> Kube:
    return Kube.from_kubeconfig_dict(
        config,
        context,
        retry=MEMBER_RETRY,
        request_timeout=MEMBER_REQUEST_TIMEOUT,
        connect_timeout=MEMBER_CONNECT_TIMEOUT,
    )


class MemberCluster:
    """One member cluster, through the Kubernetes adapter."""

    def __init__(self, name: str, kube: Kube) -> None:
        self.name = name
        self.kube = kube

    def read(self, rollout: RolloutRef) -> Observation:
        try:
            return MemberRollout(self.kube.get_rollout(rollout.namespace, rollout.name))
        except NotFound as exc:
            return ReadFailure(
                r.ROLLOUT_NOT_FOUND,
                f"no Rollout {rollout} in cluster {self.name} ({exc.message})",
            )
        except Forbidden as exc:
            return ReadFailure(
                r.CLUSTER_FORBIDDEN,
                f"cluster {self.name} refuses the release controller: {exc.message}; grant "
                "the member Role (manifests/member/) to the ClusterTarget's credentials",
            )
        except KubeError as exc:
            return unreachable(exc.message)

    def set_template(self, rollout: RolloutRef, action: SetTemplate) -> None:
        """The new template, only over the one the plan saw (re-read on each conflict)."""
        self._write(
            rollout,
            wanted=action.revision,
            expected=action.expected_revision,
            template=lambda: action.template,
            annotations=action.annotations,
        )

    def roll_back(self, rollout: RolloutRef, action: RollBack) -> None:
        """The template ``action.revision``'s ReplicaSet was made from, fast-tracked."""

        def template() -> dict[str, Any]:
            selector = f"{ROLLOUT_LABEL}={rollout.name},{REVISION_LABEL}={action.revision}"
            found = self.kube.list_replicasets(rollout.namespace, selector)
            if not found:
                raise ChangedMeanwhile(
                    f"revision {action.revision} has no ReplicaSet left in {self.name}"
                )
            return saved_template(found[0])

        self._write(
            rollout,
            wanted=action.revision,
            expected=action.expected_revision,
            template=template,
            annotations=action.annotations,
        )

    def _write(
        self,
        rollout: RolloutRef,
        *,
        wanted: str,
        expected: str | None,
        template: Callable[[], dict[str, Any]],
        annotations: Mapping[str, str | None],
    ) -> None:
        for _attempt in range(WRITE_ATTEMPTS):
            current = self.kube.get_rollout(rollout.namespace, rollout.name)
            spec = current.get("spec") or {}
            revision = template_revision(spec.get("template") or {})
            if revision == wanted:
                return  # sent before (a restarted controller, a retried pass)
            if revision != expected:
                raise ChangedMeanwhile(
                    f"the template in {self.name} is now revision {revision}, not {expected}"
                )
            desired = {**spec, "template": template()}
            try:
                self.kube.patch_rollout(
                    rollout.namespace,
                    rollout.name,
                    {
                        "metadata": {"annotations": dict(annotations)},
                        "spec": merge_patch(spec, desired),
                    },
                    resource_version=current["metadata"]["resourceVersion"],
                )
                return
            except Conflict:
                continue  # the member's operator wrote status meanwhile: read again
        raise ChangedMeanwhile(f"the Rollout in {self.name} kept changing ({WRITE_ATTEMPTS} tries)")

    def close(self) -> None:
        self.kube.close()


@dataclass
class _Cached:
    member: MemberCluster
    fingerprint: str
    checked_at: float


@dataclass(frozen=True)
class ActionResult:
    cluster: str
    action: Action
    error: str | None


class MemberClients:
    """Clients for the ClusterTargets of every Release, and reads of many at once."""

    def __init__(
        self,
        secrets: SecretReader,
        *,
        factory: Callable[[Mapping[str, Any], str | None], Kube] = default_factory,
        read_timeout: float = 4.0,
        write_timeout: float = 20.0,
        ttl: float = 60.0,
        workers: int = 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.secrets = secrets
        self.factory = factory
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.ttl = ttl
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="member")
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], _Cached] = {}
        self._building: dict[tuple[str, str], threading.Lock] = {}
        # (namespace, release, cluster) -> the read in flight and when it was sent.
        self._pending: dict[tuple[str, str, str], tuple[Future[Observation], float]] = {}

    # ------------------------------------------------------------------ clients

    def member(self, namespace: str, target: ClusterTarget) -> MemberCluster:
        """The cached client for ``target``; rebuilt when its Secret or spec changed."""
        key = (namespace, str(target.metadata.name))
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        with building:  # one refresh per target at a time: no client built twice
            return self._member(key, target)

    def _member(self, key: tuple[str, str], target: ClusterTarget) -> MemberCluster:
        namespace, name = key
        with self._lock:
            cached = self._cache.get(key)
        now = self.clock()
        if cached is not None and now - cached.checked_at < self.ttl:
            return cached.member
        ref = target.spec.kubeconfig_secret_ref
        try:
            data = self.secrets.read_secret(namespace, ref.name)
        except NotFound:
            raise credentials.CredentialsError(
                f"ClusterTarget {name}: no Secret {ref.name!r} in namespace {namespace}"
            ) from None
        if ref.key not in data:
            raise credentials.CredentialsError(
                f"ClusterTarget {name}: Secret {ref.name!r} has no key {ref.key!r}"
            )
        fingerprint = hashlib.sha256(
            json.dumps([data[ref.key], target.spec.to_dict()], sort_keys=True).encode()
        ).hexdigest()
        if cached is not None and cached.fingerprint == fingerprint:
            cached.checked_at = now
            return cached.member
        config = credentials.parse(data[ref.key])
        try:
            credentials.check(config, target.spec.context)
        except credentials.CredentialsError as exc:
            raise credentials.CredentialsError(f"ClusterTarget {name}: {exc}") from None
        member = MemberCluster(name, self.factory(config, target.spec.context))
        with self._lock:
            old = self._cache.get(key)
            self._cache[key] = _Cached(member, fingerprint, now)
        if old is not None:
            old.member.close()
        log.info("member cluster client ready", cluster=name, namespace=namespace)
        return member

    # ------------------------------------------------------------------ reads

    def read_all(
        self,
        namespace: str,
        targets: Mapping[str, ClusterTarget | None],
        rollout: RolloutRef,
        *,
        release: str = "",
    ) -> dict[str, Observation]:
        """Every named cluster's Rollout, read concurrently; at most ``read_timeout`` s.

        ``release`` names who reads: one Release's hanging read never blocks another's.
        """
        started = self.clock()
        futures: dict[str, Future[Observation]] = {}
        out: dict[str, Observation] = {}
        with self._lock:  # reads that returned after their pass gave up on them
            for key in [k for k, (f, _) in self._pending.items() if f.done()]:
                del self._pending[key]
        for cluster, target in targets.items():
            key = (namespace, release, cluster)
            with self._lock:
                pending = self._pending.get(key)
            if pending is not None and not pending[0].done():
                waited = started - pending[1]
                out[cluster] = unreachable(
                    f"no answer to the previous read, sent {waited:.0f} s ago"
                )
                continue
            if target is None:
                out[cluster] = unreachable(f"no ClusterTarget {cluster} in namespace {namespace}")
                continue
            future = self._pool.submit(self._read_one, namespace, target, rollout)
            with self._lock:
                self._pending[key] = (future, started)
            futures[cluster] = future
        done, _late = wait(list(futures.values()), timeout=self.read_timeout)
        for cluster, future in futures.items():
            if future in done:
                out[cluster] = future.result()
                with self._lock:
                    self._pending.pop((namespace, release, cluster), None)
            else:
                out[cluster] = unreachable(f"no answer within {self.read_timeout:g} s")
        for cluster, observation in out.items():
            outcome = "ok" if isinstance(observation, MemberRollout) else "unreachable"
            if isinstance(observation, ReadFailure) and observation.permanent:
                outcome = "refused"
            RELEASE_MEMBER_READS.labels(cluster=f"{namespace}/{cluster}", outcome=outcome).inc()
        return out

    def _read_one(self, namespace: str, target: ClusterTarget, rollout: RolloutRef) -> Observation:
        try:
            return self.member(namespace, target).read(rollout)
        except (credentials.CredentialsError, KubeconfigError) as exc:
            return unreachable(str(exc))
        except KubeError as exc:  # reading the Secret in the management cluster
            return unreachable(f"cannot read the credentials: {exc.message}")
        except Exception as exc:  # never let one member's surprise stop the others
            log.exception("reading a member cluster failed", cluster=target.metadata.name)
            return unreachable(f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ writes

    def act(
        self,
        namespace: str,
        targets: Mapping[str, ClusterTarget | None],
        rollout: RolloutRef,
        actions: Sequence[Action],
    ) -> list[ActionResult]:
        """Send the plan's changes, concurrently; a failure is reported, never raised."""
        futures = {
            self._pool.submit(self._act_one, namespace, targets.get(a.cluster), rollout, a): a
            for a in actions
        }
        done, _late = wait(list(futures), timeout=self.write_timeout)
        results: list[ActionResult] = []
        for future, action in futures.items():
            if future in done:
                results.append(ActionResult(action.cluster, action, future.result()))
            else:
                results.append(
                    ActionResult(
                        action.cluster, action, f"no answer within {self.write_timeout:g} s"
                    )
                )
        return results

    def _act_one(
        self,
        namespace: str,
        target: ClusterTarget | None,
        rollout: RolloutRef,
        action: Action,
    ) -> str | None:
        if target is None:
            return f"no ClusterTarget {action.cluster} in namespace {namespace}"
        try:
            member = self.member(namespace, target)
            if isinstance(action, SetTemplate):
                member.set_template(rollout, action)
            else:
                member.roll_back(rollout, action)
        except (credentials.CredentialsError, KubeconfigError, ChangedMeanwhile) as exc:
            return str(exc)
        except KubeError as exc:
            return exc.message
        except Exception as exc:
            log.exception("changing a member cluster failed", cluster=action.cluster)
            return f"{type(exc).__name__}: {exc}"
        return None

    def forget(self, namespace: str, keep: set[str]) -> None:
        """Drop the clients of ClusterTargets that no longer exist in ``namespace``."""
        with self._lock:
            gone = [k for k in self._cache if k[0] == namespace and k[1] not in keep]
            dropped = [self._cache.pop(k) for k in gone]
            for key in gone:
                self._building.pop(key, None)
        for cached in dropped:
            cached.member.close()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            cached = list(self._cache.values())
            self._cache.clear()
        for entry in cached:
            entry.member.close()
