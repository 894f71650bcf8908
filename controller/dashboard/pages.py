"""The dashboard's HTML, rendered on the server from ``views`` (readable without JavaScript).

Whole pages for a first load, and the fragments a live page swaps in when the server
pushes an update (``list_rows_html``, ``rollout_html``): one renderer for both, so a page
reloaded and a page kept live look the same. Charts are ``<div class="chart">`` elements
carrying their data as JSON in ``data-chart``; ``static/dashboard.js`` draws them with
uPlot, and the measurements are also listed in a table beneath each one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from controller.commands.render import format_value
from controller.dashboard.actions import Offer
from controller.dashboard.html import Markup, el, join
from controller.dashboard.views import PHASES

PHASE_CLASS = {
    "Healthy": "ok",
    "Progressing": "busy",
    "Paused": "wait",
    "Degraded": "bad",
    "RolledBack": "bad",
    "InvalidSpec": "bad",
}
VERDICT_CLASS = {
    "Successful": "ok",
    "Failed": "bad",
    "Error": "bad",
    "Inconclusive": "wait",
    "Pending": "wait",
    "Running": "busy",
}


def rollout_path(namespace: str, name: str, *rest: str) -> str:
    parts = ["rollouts", namespace, name, *rest]
    return "/" + "/".join(quote(p, safe="") for p in parts)


def clock_text(timestamp: Any) -> str:
    """``2026-12-04T05:31:12Z`` -> ``05:31:12`` (UTC, as status writes it)."""
    if not timestamp:
        return "-"
    text = str(timestamp)
    return text[11:19] if len(text) >= 19 and text[10] == "T" else text


def epoch_clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%H:%M:%S")


def badge(text: Any, kind: str | None) -> Markup:
    return el("span", text or "-", class_=f"badge {kind or 'none'}")


# ---------------------------------------------------------------------- layout


def layout(
    title: str,
    content: Markup,
    *,
    scope: str,
    token: str,
    page: str,
    stream: str | None,
    read_only: bool,
) -> Markup:
    head = join(
        el("meta", charset="utf-8"),
        el("meta", name="viewport", content="width=device-width, initial-scale=1"),
        el("title", f"{title} · deployctl"),
        el("link", rel="stylesheet", href="/static/vendor/uPlot.min.css"),
        el("link", rel="stylesheet", href="/static/dashboard.css"),
        el("meta", name="deployctl-token", content=token) if token else None,
    )
    header = el(
        "header",
        el("a", "deployctl", href="/", class_="brand"),
        el("span", scope, class_="scope"),
        el("span", "read-only", class_="badge none") if read_only else None,
        el("span", "static page", id="live", class_="live", title="live updates"),
    )
    dialog = el(
        "dialog",
        el(
            "form",
            el("h2", "", id="confirm-title"),
            el("p", "", id="confirm-text"),
            el(
                "menu",
                el("button", "Cancel", value="cancel", type="submit", id="confirm-cancel"),
                el("button", "Confirm", value="confirm", type="submit", id="confirm-ok"),
            ),
            method="dialog",
        ),
        id="confirm",
    )
    body = el(
        "body",
        header,
        el("div", "", id="banner", role="status", hidden=True),
        el("main", content, id="content"),
        dialog,
        el("script", "", src="/static/vendor/uPlot.iife.min.js"),
        el("script", "", src="/static/dashboard.js"),
        data_page=page,
        data_stream=stream,
    )
    return Markup("<!doctype html>\n" + el("html", el("head", head), body, lang="en"))


def message_page(title: str, text: str, *, back: str, scope: str) -> Markup:
    content = join(el("h1", title), el("p", text, class_="message"), el("a", "Back", href=back))
    return layout(
        title, content, scope=scope, token="", page="message", stream=None, read_only=True
    )


# ---------------------------------------------------------------------- list


def list_content(
    rows: Sequence[Mapping[str, str]],
    *,
    namespaces: Sequence[str] | None,
    namespace: str | None,
    phase: str | None,
) -> Markup:
    filters = []
    if namespaces is not None:
        filters.append(
            el(
                "label",
                "Namespace ",
                el(
                    "select",
                    el("option", "all", value=""),
                    [el("option", ns, value=ns, selected=ns == namespace) for ns in namespaces],
                    name="namespace",
                ),
            )
        )
    filters.append(
        el(
            "label",
            "Phase ",
            el(
                "select",
                el("option", "all", value=""),
                [el("option", p, value=p, selected=p == phase) for p in PHASES],
                name="phase",
            ),
        )
    )
    form = el(
        "form", filters, el("button", "Filter", type="submit"), method="get", class_="filters"
    )
    head = el(
        "tr",
        [
            el("th", column)
            for column in (
                "Namespace",
                "Name",
                "Strategy",
                "Phase",
                "Step",
                "Weight",
                "Stable",
                "Canary",
                "Age",
            )
        ],
    )
    table = el(
        "table",
        el("thead", head),
        el("tbody", list_rows_html(rows), id="rows"),
        class_="rollouts",
    )
    return join(el("h1", "Rollouts"), form, table)


def list_rows_html(rows: Sequence[Mapping[str, str]]) -> Markup:
    if not rows:
        return el("tr", el("td", "no rollouts match", colspan=9, class_="empty"))
    return join(
        el(
            "tr",
            el("td", row["namespace"]),
            el("td", el("a", row["name"], href=rollout_path(row["namespace"], row["name"]))),
            el("td", row["strategy"]),
            el("td", badge(row["phase"], PHASE_CLASS.get(row["phase"]))),
            el("td", row["step"]),
            el("td", row["weight"]),
            el("td", row["stable"], class_="mono"),
            el("td", row["canary"], class_="mono"),
            el("td", row["age"]),
            data_rollout=f"{row['namespace']}/{row['name']}",
        )
        for row in rows
    )


def list_stream(namespace: str | None, phase: str | None) -> str:
    query = {k: v for k, v in (("namespace", namespace), ("phase", phase)) if v}
    return "/stream" + (f"?{urlencode(query)}" if query else "")


# ---------------------------------------------------------------------- one rollout


def rollout_html(view: Mapping[str, Any], offers: Sequence[Offer] | None) -> Markup:
    """Everything below the page header; swapped whole on each live update."""
    return join(
        _summary(view),
        _actions(view, offers),
        _section("Steps", _steps(view["steps"])) if view["steps"] else None,
        _section("Traffic", _traffic(view["traffic"])),
        _section("Revisions", _revisions(view["revisions"])),
        _section("Policy holds", _holds(view["holds"])) if view["holds"] else None,
        _section("Analysis", _analysis(view["analysis"])),
        _section("Hooks and check Jobs", _jobs(view["hooks"])) if view["hooks"] else None,
        _section("History", _history(view["history"])),
        _section("Events", _events(view["events"])),
    )


def _section(title: str, body: Markup) -> Markup:
    slug = title.lower().replace(" ", "-")
    return el("section", el("h2", title), body, class_=f"panel {slug}")


def _summary(view: Mapping[str, Any]) -> Markup:
    phase = str(view["phase"])
    steps = view["steps"]
    at = next((s for s in steps if s["state"] in ("current", "aborted")), None)
    step = f"{at['index'] + 1} of {len(steps)}: {at['text']}" if at else view["step"]
    facts = el(
        "dl",
        el("dt", "Strategy"),
        el("dd", view["strategy"]),
        el("dt", "Step"),
        el("dd", step),
        el("dt", "Weight"),
        el("dd", view["weight"], id="weight"),
        el("dt", "Stable"),
        el("dd", view["stable"], class_="mono"),
        el("dt", "Canary"),
        el("dd", view["canary"], class_="mono"),
        el("dt", "Age"),
        el("dd", view["age"]),
        class_="facts",
    )
    evidence = None
    if view.get("message"):
        kind = "bad" if phase in ("Degraded", "RolledBack") else "note"
        evidence = el(
            "p",
            el("strong", view.get("reason") or phase),
            ": ",
            el("span", view["message"], class_="evidence-text"),
            class_=f"evidence {kind}",
            id="evidence",
        )
    return el(
        "section",
        el(
            "h1",
            el("span", f"{view['namespace']}/", class_="ns"),
            view["name"],
            " ",
            badge(phase, PHASE_CLASS.get(phase)),
            id="title",
        ),
        evidence,
        facts,
        class_="summary",
        data_phase=phase,
    )


def _actions(view: Mapping[str, Any], offers: Sequence[Offer] | None) -> Markup:
    if offers is None:
        return el(
            "p",
            "Read-only dashboard: actions are taken with deployctl or kubectl.",
            class_="actions-off",
        )
    namespace, name = str(view["namespace"]), str(view["name"])
    buttons = [
        el(
            "form",
            el(
                "button",
                offer.label,
                type="submit",
                disabled=not offer.enabled,
                title=offer.reason,
                class_=f"action {offer.action}",
                data_action=offer.action,
            ),
            method="get",
            action=rollout_path(namespace, name, "confirm", offer.action),
            data_action=offer.action,
            data_label=offer.label,
            data_confirm=offer.reason,
            data_post=rollout_path(namespace, name, "actions", offer.action),
        )
        for offer in offers
    ]
    disabled = [o for o in offers if not o.enabled]
    shared = {o.reason for o in disabled}
    if disabled and len(disabled) == len(offers) and len(shared) == 1:
        why: Markup | None = el("p", f"Actions disabled: {disabled[0].reason}", class_="why")
    elif disabled:
        why = el(
            "ul",
            [el("li", el("strong", o.label), ": ", o.reason) for o in disabled],
            class_="why",
        )
    else:
        why = None
    return el("section", el("div", buttons, class_="buttons"), why, class_="actions")


def _steps(steps: Sequence[Mapping[str, Any]]) -> Markup:
    return el(
        "ol",
        [
            el(
                "li",
                el("span", str(step["index"] + 1), class_="num"),
                el("span", step["text"], class_="text"),
                class_=f"step {step['state']}",
                aria_current="step" if step["state"] == "current" else None,
            )
            for step in steps
        ],
        class_="timeline",
    )


def _traffic(shares: Sequence[Mapping[str, Any]]) -> Markup:
    if not shares:
        return el("p", "no traffic routed yet")
    x = 0
    rects = []
    for share in shares:
        percent = int(share["percent"])
        rects.append(
            el(
                "rect",
                el("title", f"{share['role']} {share['revision']}: {percent}%"),
                x=x,
                y=0,
                width=percent,
                height=10,
                class_=f"share {share['role']}",
            )
        )
        x += percent
    bar = el(
        "svg",
        rects,
        viewBox="0 0 100 10",
        preserveAspectRatio="none",
        class_="split",
        role="img",
        aria_label=", ".join(f"{s['role']} {s['percent']}%" for s in shares),
    )
    legend = el(
        "ul",
        [
            el(
                "li",
                el("span", "", class_=f"swatch {s['role']}"),
                f"{s['role']} ",
                el("span", s["revision"], class_="mono"),
                f": {s['percent']}%",
                class_="share-text",
                data_role=s["role"],
                data_percent=s["percent"],
            )
            for s in shares
        ],
        class_="legend",
    )
    return join(bar, legend)


def _table(headers: Iterable[str], rows: Iterable[Markup], *, empty: str) -> Markup:
    body = list(rows)
    if not body:
        return el("p", empty, class_="empty")
    return el("table", el("thead", el("tr", [el("th", h) for h in headers])), el("tbody", body))


def _revisions(revisions: Sequence[Mapping[str, Any]]) -> Markup:
    return _table(
        ("Revision", "Role", "Images", "Desired", "Ready", "Available"),
        (
            el(
                "tr",
                el("td", r["revision"], class_="mono"),
                el("td", r["role"]),
                el("td", ", ".join(f"{k}={v}" for k, v in r["images"].items()), class_="mono"),
                el("td", r["desired"]),
                el("td", r["ready"]),
                el("td", r["available"]),
                data_revision=r["revision"],
            )
            for r in revisions
        ),
        empty="no ReplicaSets",
    )


def _holds(holds: Sequence[Mapping[str, Any]]) -> Markup:
    return el(
        "ul",
        [
            el(
                "li",
                el("strong", h["reason"]),
                f" since {clock_text(h['since'])}" if h.get("since") else None,
                ": ",
                h["message"],
                class_="hold active" if h["active"] else "hold",
            )
            for h in holds
        ],
        class_="holds",
    )


def _analysis(runs: Sequence[Mapping[str, Any]]) -> Markup:
    if not runs:
        return el("p", "no analysis has run for the revisions in status", class_="empty")
    return join(
        el(
            "article",
            el(
                "h3",
                run["title"],
                " · revision ",
                el("span", run["revision"], class_="mono"),
                f" ({run['role']}) · started {clock_text(run['startedAt'])} ",
                badge(run["phase"], VERDICT_CLASS.get(str(run["phase"]))),
            ),
            el("p", run["message"], class_="run-message") if run["message"] else None,
            [_metric(run, metric) for metric in run["metrics"]],
            class_="run",
            data_run=run["key"],
        )
        for run in runs
    )


def chart_data(metric: Mapping[str, Any]) -> str:
    data = {
        "name": metric["name"],
        "from": metric["from"],
        "to": metric["to"],
        "points": [[p["t"], p["value"], p["verdict"]] for p in metric["points"]],
        "min": metric["threshold"]["min"],
        "max": metric["threshold"]["max"],
        "windows": metric["windows"],
        "breachAt": metric["breachAt"],
        "rollbackAt": metric["rollbackAt"],
        "forSeconds": metric["forSeconds"],
    }
    return json.dumps(data, separators=(",", ":"))


def _metric(run: Mapping[str, Any], metric: Mapping[str, Any]) -> Markup:
    threshold = metric["threshold"]
    facts = [f"threshold {threshold['text'] or 'none'}"]
    if metric["forSeconds"]:
        facts.append(f"for {format_value(metric['forSeconds'])} s (shaded)")
    else:
        facts.append("for 0 s: a breach counts at once")
    caption = [
        el("strong", metric["name"]),
        " ",
        badge(metric["phase"], VERDICT_CLASS.get(str(metric["phase"]))),
        " · ",
        " · ".join(facts),
    ]
    first_breach = next((p for p in metric["points"] if p["breach"]), None)
    if metric["breachAt"] is not None and first_breach is not None:
        caption += [
            el(
                "span",
                f" · crossed the threshold at {epoch_clock(metric['breachAt'])} "
                f"({first_breach['shown']})",
                class_="breach",
            )
        ]
    if metric["rollbackAt"] is not None:
        caption += [
            el("span", f" · rolled back at {epoch_clock(metric['rollbackAt'])}", class_="rollback")
        ]
    chart = (
        el(
            "div",
            "",
            class_="chart",
            data_metric=metric["name"],
            data_chart=chart_data(metric),
            role="img",
            aria_label=f"{metric['name']} against {threshold['text'] or 'no threshold'}",
        )
        if metric["chartable"]
        else None
    )
    rows = (
        el(
            "tr",
            el("td", clock_text(p["at"])),
            el("td", p["shown"], class_="mono"),
            el("td", badge(p["verdict"], VERDICT_CLASS.get(p["verdict"]))),
            el("td", p["message"]),
            class_="breach" if p["breach"] else None,
        )
        for p in metric["points"]
    )
    table = _table(("At", "Value", "Verdict", "Message"), rows, empty="no measurements yet")
    details = el(
        "details",
        el("summary", f"{len(metric['points'])} measurements (newest kept in status)"),
        table,
        el("pre", metric["query"], class_="query") if metric["query"] else None,
        open=not metric["chartable"],
    )
    message = el("p", metric["message"], class_="metric-message") if metric["message"] else None
    counts = (
        f"{metric['successful']} successful, {metric['failed']} failed, "
        f"{metric['inconclusive']} inconclusive"
    )
    return el(
        "figure",
        el("figcaption", caption, el("span", f" · {counts}", class_="counts")),
        chart,
        message,
        details,
        class_="metric",
        data_metric=metric["name"],
        data_phase=metric["phase"],
    )


def _jobs(jobs: Sequence[Mapping[str, Any]]) -> Markup:
    return _table(
        ("Job", "Run", "Revision", "State", "Started", "Finished", "Detail"),
        (
            el(
                "tr",
                el("td", j["name"], class_="mono"),
                el("td", j["run"]),
                el("td", j["revision"], class_="mono"),
                el("td", badge(j["state"], VERDICT_CLASS.get(j["state"], "busy"))),
                el("td", clock_text(j["startedAt"])),
                el("td", clock_text(j["finishedAt"])),
                el("td", j["detail"]),
            )
            for j in jobs
        ),
        empty="no Jobs",
    )


def _history(rows: Sequence[Mapping[str, Any]]) -> Markup:
    return _table(
        ("#", "Revision", "Version", "Who", "Why", "Outcome", "Took", "Evidence"),
        (
            el(
                "tr",
                el("td", r["number"]),
                el("td", r["revision"], class_="mono"),
                el("td", r["version"] or "-"),
                el("td", r["requestedBy"] or "-"),
                el("td", r["reason"] or "-"),
                el("td", badge(r["outcome"], _outcome_class(str(r["outcome"])))),
                el("td", r["duration"] or "-"),
                el("td", r["message"] or ""),
                data_outcome=r["outcome"],
            )
            for r in rows
        ),
        empty="no history yet",
    )


def _outcome_class(outcome: str) -> str:
    return {"Promoted": "ok", "RolledBack": "bad", "Aborted": "bad", "Progressing": "busy"}.get(
        outcome, "none"
    )


def _events(rows: Sequence[Mapping[str, Any]]) -> Markup:
    return _table(
        ("Last seen", "Type", "Reason", "Message", "Count"),
        (
            el(
                "tr",
                el("td", clock_text(r["last"])),
                el("td", r["type"]),
                el("td", r["reason"]),
                el("td", r["message"]),
                el("td", r["count"]),
                class_="warning" if r["type"] == "Warning" else None,
            )
            for r in rows
        ),
        empty="no Events",
    )


def confirm_content(
    view: Mapping[str, Any], offer: Offer, *, token: str, back: str, post: str
) -> Markup:
    return join(
        el("h1", f"{offer.label} {view['namespace']}/{view['name']}?"),
        el("p", offer.reason),
        el(
            "form",
            el("input", type="hidden", name="token", value=token),
            el("button", f"Confirm {offer.label.lower()}", type="submit", class_="action"),
            " ",
            el("a", "Cancel", href=back),
            method="post",
            action=post,
        ),
    )
