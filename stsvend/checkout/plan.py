"""`stsvend grants plan`: what writing a grants file would change in the grants table. The file is
the whole truth: a stored grant it does not list is removed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from stsvend.checkout.model import BOOKKEEPING, Entry, from_attribute
from stsvend.checkout.table import scan_items


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class FieldChange:
    """One attribute of a grant that differs; `path` like `roles[0].max_duration_seconds`."""

    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class GrantChange:
    kind: Literal["add", "change", "remove"]
    account_id: str
    principal: str
    item: dict[str, Any] | None  # the desired stored item; None for a removal
    current: dict[str, Any] | None  # the stored item without bookkeeping; None for an addition
    version: Any  # the stored item's `version`, which the write is conditional on
    fields: tuple[FieldChange, ...] = ()


@dataclass(frozen=True)
class GrantPlan:
    added: tuple[GrantChange, ...]
    changed: tuple[GrantChange, ...]
    removed: tuple[GrantChange, ...]

    @property
    def changes(self) -> tuple[GrantChange, ...]:
        return self.added + self.changed + self.removed

    @property
    def empty(self) -> bool:
        return not self.changes

    def summary(self) -> str:
        return (
            f"{len(self.added)} to add, {len(self.changed)} to change,"
            f" {len(self.removed)} to remove"
        )


def _plain(value: Any) -> Any:
    """Stored numbers as the file has them (whole numbers as int), for comparing and printing."""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _from_attribute(attribute: Mapping[str, Any]) -> Any:
    try:
        return _plain(from_attribute(attribute))
    except ValueError:
        # A type grants never use (binary, number sets): kept raw, so it differs from any grant.
        return dict(attribute)


def _diff(old: Any, new: Any, path: str = "") -> Iterator[FieldChange]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            yield from _diff(
                old.get(key, ABSENT), new.get(key, ABSENT), f"{path}.{key}" if path else key
            )
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (o, n) in enumerate(zip(old, new, strict=True)):
            yield from _diff(o, n, f"{path}[{index}]")
    elif old != new or type(old) is not type(new):
        yield FieldChange(path, old, new)


def plan_changes(client: Any, table: str, grants: Sequence[Entry]) -> GrantPlan:
    """What writing `grants` would change in the table; the file is the whole truth, so a stored
    grant it does not list is removed. Bookkeeping attributes are not compared."""
    current: dict[tuple[str, str], tuple[dict[str, Any], Any]] = {}
    for raw in scan_items(client, table):
        item = {k: _from_attribute(v) for k, v in raw.items()}
        key = (str(item.get("account_id")), str(item.get("principal")))
        version = item.get("version")
        current[key] = ({k: v for k, v in item.items() if k not in BOOKKEEPING}, version)
    desired = {(g.account_id, g.principal): g.to_item() for g in grants}

    added, changed, removed = [], [], []
    for key in sorted(desired.keys() | current.keys()):
        want = desired.get(key)
        have, version = current.get(key, (None, None))
        if have is None:
            added.append(GrantChange("add", *key, item=want, current=None, version=None))
        elif want is None:
            removed.append(GrantChange("remove", *key, item=None, current=have, version=version))
        else:
            fields = tuple(_diff(have, want))
            if fields:
                changed.append(
                    GrantChange("change", *key, item=want, current=have, version=version,
                                fields=fields)
                )
    return GrantPlan(tuple(added), tuple(changed), tuple(removed))
