"""Which header and mirror routes are in force at a step: a fold over the steps done.

Called by ``Context.plan()`` for canaries with traffic routing. A ``setHeaderRoute`` or
``setMirrorRoute`` step sets the route of its name (or removes it, without ``match``);
the routes in force at step ``i`` are the last setting of each name among the steps
before ``i``. Status needs no field of its own: the step index is the memory, so a
restarted controller derives the same routes.

The routes send traffic to the canary, so they are in force only while a canary is in
flight: none on a stable rollout, none once aborted (all traffic back to stable, header
and mirror routes included), none once the canary is promoted. They are listed in the
order of ``trafficRouting.managedRoutes``, which is their precedence.

>>> from controller.api.rollout import CanaryStrategy
>>> spec = CanaryStrategy.model_validate({
...     "stableService": "s", "canaryService": "c",
...     "trafficRouting": {"gatewayAPI": {"httpRoute": "r"}, "managedRoutes": [{"name": "beta"}]},
...     "steps": [
...         {"setHeaderRoute": {"name": "beta", "match": [
...             {"headerName": "X-Beta", "headerValue": {"exact": "1"}}]}},
...         {"pause": {}},
...         {"setHeaderRoute": {"name": "beta"}},
...     ]})
>>> [r.route.name for r in in_force(spec, index=1, canary="c1", aborted=False)[0]]
['beta']
>>> in_force(spec, index=3, canary="c1", aborted=False)
((), ())
>>> in_force(spec, index=1, canary="c1", aborted=True)
((), ())
"""

from __future__ import annotations

from controller.api.rollout import CanaryStrategy, SetHeaderRoute, SetMirrorRoute, StringMatch
from strategies.plan import HeaderRoute, MirrorRoute


def in_force(
    spec: CanaryStrategy, *, index: int, canary: str | None, aborted: bool
) -> tuple[tuple[HeaderRoute, ...], tuple[MirrorRoute, ...]]:
    """The header and mirror routes the steps before ``index`` leave in force, sending
    to ``canary``; none without a canary in flight or once aborted."""
    routing = spec.traffic_routing
    if routing is None or canary is None or aborted:
        return (), ()
    latest: dict[str, SetHeaderRoute | SetMirrorRoute] = {}
    for step in spec.steps[: max(0, index)]:
        route = step.managed_route
        if route is not None:
            latest[route.name] = route
    headers: list[HeaderRoute] = []
    mirrors: list[MirrorRoute] = []
    for managed in routing.managed_routes:
        route = latest.get(managed.name)
        if route is None or not route.match:
            continue
        if isinstance(route, SetHeaderRoute):
            headers.append(HeaderRoute(route=route, revision=canary))
        else:
            mirrors.append(MirrorRoute(route=route, revision=canary))
    return tuple(headers), tuple(mirrors)


def describe(route: SetHeaderRoute | SetMirrorRoute) -> str:
    """The route as a person reads it in an Event or ``deployctl plan``.

    >>> describe(SetHeaderRoute.model_validate({"name": "beta", "match": [
    ...     {"headerName": "X-Beta", "headerValue": {"prefix": "yes"}}]}))
    'header route beta (X-Beta prefix yes)'
    >>> describe(SetMirrorRoute.model_validate({"name": "m", "percentage": 35,
    ...     "match": [{"method": {"exact": "GET"}, "path": {"prefix": "/"}}]}))
    'mirror route m (35% of method GET, path prefix /)'
    >>> describe(SetHeaderRoute.model_validate({"name": "beta", "match": [
    ...     {"headerName": "X-Beta", "headerValue": {"exact": "1"}}]}))
    'header route beta (X-Beta: 1)'
    >>> describe(SetMirrorRoute.model_validate({"name": "m"}))
    'remove mirror route m'
    """
    kind = "header" if isinstance(route, SetHeaderRoute) else "mirror"
    if not route.match:
        return f"remove {kind} route {route.name}"
    if isinstance(route, SetHeaderRoute):
        what = " or ".join(_header(m.header_name, m.header_value) for m in route.match)
        return f"header route {route.name} ({what})"
    blocks = []
    for match in route.match:
        parts = []
        if match.method is not None:
            parts.append(f"method {_value(match.method)}")
        if match.path is not None:
            parts.append(f"path {_value(match.path)}")
        parts += [_header(name, value) for name, value in sorted(match.headers.items())]
        blocks.append(", ".join(parts) or "every request")
    percent = 100 if route.percentage is None else route.percentage
    return f"mirror route {route.name} ({percent}% of {' or '.join(blocks)})"


def _header(name: str, value: StringMatch) -> str:
    return f"{name}: {value.exact}" if value.exact is not None else f"{name} {_value(value)}"


def _value(match: StringMatch) -> str:
    for kind in ("exact", "prefix", "regex"):
        value = getattr(match, kind, None)
        if value is not None:
            return value if kind == "exact" else f"{kind} {value}"
    return ""
