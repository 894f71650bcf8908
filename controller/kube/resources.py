"""``Kube``: typed reads and writes of the objects deployctl works with.

Callers: ``controller.informer`` (list/watch), ``controller.leader`` (Leases), the
reconciler (Rollout status and patches, ReplicaSets, Service selectors, the traffic
routers' HTTPRoutes, VirtualServices, DestinationRules and canary Ingresses, Events;
StatefulSet partitions and templates, DaemonSet update strategies and templates, pod
deletions by UID for the StatefulSet and DaemonSet canaries),
the analysis providers (check Jobs, ConfigMaps, Secrets) and the CLI. They get plain
JSON dicts in and out, small typed methods, and the errors of
``controller.kube.errors``; nothing of the client library leaks past this package.

Every method sends through ``Transport`` (one retry policy, one error mapping). The
operator's RBAC is derived from the requests these methods send
(``tests/manifests/rbac_from_code.py``), so each names its kind constant and verb.
"""

from __future__ import annotations

import base64
import copy
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s

from controller.kube.bodies import owned
from controller.kube.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    KubeError,
    NamespaceTerminating,
    NotFound,
    Permanent,
)
from controller.kube.events import EventCounts, event_name, event_text, new_event
from controller.kube.kinds import (
    ADMISSION_BINDINGS,
    ADMISSION_POLICIES,
    CONFIGMAPS,
    CONTROLLER_REVISIONS,
    DAEMONSETS,
    DEPLOYMENTS,
    DESTINATION_RULES,
    EVENTS,
    HTTPROUTES,
    INGRESSES,
    JOBS,
    LEASES,
    PODS,
    RELEASES,
    REPLICASETS,
    ROLLOUTS,
    SECRETS,
    SELF_SUBJECT_ACCESS_REVIEWS,
    SELF_SUBJECT_REVIEWS,
    SERVICES,
    STATEFULSETS,
    VIRTUAL_SERVICES,
    KindRef,
    Obj,
)
from controller.kube.kubeconfig import (
    client_from_kubeconfig,
    client_from_kubeconfig_dict,
    client_in_cluster,
)
from controller.kube.transport import (
    DEFAULT_RETRY,
    NO_RETRY,
    RequestCounter,
    RetryPolicy,
    Transport,
    count_in_registry,
)
from controller.lazylog import lazy_logger
from controller.times import timestamp

log = lazy_logger(__name__)

JSON_PATCH = "application/json-patch+json"


def _spec_replacement(current: Mapping[str, Any], fields: Mapping[str, Any]) -> list[Obj]:
    """A JSON patch replacing ``spec.<field>`` for each of ``fields``, applied only while
    ``metadata.generation`` is still ``current``'s (a spec change bumps it)."""
    test: Obj = {"op": "test", "path": "/metadata/generation"}
    test["value"] = current["metadata"]["generation"]
    return [test] + [
        {"op": "replace", "path": f"/spec/{field}", "value": copy.deepcopy(dict(value))}
        for field, value in fields.items()
    ]


def _pointer(key: str) -> str:
    """``key`` as one JSON-pointer segment (RFC 6901: ``~`` and ``/`` escaped)."""
    return key.replace("~", "~0").replace("/", "~1")


def _generation_conflict(error: Permanent, current: Mapping[str, Any], now: Obj) -> KubeError:
    """A 422 whose cause is our ``test`` of the generation (the object's generation is no
    longer the one read) as the Conflict it is; any other error as it is."""
    meta = current["metadata"]
    generation = (now.get("metadata") or {}).get("generation")
    if error.code == 422 and generation != meta["generation"]:
        return Conflict(
            f"{error.resource} {meta['namespace']}/{meta['name']} changed since generation "
            f"{meta['generation']} was read (now {generation}); read it again",
            verb=error.verb,
            resource=error.resource,
            code=409,
            reason="Conflict",
        )
    return error


