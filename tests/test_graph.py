"""The step graph orders a plan the way the service requires."""

from __future__ import annotations

from iotc_apply.apply.graph import Step, build
from iotc_apply.model import Address, Kind
from iotc_apply.plan import Account, Action, Change, Plan, Reason

T = Address(Kind.TEMPLATE, "sensor01")
D = Address(Kind.DEVICE, "d-1")
F = Address(Kind.FIRMWARE, "FW1")
U1, U2 = Address(Kind.UPGRADE, "FW1@1.0"), Address(Kind.UPGRADE, "FW1@2.0")


def plan_of(*changes: Change) -> Plan:
    return Plan(Account("aws", "poc", "C", False), tuple(changes), 0)


def order_ok(graph, first: Step, then: Step) -> bool:  # type: ignore[no-untyped-def]
    """`then` depends on `first`, directly or through other steps."""
    todo, seen = list(graph.after[then]), set()
    while todo:
        step = todo.pop()
        if step == first:
            return True
        if step not in seen:
            seen.add(step)
            todo += graph.after[step]
    return False


def test_a_template_replacement_cascade_runs_delete_then_create_in_order() -> None:
    graph = build(plan_of(
        Change(T, Action.REPLACE, Reason.FORCED, {"code": "sensor01"}, {"code": "sensor01"}),
        Change(D, Action.REPLACE, Reason.CASCADE, {"template": "sensor01"},
               {"template": "sensor01"})))
    assert order_ok(graph, Step(D, "delete"), Step(T, "delete"))
    assert order_ok(graph, Step(T, "delete"), Step(T, "create"))
    assert order_ok(graph, Step(T, "create"), Step(D, "create"))
    assert not order_ok(graph, Step(D, "create"), Step(T, "create"))


def test_creates_follow_references_and_old_upgrades_go_after_new_ones() -> None:
    graph = build(plan_of(
        Change(T, Action.CREATE, Reason.NEW, None, {"code": "sensor01"}),
        Change(F, Action.CREATE, Reason.NEW, None, {"template": "sensor01"}),
        Change(U2, Action.CREATE, Reason.NEW, None, {"firmware": "FW1"}),
        Change(U1, Action.DELETE, Reason.REMOVED, {"firmware": "FW1"}, None)))
    assert order_ok(graph, Step(T, "create"), Step(F, "create"))
    assert order_ok(graph, Step(F, "create"), Step(U2, "create"))
    assert order_ok(graph, Step(U2, "create"), Step(U1, "delete"))


def test_a_template_leaves_after_its_devices_and_firmware() -> None:
    graph = build(plan_of(
        Change(T, Action.DELETE, Reason.DESTROY, {"code": "sensor01"}, None),
        Change(D, Action.DELETE, Reason.DESTROY, {"template": "sensor01"}, None),
        Change(F, Action.DEPRECATE, Reason.DESTROY, {"template": "sensor01"}, None)))
    assert order_ok(graph, Step(D, "delete"), Step(T, "delete"))
    assert order_ok(graph, Step(F, "deprecate"), Step(T, "delete"))
    assert graph.after[Step(D, "delete")] == frozenset()
