"""Alert rules files kept in ConfigMaps, for ``alertRules`` metrics.

The same file Prometheus loads (often mounted from this very ConfigMap by the
Prometheus Operator or a Helm chart) is read here, so paging and rollback agree on what
"unhealthy" means. A file is read with one GET and kept for ``ttl`` seconds: an analysis
measures every few seconds and asks for its rules on each pass, and a rules change
reaches the next measurement after at most ``ttl``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from controller.analysis.alertrules import AlertRule, RulesError, load_rules
from controller.kube.errors import Forbidden, KubeError, NotFound

ConfigMapReader = Callable[[str, str], Mapping[str, str]]
DEFAULT_TTL = 15.0


class ConfigMapRules:
    """``RulesSource`` over ConfigMaps (see the module docstring)."""

    def __init__(
        self,
        read: ConfigMapReader,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.read = read
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[float, Mapping[str, str]]] = {}

    def _data(self, namespace: str, name: str) -> Mapping[str, str]:
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
        data = self._data(namespace, config_map)
        if key is None:
            if len(data) != 1:
                keys = ", ".join(sorted(data)) or "none"
                raise RulesError(
                    f"ConfigMap {namespace}/{config_map} has {len(data)} keys ({keys}); "
                    "name the rules file with alertRules.key"
                )
            key = next(iter(data))
        if key not in data:
            keys = ", ".join(sorted(data)) or "none"
            raise RulesError(f"ConfigMap {namespace}/{config_map} has no key {key!r} ({keys})")
        return load_rules(data[key], source=f"ConfigMap {namespace}/{config_map} key {key}")
