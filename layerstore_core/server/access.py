"""Scopes of the Docker token protocol: the grammar, and what a request needs.

A scope is ``type:name:actions`` (``repository:library/app:pull,push``,
``registry:catalog:*``). A name may hold a ``host:port/`` prefix
(``repository:127.0.0.1:5000/app:pull``), so the type ends at the first ``:`` and the actions
start after the last one; the type may carry a class (``repository(plugin):name:pull``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping

_TYPE = re.compile(r"^[a-z0-9]+(?:\([a-z0-9]+\))?$")
_ACTION = re.compile(r"^(?:[a-z]+|\*)$")

PULL, PUSH, DELETE = "pull", "push", "delete"


class ScopeError(ValueError):
    """The text is not a scope of the token protocol."""


@dataclasses.dataclass(frozen=True)
class Scope:
    """One resource and the actions wanted on it."""

    type: str
    name: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def repository(name: str, *actions: str) -> Scope:
    """``repository:<name>:<actions>``."""
    return Scope("repository", name, actions)


CATALOG = Scope("registry", "catalog", ("*",))


def parse_scope(text: str) -> Scope:
    """Parse one scope; the name is everything between the first and the last ``:``."""
    kind, sep, rest = text.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not name or not _TYPE.match(kind):
        raise ScopeError(f"not a scope (type:name:actions): {text!r}")
    parsed = tuple(a for a in actions.split(",") if a)
    if not all(_ACTION.match(a) for a in parsed):
        raise ScopeError(f"bad actions in scope {text!r}")
    return Scope(kind, name, parsed)


def parse_scopes(values: Iterable[str]) -> list[Scope]:
    """Scopes from ``scope`` parameters, each of which may list several separated by spaces."""
    return [parse_scope(part) for value in values for part in value.split()]


class Grants:
    """What a token's ``access`` claim allows; ``*`` stands for every action."""

    def __init__(self, access: object, subject: object = None) -> None:
        #: The token's ``sub`` (the user, for the access log).
        self.subject = subject if isinstance(subject, str) else None
        self._actions: dict[tuple[str, str], set[str]] = {}
        if not isinstance(access, list):
            return
        for entry in access:
            if not isinstance(entry, Mapping):
                continue
            kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
            if isinstance(kind, str) and isinstance(name, str) and isinstance(actions, list):
                granted = self._actions.setdefault((kind, name), set())
                granted.update(a for a in actions if isinstance(a, str))

    def allows(self, scope: Scope) -> bool:
        """Whether every action of ``scope`` is granted."""
        granted = self._actions.get((scope.type, scope.name), set())
        return "*" in granted or all(a in granted for a in scope.actions)

    def missing(self, scopes: Iterable[Scope]) -> list[Scope]:
        """The scopes of ``scopes`` that are not granted whole."""
        return [s for s in scopes if not self.allows(s)]
