"""Alert rules files kept in ConfigMaps, for ``alertRules`` metrics.

The same file Prometheus loads (often mounted from this very ConfigMap by the
Prometheus Operator or a Helm chart) is read here, so paging and rollback agree on what
"unhealthy" means. A file is read with one GET and kept for ``ttl`` seconds: an analysis
measures every few seconds and asks for its rules on each pass, and a rules change
reaches the next measurement after at most ``ttl``.

A file is parsed once per ConfigMap ``resourceVersion`` (and key): the parsed rules, or
the error that reading them gave, are kept (the newest ``MAX_PARSED``), so a large or
hostile file costs its parse once, not on every pass of every Rollout naming it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import NamedTuple

from controller.analysis.alertrules import AlertRule, RulesError, load_rules
from controller.kube.errors import Forbidden, KubeError, NotFound


class ConfigMapData(NamedTuple):
    """A ConfigMap's ``data`` and the ``resourceVersion`` it was read at."""

    resource_version: str
    data: Mapping[str, str]


ConfigMapReader = Callable[[str, str], ConfigMapData]
DEFAULT_TTL = 15.0
MAX_PARSED = 256


class ConfigMapRules:
    """``RulesSource`` over ConfigMaps (see the module docstring)."""

    def __init__(
        self,
        read: ConfigMapReader,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
        parse: Callable[..., list[AlertRule]] = load_rules,
    ) -> None:
        self.read = read
        self.ttl = ttl
        self.clock = clock
        self.parse = parse
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[float, ConfigMapData]] = {}
        self._parsed: OrderedDict[tuple[str, str, str, str], list[AlertRule] | RulesError] = (
            OrderedDict()
        )

    def _data(self, namespace: str, name: str) -> ConfigMapData:
        now = self.clock()
        with self._lock:
            cached = self._cache.get((namespace, name))
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            data = self.read(namespace, name)
        except NotFound:
            raise RulesError(f"no ConfigMap {namespace}/{name}") from None
        except Forbidden:
            raise RulesError(
                f"the controller may not read ConfigMap {namespace}/{name} (RBAC)"
            ) from None
        except (KubeError, ValueError) as exc:  # ValueError: a reply that is not JSON
            raise RulesError(f"cannot read ConfigMap {namespace}/{name}: {exc}") from None
        with self._lock:
            self._cache[(namespace, name)] = (now, data)
        return data

    def rules(self, namespace: str, config_map: str, key: str | None) -> list[AlertRule]:
        version, data = self._data(namespace, config_map)
        if key is None:
            if len(data) != 1:
                keys = ", ".join(sorted(data)[:20]) or "none"
                raise RulesError(
                    f"ConfigMap {namespace}/{config_map} has {len(data)} keys ({keys}); "
                    "name the rules file with alertRules.key"
                )
            key = next(iter(data))
        if key not in data:
            keys = ", ".join(sorted(data)[:20]) or "none"
            raise RulesError(f"ConfigMap {namespace}/{config_map} has no key {key!r} ({keys})")
        return self._parse_once(namespace, config_map, key, version, data[key])

    def _parse_once(
        self, namespace: str, config_map: str, key: str, version: str, text: str
    ) -> list[AlertRule]:
        slot = (namespace, config_map, key, version)
        with self._lock:
            known = self._parsed.get(slot)
            if known is not None:
                self._parsed.move_to_end(slot)
        if known is None:
            try:
                known = self.parse(text, source=f"ConfigMap {namespace}/{config_map} key {key}")
            except RulesError as exc:
                known = exc
            with self._lock:
                self._parsed[slot] = known
                while len(self._parsed) > MAX_PARSED:
                    self._parsed.popitem(last=False)
        if isinstance(known, RulesError):
            raise RulesError(str(known))
        return list(known)
