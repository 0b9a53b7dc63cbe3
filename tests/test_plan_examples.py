"""The example fleet, created through the client layer, plans as "no changes"."""

from __future__ import annotations

from pathlib import Path

from iotc_apply import snapshot
from iotc_apply.client import IoTConnect
from iotc_apply.keystore import KeyStore
from iotc_apply.manifest import load
from iotc_apply.model import DesiredFirmware, DesiredTemplate
from iotc_apply.plan import PlanOptions, make_plan

from .fleet import seed

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "manifests"


def test_example_fleet_created_as_declared_plans_no_changes(api: IoTConnect,
                                                            tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys")
    seed(api, EXAMPLES, keys)
    desired = load([str(EXAMPLES)]).desired
    snap = snapshot.take(api, [t.code for t in desired.of(DesiredTemplate)],
                         [f.name for f in desired.of(DesiredFirmware)])
    plan = make_plan(desired, snap, PlanOptions(local_keys=keys.duids()))
    assert plan.errors == () and plan.warnings == ()
    assert [str(c.address) for c in plan.changes] == []
    assert plan.unchanged == 65