class Kube(Transport):
    """Typed access to the API objects deployctl reads and writes."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        request_timeout: float = 30.0,
        connect_timeout: float = 5.0,
        instance: str = "",
        sleep: Callable[[float], None] = time.sleep,
        utcnow: Callable[[], datetime] = lambda: datetime.now(UTC),
        count_request: RequestCounter = count_in_registry,
    ) -> None:
        super().__init__(
            api_client,
            retry=retry,
            request_timeout=request_timeout,
            connect_timeout=connect_timeout,
            sleep=sleep,
            count_request=count_request,
        )
        self.instance = instance
        self._utcnow = utcnow
        self._event_counts = EventCounts()

    @classmethod
    def from_kubeconfig(
        cls, path: str | None = None, context: str | None = None, **kwargs: Any
    ) -> Kube:
        """From a kubeconfig file (``None``: ``$KUBECONFIG`` or ``~/.kube/config``)."""
        return cls(client_from_kubeconfig(path, context), **kwargs)

    @classmethod
    def from_kubeconfig_dict(
        cls, config: Mapping[str, Any], context: str | None = None, **kwargs: Any
    ) -> Kube:
        """From a kubeconfig already read and checked (a member cluster's)."""
        return cls(client_from_kubeconfig_dict(config, context), **kwargs)

    @classmethod
    def in_cluster(cls, **kwargs: Any) -> Kube:
        """From the pod's service account (token re-read as it rotates)."""
        return cls(client_in_cluster(), **kwargs)

    def _create_owned(
        self, kind: KindRef, namespace: str, body: Mapping[str, Any], owner: Mapping[str, Any]
    ) -> Obj | None:
        """Create ``body`` controlled by ``owner``; None when the name is taken already
        (its names are derived, so an earlier pass, perhaps of a controller since
        restarted, made it)."""
        try:
            return self._request(
                "create",
                kind,
                method="POST",
                namespace=namespace,
                body=owned(kind, namespace, body, owner=owner),
            )
        except AlreadyExists:
            return None

    # ------------------------------------------------------------------ rollouts

    def get_rollout(self, namespace: str, name: str) -> Obj:
        return self.get(ROLLOUTS, namespace, name)

    def patch_rollout(
        self, namespace: str, name: str, patch: Mapping[str, Any], *, resource_version: str
    ) -> Obj:
        """Merge-patch spec/metadata (e.g. consume a promote annotation) with an RV check."""
        return self._merge_patch(
            ROLLOUTS, namespace, name, patch, resource_version=resource_version
        )

    def patch_rollout_status(
        self,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> Obj:
        """Merge-patch ``status`` through the status subresource (``None`` deletes a key).

        Only the status changes: the apiserver ignores spec here and does not bump
        ``metadata.generation``. Build ``status`` with ``merge_patch(old, new)``.
        """
        return self._merge_patch(
            ROLLOUTS,
            namespace,
            name,
            {"status": dict(status)},
            resource_version=resource_version,
            subresource="status",
        )

    # ------------------------------------------------------------------ replicasets

    def create_replicaset(
        self, namespace: str, body: Mapping[str, Any], *, owner: Mapping[str, Any]
    ) -> Obj:
        """Create a ReplicaSet controlled by ``owner`` (garbage-collected with it)."""
        replicaset = owned(REPLICASETS, namespace, body, owner=owner)
        return self._request(
            "create", REPLICASETS, method="POST", namespace=namespace, body=replicaset
        )

    def patch_replicaset(
        self,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> Obj:
        return self._merge_patch(
            REPLICASETS, namespace, name, patch, resource_version=resource_version
        )

    def scale_replicaset(
        self, namespace: str, name: str, replicas: int, *, resource_version: str | None = None
    ) -> Obj:
        return self.patch_replicaset(
            namespace, name, {"spec": {"replicas": replicas}}, resource_version=resource_version
        )

    def delete_replicaset(
        self,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
        propagation: str = "Background",
    ) -> bool:
        """Delete (pods follow in the background); False if it was already gone.

        ``uid`` is a precondition: never delete a same-named successor by mistake.
        """
        return self._delete(REPLICASETS, namespace, name, uid=uid, propagation=propagation)

    # ------------------------------------------------------------------ statefulsets, daemonsets
    # A StatefulSet canary moves its rollingUpdate.partition, a DaemonSet canary deletes
    # pods under OnDelete (strategies/statefulset.py, strategies/daemonset.py). Template
    # writes replace the whole template (a JSON patch), so the previous template put
    # back is exactly the one the controller hashed and its old ControllerRevision (the
    # same controller-revision-hash) is reused. Their precondition is the generation of
    # the object as read, not its resourceVersion: the workload's own controller writes
    # its status all the time, and only a change of the spec must stop us.

    def patch_statefulset_partition(
        self, namespace: str, name: str, partition: int, *, resource_version: str | None = None
    ) -> Obj:
        """Set ``updateStrategy.rollingUpdate.partition``: ordinals at or above it update."""
        patch = {"spec": {"updateStrategy": {"rollingUpdate": {"partition": partition}}}}
        return self._merge_patch(
            STATEFULSETS, namespace, name, patch, resource_version=resource_version
        )

    def patch_statefulset_template(
        self, current: Mapping[str, Any], template: Mapping[str, Any], *, partition: int | None
    ) -> Obj:
        """Make ``current``'s pod template ``template``, and its partition ``partition`` in
        the same write (so no ordinal moves in between); Conflict if its spec changed
        since ``current`` was read."""
        fields: Obj = {"template": template}
        if partition is not None:
            strategy = copy.deepcopy(current["spec"].get("updateStrategy") or {})
            strategy["type"] = "RollingUpdate"
            strategy.setdefault("rollingUpdate", {})["partition"] = partition
            fields["updateStrategy"] = strategy
        meta = current["metadata"]
        try:
            return self._request(
                "patch",
                STATEFULSETS,
                method="PATCH",
                namespace=meta["namespace"],
                name=meta["name"],
                body=_spec_replacement(current, fields),
                content_type=JSON_PATCH,
            )
        except Permanent as error:
            now = self.get(STATEFULSETS, meta["namespace"], meta["name"])
            raise _generation_conflict(error, current, now) from error

    def get_statefulset_template(self, namespace: str, revision: str) -> Obj:
        """The pod template a StatefulSet's ControllerRevision ``revision`` holds (the
        stable template a rollback puts back), as the StatefulSet controller stored it."""
        stored = self.get(CONTROLLER_REVISIONS, namespace, revision)
        template = copy.deepcopy(((stored.get("data") or {}).get("spec") or {})["template"])
        # The controller stores it as a strategic-merge patch that replaces the template.
        template.pop("$patch", None)
        return dict(template)

    def patch_daemonset_update_strategy(
        self,
        namespace: str,
        name: str,
        strategy: Mapping[str, Any],
        *,
        resource_version: str | None = None,
        annotations: Mapping[str, str | None] | None = None,
    ) -> Obj:
        """Make ``spec.updateStrategy`` exactly ``strategy`` (``{"type": "OnDelete"}`` while
        deployctl owns the update, the user's own one restored at the end), and set (None:
        remove) ``annotations`` in the same write."""
        wanted = {"type": strategy["type"], "rollingUpdate": strategy.get("rollingUpdate")}
        patch: Obj = {"spec": {"updateStrategy": wanted}}
        if annotations:
            # In the same write: the user's strategy is kept exactly while it is not in place.
            patch["metadata"] = {"annotations": dict(annotations)}
        return self._merge_patch(
            DAEMONSETS, namespace, name, patch, resource_version=resource_version
        )

    def patch_daemonset_template(
        self,
        current: Mapping[str, Any],
        template: Mapping[str, Any],
        *,
        hold: Mapping[str, str] | None = None,
    ) -> Obj:
        """Make ``current``'s pod template ``template``; Conflict if its spec changed
        since ``current`` was read. ``hold`` (an annotation keeping the user's update
        strategy) also sets ``updateStrategy`` to OnDelete in the same write, so the
        DaemonSet controller never rolls the new template out on its own."""
        meta = current["metadata"]
        body = _spec_replacement(current, {"template": template})
        if hold:
            body.append(
                {"op": "replace", "path": "/spec/updateStrategy", "value": {"type": "OnDelete"}}
            )
            if meta.get("annotations"):
                body += [
                    {"op": "add", "path": "/metadata/annotations/" + _pointer(key), "value": value}
                    for key, value in hold.items()
                ]
            else:
                body.append({"op": "add", "path": "/metadata/annotations", "value": dict(hold)})
        try:
            return self._request(
                "patch",
                DAEMONSETS,
                method="PATCH",
                namespace=meta["namespace"],
                name=meta["name"],
                body=body,
                content_type=JSON_PATCH,
            )
        except Permanent as error:
            now = self.get(DAEMONSETS, meta["namespace"], meta["name"])
            raise _generation_conflict(error, current, now) from error

    def delete_pod(self, namespace: str, name: str, *, uid: str) -> bool:
        """Delete the pod ``name`` only if its UID is ``uid`` (gracefully, as the kubelet
        stops it); False when that pod is gone already, also when a namesake with another
        UID stands in its place (the precondition failed: the pod meant is gone)."""
        try:
            return self._delete(PODS, namespace, name, uid=uid)
        except Conflict:
            return False

    # ------------------------------------------------------------------ deployments

    def get_deployment(self, namespace: str, name: str) -> Obj:
        """A Deployment (the CLI: the pod template a workloadRef Rollout delivers)."""
        return self.get(DEPLOYMENTS, namespace, name)

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> Obj:
        """Set a Deployment's ``spec.replicas`` through its scale subresource (a Rollout's
        ``workloadRef`` take-over and hand-back): the only write deployctl makes to a
        Deployment, so its template stays what Helm or GitOps wrote."""
        return self._merge_patch(
            DEPLOYMENTS,
            namespace,
            name,
            {"spec": {"replicas": replicas}},
            resource_version=None,
            subresource="scale",
        )

    # ------------------------------------------------------------------ jobs

    def create_job(
        self, namespace: str, body: Mapping[str, Any], *, owner: Mapping[str, Any]
    ) -> Obj | None:
        """Create a Job owned by ``owner``; None when the name is taken already.

        Job names are derived from what they check, so an AlreadyExists means an earlier
        pass (perhaps of a controller since restarted) created this very Job.
        """
        return self._create_owned(JOBS, namespace, body, owner)

    def delete_job(self, namespace: str, name: str, *, uid: str | None = None) -> bool:
        """Delete a finished Job and its pods; False if it was already gone."""
        return self._delete(JOBS, namespace, name, uid=uid)

    def job_pod_rejections(self, namespace: str, job: str) -> list[str]:
        """Why the apiserver refused to create ``job``'s pods, newest first.

        The Job controller records each refusal (Pod Security admission, quota, a missing
        ServiceAccount) only as a ``FailedCreate`` Event on the Job, never in its status.
        """
        selector = f"involvedObject.kind=Job,involvedObject.name={job},reason=FailedCreate"
        try:
            listing = self._request(
                "list", EVENTS, method="GET", namespace=namespace, query={"fieldSelector": selector}
            )
        except Forbidden as exc:
            # An install from before this permission: the Job then waits for its deadline,
            # as it always did, instead of failing the check.
            log.warning("cannot list events to explain a Job without pods", error=str(exc))
            return []
        items = sorted(
            listing.get("items") or [],
            key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""),
            reverse=True,
        )
        return [str(e.get("message") or "") for e in items if e.get("message")]

    # ------------------------------------------------------------------ services

    def patch_service_selector(
        self,
        namespace: str,
        name: str,
        selector: Mapping[str, str | None],
        *,
        resource_version: str | None = None,
    ) -> Obj:
        """Merge ``selector`` into the Service's selector (a ``None`` value removes a key)."""
        return self._merge_patch(
            SERVICES,
            namespace,
            name,
            {"spec": {"selector": dict(selector)}},
            resource_version=resource_version,
        )

    def create_service(
        self, namespace: str, body: Mapping[str, Any], *, owner: Mapping[str, Any]
    ) -> Obj | None:
        """Create a Service controlled by ``owner`` (the baseline's, deleted with the
        Rollout); None when the name is taken (an earlier pass made it)."""
        return self._create_owned(SERVICES, namespace, body, owner)

    def delete_service(self, namespace: str, name: str, *, uid: str | None = None) -> bool:
        """Delete a Service the controller created; False if it was already gone.
        ``uid`` is a precondition: never a same-named Service made by someone else."""
        return self._delete(SERVICES, namespace, name, uid=uid)

    # ------------------------------------------------------------------ traffic routers
    # Each router (``controller.routers``) computes the whole list it owns from the
    # object as last seen and sends it with that object's resourceVersion: a merge
    # patch replaces a list whole, and a concurrent edit gives Conflict, not a loss.

    def patch_httproute(
        self, namespace: str, name: str, patch: Mapping[str, Any], *, resource_version: str
    ) -> Obj:
        """Merge-patch an HTTPRoute (its rules: weights, header and mirror rules)."""
        return self._merge_patch(
            HTTPROUTES, namespace, name, patch, resource_version=resource_version
        )

    def patch_virtualservice(
        self, namespace: str, name: str, patch: Mapping[str, Any], *, resource_version: str
    ) -> Obj:
        """Merge-patch an Istio VirtualService (its http routes)."""
        return self._merge_patch(
            VIRTUAL_SERVICES, namespace, name, patch, resource_version=resource_version
        )

    def patch_destinationrule(
        self, namespace: str, name: str, patch: Mapping[str, Any], *, resource_version: str
    ) -> Obj:
        """Merge-patch an Istio DestinationRule (the revision label of its subsets)."""
        return self._merge_patch(
            DESTINATION_RULES, namespace, name, patch, resource_version=resource_version
        )

    def create_ingress(
        self, namespace: str, body: Mapping[str, Any], *, owner: Mapping[str, Any]
    ) -> Obj | None:
        """Create the canary Ingress, owned by ``owner`` (deleted with the Rollout);
        None when the name is taken (an earlier pass made it: the next pass patches)."""
        return self._create_owned(INGRESSES, namespace, body, owner)

    def patch_ingress(
        self, namespace: str, name: str, patch: Mapping[str, Any], *, resource_version: str
    ) -> Obj:
        """Merge-patch the canary Ingress (its canary annotations, rules, TLS)."""
        return self._merge_patch(
            INGRESSES, namespace, name, patch, resource_version=resource_version
        )

    # ------------------------------------------------------------------ events

    def record_event(
        self,
        involved: Mapping[str, Any],
        *,
        reason: str,
        message: str,
        type: str = "Normal",
    ) -> Obj:
        """Record a core/v1 Event about ``involved``; repeats increment ``count``
        (``controller.kube.events``)."""
        meta = involved.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        text = event_text(message)
        name = event_name(involved, type=type, reason=reason, text=text)
        now = timestamp(self._utcnow())
        known = self._event_counts.get(name)
        if known is not None:
            try:
                return self._bump_event(namespace, name, known + 1, now)
            except NotFound:
                pass  # expired (events live one hour by default): create it afresh
        event = new_event(
            involved,
            name=name,
            namespace=namespace,
            type=type,
            reason=reason,
            text=text,
            now=now,
            host=self.instance,
        )
        try:
            created = self._request(
                "create", EVENTS, method="POST", namespace=namespace, body=event
            )
        except NamespaceTerminating:
            return {}  # the Rollout is being deleted with its namespace: nobody to tell
        except AlreadyExists:
            existing = self.get(EVENTS, namespace, name)
            return self._bump_event(namespace, name, int(existing.get("count") or 1) + 1, now)
        self._event_counts.remember(name, 1)
        return created

    def _bump_event(self, namespace: str, name: str, count: int, now: str) -> Obj:
        # No resourceVersion precondition: two writers racing on a count lose one
        # increment at worst, which is not worth a retry loop.
        updated = self._merge_patch(
            EVENTS,
            namespace,
            name,
            {"count": count, "lastTimestamp": now},
            resource_version=None,
        )
        self._event_counts.remember(name, int(updated.get("count") or count))
        return updated

    # ------------------------------------------------------------------ leases

    def get_lease(self, namespace: str, name: str, *, timeout: float | None = None) -> Obj:
        """No retries inside: the leader elector has its own retry period and deadline."""
        return self._request(
            "get",
            LEASES,
            method="GET",
            namespace=namespace,
            name=name,
            retry=NO_RETRY,
            timeout=timeout,
        )

    def create_lease(
        self,
        namespace: str,
        name: str,
        spec: Mapping[str, Any],
        *,
        annotations: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Obj:
        metadata: Obj = {"name": name, "namespace": namespace}
        if annotations:
            metadata["annotations"] = dict(annotations)
        body = {
            "apiVersion": LEASES.api_version,
            "kind": LEASES.kind,
            "metadata": metadata,
            "spec": dict(spec),
        }
        return self._request(
            "create",
            LEASES,
            method="POST",
            namespace=namespace,
            body=body,
            retry=NO_RETRY,
            timeout=timeout,
        )

    def update_lease(
        self,
        namespace: str,
        name: str,
        spec: Mapping[str, Any],
        *,
        resource_version: str,
        annotations: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Obj:
        """Replace the Lease's spec (and annotations, when given); 409 ``Conflict`` if
        someone wrote it since we read it."""
        metadata: Obj = {"name": name, "namespace": namespace, "resourceVersion": resource_version}
        if annotations:
            metadata["annotations"] = dict(annotations)
        body = {
            "apiVersion": LEASES.api_version,
            "kind": LEASES.kind,
            "metadata": metadata,
            "spec": dict(spec),
        }
        return self._request(
            "update",
            LEASES,
            method="PUT",
            namespace=namespace,
            name=name,
            body=body,
            retry=NO_RETRY,
            timeout=timeout,
        )

    def list_leases(self, namespace: str, *, timeout: float | None = None) -> list[Obj]:
        """The Leases of one namespace in one request (the shard elector's view of its
        members and shards); no retries inside, as for ``get_lease``."""
        page = self._request(
            "list",
            LEASES,
            method="GET",
            namespace=namespace,
            retry=NO_RETRY,
            timeout=timeout,
        )
        return list(page.get("items") or [])

    def delete_lease(
        self, namespace: str, name: str, *, resource_version: str, timeout: float | None = None
    ) -> bool:
        """Delete a Lease we hold (a member leaving); False if it was already gone.

        ``resource_version`` is a precondition: never delete a Lease someone else renewed.
        """
        options = {"preconditions": {"resourceVersion": resource_version}}
        try:
            self._request(
                "delete",
                LEASES,
                method="DELETE",
                namespace=namespace,
                name=name,
                body=options,
                retry=NO_RETRY,
                timeout=timeout,
            )
        except NotFound:
            return False
        return True

    # --- releases ----------------------------------------------------------------
    # The release controller's own objects in the management cluster; member clusters
    # are reached with ``get_rollout``/``patch_rollout``/``list_replicasets``.

    def get_release(self, namespace: str, name: str) -> Obj:
        return self.get(RELEASES, namespace, name)

    def patch_release(
        self, namespace: str, name: str, patch: Mapping[str, Any], *, resource_version: str
    ) -> Obj:
        """Merge-patch metadata (the CLI's request annotation) with an RV check."""
        return self._merge_patch(
            RELEASES, namespace, name, patch, resource_version=resource_version
        )

    def patch_release_status(
        self,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> Obj:
        """Merge-patch ``status`` through the status subresource, conditional on the RV."""
        return self._merge_patch(
            RELEASES,
            namespace,
            name,
            {"status": dict(status)},
            resource_version=resource_version,
            subresource="status",
        )

    # --- CLI ---------------------------------------------------------------------
    # Reads and writes of ``deployctl rollout/promote/status/...``; the CLI drives the
    # operator through the Rollout resource and reads what it owns, nothing more.

    def list_rollouts(self, namespace: str | None) -> list[Obj]:
        """Rollouts of one namespace, or of all namespaces when ``namespace`` is None."""
        return self.list_objects(ROLLOUTS, namespace).items

    def create_object(self, kind: KindRef, namespace: str, body: Mapping[str, Any]) -> Obj:
        return self._request("create", kind, method="POST", namespace=namespace, body=dict(body))

    def replace_object(
        self, kind: KindRef, namespace: str, name: str, body: Mapping[str, Any]
    ) -> Obj:
        """PUT ``body``; its ``metadata.resourceVersion`` makes it conditional (409 if stale)."""
        return self._request(
            "update", kind, method="PUT", namespace=namespace, name=name, body=dict(body)
        )

    def list_replicasets(self, namespace: str, label_selector: str) -> list[Obj]:
        return self.list_objects(REPLICASETS, namespace, label_selector=label_selector).items

    def list_pods(self, namespace: str, label_selector: str) -> list[Obj]:
        """Pods, Terminating ones included (``hand-back --wait``: the Rollout's are gone)."""
        return self.list_objects(PODS, namespace, label_selector=label_selector).items

    def list_events_for(self, namespace: str, name: str) -> list[Obj]:
        """Events about the Rollout ``name``, oldest first."""
        selector = f"involvedObject.name={name},involvedObject.kind=Rollout"
        listing = self._request(
            "list", EVENTS, method="GET", namespace=namespace, query={"fieldSelector": selector}
        )
        items = list(listing.get("items") or [])
        return sorted(items, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))

    def read_configmap_version(self, namespace: str, name: str) -> tuple[str, dict[str, str]]:
        """A ConfigMap's ``resourceVersion`` and data (alert rules files named by
        ``alertRules``), so that what was parsed can be kept per version."""
        obj = self._request("get", CONFIGMAPS, method="GET", namespace=namespace, name=name)
        data = {str(k): str(v) for k, v in (obj.get("data") or {}).items()}
        return str((obj.get("metadata") or {}).get("resourceVersion", "")), data

    def may(
        self, verb: str, kind: KindRef, namespace: str | None, name: str | None = None
    ) -> tuple[bool, str]:
        """May these credentials ``verb`` ``kind`` (a SelfSubjectAccessReview)? With the
        authorizer's reason, for telling a person why an action is not offered."""
        attributes: dict[str, str] = {"verb": verb, "group": kind.group, "resource": kind.plural}
        if namespace:
            attributes["namespace"] = namespace
        if name:
            attributes["name"] = name
        review = self._request(
            "create",
            SELF_SUBJECT_ACCESS_REVIEWS,
            method="POST",
            body={
                "apiVersion": SELF_SUBJECT_ACCESS_REVIEWS.api_version,
                "kind": SELF_SUBJECT_ACCESS_REVIEWS.kind,
                "spec": {"resourceAttributes": attributes},
            },
        )
        status = review.get("status") or {}
        reason = str(status.get("reason") or status.get("evaluationError") or "")
        return bool(status.get("allowed")), reason

    # --- policy ------------------------------------------------------------------

    def read_secret_annotated(
        self, namespace: str, name: str
    ) -> tuple[dict[str, str], dict[str, str]]:
        """A Secret's annotations and decoded data; for webhook URLs, whose Secret says
        which namespaces' policies may use it. Never log the data."""
        obj = self._request("get", SECRETS, method="GET", namespace=namespace, name=name)
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        data = obj.get("data") or {}
        return {str(k): str(v) for k, v in annotations.items()}, {
            str(key): base64.b64decode(str(value)).decode("utf-8", "replace")
            for key, value in data.items()
        }

    def admission_problem(self, policies: tuple[str, ...], bindings: tuple[str, ...]) -> str | None:
        """None when every named ValidatingAdmissionPolicy exists and every named binding
        denies (``validationActions`` has Deny); otherwise what is missing, in words."""
        for name in policies:
            try:
                self._request("get", ADMISSION_POLICIES, method="GET", name=name)
            except NotFound:
                return f"ValidatingAdmissionPolicy {name} is not installed (or not served)"
        for name in bindings:
            try:
                binding = self._request("get", ADMISSION_BINDINGS, method="GET", name=name)
            except NotFound:
                return f"ValidatingAdmissionPolicyBinding {name} is not installed"
            actions = (binding.get("spec") or {}).get("validationActions") or []
            if "Deny" not in actions:
                return f"ValidatingAdmissionPolicyBinding {name} does not deny (only {actions})"
        return None

    def whoami(self) -> str | None:
        """The user name the API server knows this client by (SelfSubjectReview, 1.28+);
        None where the cluster does not say."""
        try:
            review = self._request(
                "create",
                SELF_SUBJECT_REVIEWS,
                method="POST",
                body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            )
        except KubeError:
            return None
        name = ((review.get("status") or {}).get("userInfo") or {}).get("username")
        return str(name) if name else None

    def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        """A Secret's data, decoded; for webhook URLs. Never log what it returns."""
        obj = self._request("get", SECRETS, method="GET", namespace=namespace, name=name)
        data = obj.get("data") or {}
        return {
            str(key): base64.b64decode(str(value)).decode("utf-8", "replace")
            for key, value in data.items()
        }
