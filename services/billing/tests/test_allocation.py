"""The allocation rule: packages first (earliest expiry first), a unit split when a package runs out, the rest on
demand. Pure logic: examples plus hypothesis properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from magpie_billing.allocation import Demand, PackageBalance, allocate, consumption_order, usable

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def pkg(package_id: str, remaining: int, expires_days: int, valid_from_days: int = 0) -> PackageBalance:
    return PackageBalance(
        package_id, remaining, T0 + timedelta(days=valid_from_days), T0 + timedelta(days=expires_days)
    )


def test_packages_first_then_split_then_on_demand() -> None:
    allocation = allocate(
        [Demand("u1", 2), Demand("u2", 3), Demand("u3", 4)],
        [pkg("late", 2, expires_days=300), pkg("early", 2, expires_days=100)],
    )
    u1, u2, u3 = allocation.units
    assert u1.draws == (("early", 2),) and u1.on_demand == 0
    assert u2.draws == (("late", 2),) and u2.on_demand == 1
    assert u3.draws == () and u3.on_demand == 4
    assert allocation.taken == {"early": 2, "late": 2}
    assert allocation.on_demand == 5


def test_unit_split_across_two_packages() -> None:
    allocation = allocate([Demand("u1", 5)], [pkg("a", 3, 10), pkg("b", 10, 20)])
    assert allocation.units[0].draws == (("a", 3), ("b", 2))
    assert allocation.units[0].from_packages == 5
    assert allocation.taken == {"a": 3, "b": 2}


def test_no_packages_is_all_on_demand() -> None:
    allocation = allocate([Demand("u1", 3), Demand("u2", 1)], [])
    assert [u.on_demand for u in allocation.units] == [3, 1]
    assert allocation.taken == {}


def test_usable_ignores_expired_pending_and_empty_packages() -> None:
    at = T0 + timedelta(days=50)
    packages = [
        pkg("expired", 10, expires_days=50),  # expires exactly now: no longer valid
        pkg("pending", 10, expires_days=400, valid_from_days=51),
        pkg("empty", 0, expires_days=400),
        pkg("ok-late", 10, expires_days=300),
        pkg("ok-early", 10, expires_days=60),
    ]
    assert [p.package_id for p in usable(packages, at)] == ["ok-early", "ok-late"]


def test_ties_in_expiry_are_broken_deterministically() -> None:
    a = pkg("a", 1, 10, valid_from_days=1)
    b = pkg("b", 1, 10, valid_from_days=0)
    c = pkg("c", 1, 10, valid_from_days=0)
    assert [p.package_id for p in consumption_order([a, c, b])] == ["b", "c", "a"]


@pytest.mark.parametrize("quantity", [0, -1])
def test_non_positive_demand_is_rejected(quantity: int) -> None:
    with pytest.raises(ValueError):
        allocate([Demand("u", quantity)], [pkg("a", 1, 10)])


def test_bad_packages_are_rejected() -> None:
    with pytest.raises(ValueError):
        allocate([Demand("u", 1)], [pkg("a", 1, 10), pkg("a", 2, 20)])
    with pytest.raises(ValueError):
        allocate([Demand("u", 1)], [pkg("a", -1, 10)])


packages_strategy = st.lists(st.tuples(st.integers(0, 20), st.integers(1, 60), st.integers(0, 3)), max_size=8).map(
    lambda rows: [pkg(f"p{i}", r, e, v) for i, (r, e, v) in enumerate(rows)]
)
demands_strategy = st.lists(st.integers(1, 12), max_size=30).map(
    lambda qs: [Demand(f"u{i}", q) for i, q in enumerate(qs)]
)


@given(demands_strategy, packages_strategy)
def test_allocation_properties(demands: list[Demand], packages: list[PackageBalance]) -> None:
    allocation = allocate(demands, packages)
    by_id = {p.package_id: p for p in packages}
    order = [p.package_id for p in consumption_order(packages)]

    # Every unit is fully paid, nothing more: packages plus on demand equal its quantity; no empty draws.
    assert [u.unit_id for u in allocation.units] == [d.unit_id for d in demands]
    for unit, demand in zip(allocation.units, demands, strict=True):
        assert unit.quantity == demand.quantity
        assert unit.from_packages + unit.on_demand == demand.quantity
        assert unit.on_demand >= 0
        assert all(q > 0 for _, q in unit.draws)

    # Conservation: what the units drew is what the packages lost, and no package goes below zero.
    drawn: dict[str, int] = {}
    for unit in allocation.units:
        for package_id, quantity in unit.draws:
            drawn[package_id] = drawn.get(package_id, 0) + quantity
    assert drawn == allocation.taken
    for package_id, quantity in allocation.taken.items():
        assert 0 < quantity <= by_id[package_id].remaining
    total_demand = sum(d.quantity for d in demands)
    total_quota = sum(p.remaining for p in packages)
    assert sum(allocation.taken.values()) == min(total_demand, total_quota)
    assert allocation.on_demand == total_demand - min(total_demand, total_quota)

    # Earliest expiry first: a package is touched only once every earlier one is used up, and on demand only
    # once all are; the draws, in unit order, walk the packages in consumption order.
    for position, package_id in enumerate(order):
        if allocation.taken.get(package_id, 0) > 0:
            for earlier in order[:position]:
                assert allocation.taken.get(earlier, 0) == by_id[earlier].remaining
    if allocation.on_demand:
        assert all(allocation.taken.get(p, 0) == by_id[p].remaining for p in order)
    positions = [order.index(package_id) for unit in allocation.units for package_id, _ in unit.draws]
    assert positions == sorted(positions)
