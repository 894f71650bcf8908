"""Derive, from the source, every (apiGroup, resource, verb) the operator's code can call.

No running cluster and no mocks: the calls are read from the syntax tree.

1. ``controller/kube/``: the ``KindRef`` constants (``kinds.py``), and for each method of
   ``Kube`` and the classes it inherits from in the package (``Transport``) the requests
   it sends (``_request``/``_send`` with a literal verb, ``_merge_patch`` = patch,
   ``_delete`` = delete, ``get``/``list_objects``/``watch_objects`` of a kind constant,
   with their ``subresource=``), closed over the methods it calls. A method that builds
   an owner reference (``owner_reference`` or ``owned``: blockOwnerDeletion) also needs
   ``update`` on ``rollouts/finalizers``.
2. The modules the operator process imports (the closure of ``controller.operator``
   within ``controller``, minus the adapter package): every call of a ``Kube`` method
   adds that method's requests; the generic ``list_objects``/``watch_objects``/``get``
   count with a ``KindRef`` constant as first argument; ``Informer(kube, KIND, ...)`` is
   list + watch.

The CLI's modules are not in that closure: they run with the user's credentials.

The release controller is derived the same way from ``controller.release.controller``,
split by where a call goes: the ``MemberCluster`` class of ``controller/release/members.py``
talks to member clusters (``member_needs``), everything else to the management cluster
(``release_controller_needs``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "controller" / "kube"
MEMBERS = ROOT / "controller" / "release" / "members.py"
MEMBER_CLASS = "MemberCluster"
Need = tuple[str, str, str]  # (group, resource, verb)

_SENDERS = {"_request", "_send"}
# Helpers taking the kind as their first argument, and the verb each sends.
_KIND_FIRST = {
    "_merge_patch": "patch",
    "_delete": "delete",
    "_create_owned": "create",
    "get": "get",
    "list_objects": "list",
    "watch_objects": "watch",
}
_OWNERS = {"owner_reference", "owned"}
_GENERIC = {"list_objects": "list", "watch_objects": "watch", "get": "get"}


def _parse(source: str) -> ast.Module:
    """``ast.parse``, once more if CPython 3.11's parser trips on its own recursion
    counter ("AST constructor recursion depth mismatch", seen once under xdist)."""
    try:
        return ast.parse(source)
    except SystemError:
        return ast.parse(source)


def _const(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def kinds() -> dict[str, tuple[str, str]]:
    """``ROLLOUTS`` -> ("deployctl.io", "rollouts"), from the KindRef constants."""
    found: dict[str, tuple[str, str]] = {}
    for node in _parse((KUBE / "kinds.py").read_text()).body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "KindRef"
        ):
            group, _version, plural = (_const(a) for a in node.value.args[:3])
            assert group is not None and plural is not None
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = (group, plural)
    return found


def _self_calls(function: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(function):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "self"
        ):
            yield node


def _kube_methods() -> dict[str, ast.FunctionDef]:
    """``Kube``'s methods, with those it inherits from classes of the package (as the
    method resolution order would pick them: the subclass's own definition wins)."""
    classes = {
        node.name: node
        for path in sorted(KUBE.glob("*.py"))
        for node in _parse(path.read_text()).body
        if isinstance(node, ast.ClassDef)
    }
    methods: dict[str, ast.FunctionDef] = {}
    todo = ["Kube"]
    while todo:
        cls = classes.get(todo.pop(0))
        if cls is None:
            continue
        for node in cls.body:
            if isinstance(node, ast.FunctionDef):
                methods.setdefault(node.name, node)
        todo += [b.id for b in cls.bases if isinstance(b, ast.Name)]
    return methods


