"""Which package pays for which unit: the pure allocation rule of §6 (packages first, excess on demand).

Packages are consumed earliest expiry first (ties: earliest start, then package id, so the order is total and
deterministic). Units are served in the order given; a unit that needs more than the current package holds takes
what is left there and the rest from the next package, and whatever no package covers is charged on demand.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class PackageBalance:
    """What a package still holds."""

    package_id: str
    remaining: int
    valid_from: datetime
    expires_at: datetime

    def usable_at(self, at: datetime) -> bool:
        return self.remaining > 0 and self.valid_from <= at < self.expires_at


@dataclass(frozen=True, slots=True)
class Demand:
    """A billable unit to charge: its id and its quantity (e.g. SMS segments)."""

    unit_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class UnitAllocation:
    """How one unit is paid: draws from packages, in consumption order, and the on-demand rest."""

    unit_id: str
    quantity: int
    draws: tuple[tuple[str, int], ...]
    on_demand: int

    @property
    def from_packages(self) -> int:
        return sum(quantity for _, quantity in self.draws)


@dataclass(frozen=True, slots=True)
class Allocation:
    units: tuple[UnitAllocation, ...]
    taken: dict[str, int] = field(default_factory=dict)  # package id -> quantity taken (only packages touched)

    @property
    def on_demand(self) -> int:
        return sum(unit.on_demand for unit in self.units)


def consumption_order(packages: Iterable[PackageBalance]) -> list[PackageBalance]:
    return sorted(packages, key=lambda p: (p.expires_at, p.valid_from, p.package_id))


def usable(packages: Iterable[PackageBalance], at: datetime) -> list[PackageBalance]:
    """The packages that can pay at ``at`` (started, not expired, not empty), in consumption order."""
    return consumption_order(p for p in packages if p.usable_at(at))


def allocate(demands: Sequence[Demand], packages: Sequence[PackageBalance]) -> Allocation:
    """Allocate ``demands`` (in order) to ``packages`` (all assumed usable; consumed earliest expiry first).

    Raises ``ValueError`` for a non-positive demand, a negative balance or a package listed twice.
    """
    ids = [p.package_id for p in packages]
    if len(set(ids)) != len(ids):
        raise ValueError("a package is listed twice")
    if any(p.remaining < 0 for p in packages):
        raise ValueError("a package has a negative balance")
    queue = [p for p in consumption_order(packages) if p.remaining > 0]
    left = [p.remaining for p in queue]
    position = 0
    taken: dict[str, int] = {}
    units: list[UnitAllocation] = []
    for demand in demands:
        if demand.quantity <= 0:
            raise ValueError(f"unit {demand.unit_id} has a non-positive quantity {demand.quantity}")
        need = demand.quantity
        draws: list[tuple[str, int]] = []
        while need and position < len(queue):
            package_id = queue[position].package_id
            take = min(need, left[position])
            draws.append((package_id, take))
            taken[package_id] = taken.get(package_id, 0) + take
            left[position] -= take
            need -= take
            if left[position] == 0:
                position += 1
        units.append(UnitAllocation(demand.unit_id, demand.quantity, tuple(draws), on_demand=need))
    return Allocation(tuple(units), taken)