def kube_method_needs() -> dict[str, set[Need]]:
    """Each ``Kube`` method -> the requests it (and the methods it calls) can send."""
    known = kinds()
    methods = _kube_methods()
    direct: dict[str, set[Need]] = {name: set() for name in methods}
    calls: dict[str, set[str]] = {name: set() for name in methods}

    def need(kind: ast.AST, verb: str, sub: str | None) -> Need | None:
        if not isinstance(kind, ast.Name) or kind.id not in known:
            return None  # a parameter: a generic method, counted at its call sites
        group, plural = known[kind.id]
        return (group, f"{plural}/{sub}" if sub else plural, verb)

    for name, method in methods.items():
        for call in _self_calls(method):
            assert isinstance(call.func, ast.Attribute)
            attr, args = call.func.attr, call.args
            found: Need | None = None
            if attr in _SENDERS and len(args) >= 2 and _const(args[0]):
                verb = _const(args[0])
                assert verb is not None
                found = need(args[1], verb, _const(_keyword(call, "subresource")))
            elif attr in _KIND_FIRST and args:
                sub = _const(_keyword(call, "subresource"))
                found = need(args[0], _KIND_FIRST[attr], sub)
            if attr in methods:
                # What the callee sends beyond its kind (e.g. _create_owned's owner
                # reference) is the caller's need too.
                calls[name].add(attr)
            if found is not None:
                direct[name].add(found)
        for node in ast.walk(method):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in _OWNERS
            ):
                # blockOwnerDeletion on a Rollout needs update on its finalizers.
                group, plural = known["ROLLOUTS"]
                direct[name].add((group, f"{plural}/finalizers", "update"))

    def closure(name: str, seen: frozenset[str]) -> set[Need]:
        out = set(direct[name])
        for callee in calls[name] - seen:
            out |= closure(callee, seen | {callee})
        return out

    return {name: closure(name, frozenset({name})) for name in methods}


def _module_path(module: str) -> Path | None:
    base = ROOT / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def module_closure(root: str) -> list[Path]:
    """``root`` and every ``controller`` module it imports, transitively (minus the adapter)."""
    todo, seen = [root], set[str]()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_path(module)
        if path is None:
            continue
        for node in ast.walk(_parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            todo += [n for n in names if n.split(".")[0] == "controller"]
    paths = {_module_path(m) for m in seen}
    return sorted(p for p in paths if p is not None and KUBE not in p.parents)


def operator_modules() -> list[Path]:
    """``controller.operator`` and every ``controller`` module it imports, transitively."""
    return module_closure("controller.operator")


def needs_in(trees: list[ast.AST]) -> set[Need]:
    """Every request the calls under ``trees`` can make through the adapter."""
    known = kinds()
    methods = kube_method_needs()
    needs: set[Need] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            first = node.args[0] if node.args else None
            if isinstance(node.func, ast.Name) and node.func.id == "Informer":
                kind = node.args[1] if len(node.args) > 1 else None
                if isinstance(kind, ast.Name) and kind.id in known:
                    group, plural = known[kind.id]
                    needs |= {(group, plural, "list"), (group, plural, "watch")}
                continue
            if not isinstance(node.func, ast.Attribute):
                continue
            attr = node.func.attr
            if attr in _GENERIC:
                if isinstance(first, ast.Name) and first.id in known:
                    group, plural = known[first.id]
                    needs.add((group, plural, _GENERIC[attr]))
            elif attr in methods:
                needs |= methods[attr]
    return needs


def operator_needs() -> set[Need]:
    """Everything the operator process may ask the apiserver for."""
    return needs_in([_parse(path.read_text()) for path in operator_modules()])


def _is_member_class(node: ast.AST) -> bool:
    return isinstance(node, ast.ClassDef) and node.name == MEMBER_CLASS


def release_controller_needs() -> set[Need]:
    """What the release controller may ask of the management cluster."""
    trees: list[ast.AST] = []
    for path in module_closure("controller.release.controller"):
        tree = _parse(path.read_text())
        if path == MEMBERS:
            trees += [node for node in tree.body if not _is_member_class(node)]
        else:
            trees.append(tree)
    return needs_in(trees)


def member_needs() -> set[Need]:
    """What the release controller may ask of each member cluster."""
    tree = _parse(MEMBERS.read_text())
    classes: list[ast.AST] = [node for node in tree.body if _is_member_class(node)]
    assert classes, f"{MEMBERS} has no class {MEMBER_CLASS}"
    return needs_in(classes)
