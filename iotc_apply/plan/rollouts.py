"""Rollouts: which wave is due, from the account's OTA records alone.

A rollout keeps no state of its own. Its targets are ordered by a stable hash of the rollout's
name and each DUID, so every plan cuts the same waves (a device added later lands where its
hash puts it; nobody is reshuffled). Each device's latest OTA item of the upgrade says where
it is: not pushed, pending (pending, sent), succeeded (success, executed) or failed (failed,
cancelled, skipped). The decision, in order: a failure share at or past `abort` halts; a
paused rollout waits; the first wave with devices not pushed is next, due once every wave
before it has finished, met the gate (success share, failures) and soaked. Two CI runs, or a
run after a crash, decide the same. Pure. May import: `model`.
"""

from __future__ import annotations

import datetime
import fnmatch
import hashlib
from collections.abc import Callable

from ..model import (
    Address,
    DesiredFirmware,
    DesiredRollout,
    LiveDevice,
    LiveOtaItem,
    Snapshot,
)
from .model import Action, Change, Reason, RolloutProgress, WaveRow
from .windows import inside, next_opening

PENDING = frozenset({"pending", "sent"})
SUCCEEDED = frozenset({"success", "executed"})
FAILED = frozenset({"failed", "cancelled", "skipped"})

Report = Callable[[str, Address | None, str], None]


def order(rollout: str, duid: str) -> bytes:
    """A device's place in a rollout: stable across plans, independent of the others."""
    return hashlib.sha256(f"{rollout}/{duid.casefold()}".encode()).digest()


def decide(rollout: DesiredRollout, desired_firmware: DesiredFirmware | None, snap: Snapshot,
           now: float | None, error: Report,
           warn: Report = lambda *_: None) -> tuple[RolloutProgress, Change | None]:
    """The rollout's progress, and the push of its next wave when one is due."""
    address = rollout.address
    live_fw = snap.firmwares.get(rollout.firmware)
    upgrade = snap.upgrades(rollout.firmware).get(rollout.version) if live_fw else None
    declared = next((u for u in (desired_firmware.upgrades if desired_firmware else ())
                     if u.version == rollout.version), None)

    def progress(decision: str, rows: tuple[WaveRow, ...] = (), targets: int = 0) -> \
            RolloutProgress:
        return RolloutProgress(rollout.name, rollout.firmware, rollout.version, targets,
                               rows, decision)

    if upgrade is None or upgrade.draft:
        if declared is not None and declared.release:  # this apply makes or releases it
            return progress("wait: the upgrade is released by this apply; the next plan "
                            "pushes wave 1"), None
        state = "a draft" if upgrade is not None else "not in the account"
        error("rollout-unreleased", address, f"firmware {rollout.firmware} upgrade "
              f"{rollout.version} is {state}; only a released upgrade is rolled out (set "
              "release: true on it)")
        return progress(f"blocked: upgrade {rollout.version} is {state}"), None
    template_guid = live_fw.template_guid if live_fw else ""
    wrong = _wrong_targets(rollout, snap, template_guid)
    if wrong:
        error("rollout-targets", address, wrong)
        return progress(f"blocked: {wrong}"), None
    targets = sorted(_targets(rollout, snap, template_guid),
                     key=lambda d: order(rollout.name, d.duid))
    if not targets:  # (a glob that may match devices made later: said, not refused)
        warn("rollout-no-targets", address, "no device of the firmware's template matches "
             "the targets; nothing is pushed")
        return progress("nothing to do: no device matches the targets"), None
    latest = _latest(snap.ota.get(upgrade.guid, ()))
    status = {d.guid: latest.get(d.guid) or _on_version(d, upgrade.guid) for d in targets}
    rows, bounds = _rows(rollout, targets, status)
    counted = [s for s in status.values() if s is not None]
    failed = sum(s.status in FAILED for s in counted)
    if rollout.abort_failed is not None and counted and \
            100 * failed / len(counted) >= rollout.abort_failed:
        return progress(f"halted: {failed} of {len(counted)} pushed device(s) failed (abort "
                        f"at {rollout.abort_failed}%)", rows, len(targets)), None
    due = next((i for i, (lo, hi) in enumerate(bounds)
                if any(status[d.guid] is None for d in targets[lo:hi])), None)
    if due is None:
        pending = sum(s.status in PENDING for s in counted)
        last = len(rows)
        return progress(f"wait: wave {last} in progress ({pending} device(s) pending)"
                        if pending else "complete", rows, len(targets)), None
    if rollout.paused:
        return progress(f"paused before wave {due + 1}", rows, len(targets)), None
    if rollout.windows and now is not None and not inside(rollout.windows, now):
        return progress(f"wait: outside the rollout's windows; next window opens "
                        f"{next_opening(rollout.windows, now)}", rows, len(targets)), None
    if due > 0:
        held = _gate(rollout, rows[due - 1], targets[:bounds[due - 1][1]], status, now)
        if held:
            return progress(held, rows, len(targets)), None
    lo, hi = bounds[due]
    wave = [d for d in targets[lo:hi] if status[d.guid] is None]
    # earlier waves' devices that were never pushed (added to the targets since) go too
    wave = [d for d in targets[:lo] if status[d.guid] is None] + wave
    decision = f"push wave {due + 1} ({len(wave)} device(s))"
    change = Change(address, Action.PUSH, Reason.WAVE, None, {
        "firmware": rollout.firmware, "version": rollout.version, "upgrade": upgrade.guid,
        "wave": due + 1, "devices": [{"duid": d.duid, "guid": d.guid} for d in wave]},
        note=decision)
    return progress(decision, rows, len(targets)), change


def _on_version(device: LiveDevice, upgrade: str) -> LiveOtaItem | None:
    """A device the listing shows already running the upgrade counts as a success, whoever
    put it there: it is never pushed again."""
    if device.firmware_upgrade and device.firmware_upgrade == upgrade:
        return LiveOtaItem("", device.guid, "success", None)
    return None


def _wrong_targets(rollout: DesiredRollout, snap: Snapshot, template_guid: str) -> str | None:
    """A target that can never match: a template or entity the account lacks, or another
    template than the firmware's (OTA reaches only its devices). A typo must not read as a
    rollout with nothing to do."""
    if rollout.template is not None:
        live = snap.templates.get(rollout.template)
        if live is None:
            return f"targets.template '{rollout.template}' is not in the account"
        if live.guid != template_guid:
            return (f"targets.template '{rollout.template}' is not firmware "
                    f"{rollout.firmware}'s template ({snap.template_code(template_guid)}): "
                    "an upgrade reaches only its own template's devices")
    if rollout.entity is not None and snap.entity_by_name(rollout.entity) is None:
        return f"targets.entity '{rollout.entity}' is not in the account"
    return None


def _targets(rollout: DesiredRollout, snap: Snapshot, template_guid: str) -> list[LiveDevice]:
    """Live devices the rollout names, on the firmware's template (OTA reaches no other)."""
    on_template = [d for d in snap.devices.values() if d.template_guid == template_guid]
    if rollout.template is not None:
        code_guid = snap.templates.get(rollout.template)
        return [d for d in on_template if code_guid and d.template_guid == code_guid.guid]
    if rollout.entity is not None:
        names = _subtree(snap, rollout.entity)
        return [d for d in on_template if d.entity_name in names]
    globs = [g.casefold() for g in rollout.devices]
    return [d for d in on_template
            if any(fnmatch.fnmatchcase(d.duid.casefold(), g) for g in globs)]


def _subtree(snap: Snapshot, name: str) -> set[str | None]:
    """An entity's name and its sub-entities' (an entity target includes them, as the
    official client's docstring says)."""
    top = snap.entity_by_name(name)
    if top is None:
        return set()
    guids, grew = {top.guid}, True
    while grew:
        more = {e.guid for e in snap.entities if e.parent_guid in guids} - guids
        grew = bool(more)
        guids |= more
    return {e.name for e in snap.entities if e.guid in guids}


def _latest(items: tuple[LiveOtaItem, ...]) -> dict[str, LiveOtaItem]:
    """Each device's latest item of the upgrade (a device pushed twice: the newer)."""
    out: dict[str, LiveOtaItem] = {}
    for item in items:
        kept = out.get(item.device_guid)
        if kept is None or str(item.updated or "") >= str(kept.updated or ""):
            out[item.device_guid] = item
    return out


def _rows(rollout: DesiredRollout, targets: list[LiveDevice],
          status: dict[str, LiveOtaItem | None]) -> tuple[tuple[WaveRow, ...],
                                                          list[tuple[int, int]]]:
    rows, bounds, lo = [], [], 0
    for i, wave in enumerate(rollout.waves):
        hi = max(lo, wave.size(len(targets)))
        items = [status[d.guid] for d in targets[lo:hi]]
        rows.append(WaveRow(i + 1, str(wave), hi - lo,
                            sum(s is not None and s.status in SUCCEEDED for s in items),
                            sum(s is not None and s.status in FAILED for s in items),
                            sum(s is not None and s.status in PENDING for s in items)))
        bounds.append((lo, hi))
        lo = hi
    return tuple(rows), bounds


def _gate(rollout: DesiredRollout, row: WaveRow, done: list[LiveDevice],
          status: dict[str, LiveOtaItem | None], now: float | None) -> str | None:
    """Why the next wave must wait for the waves before it (None: it may go)."""
    items = [status[d.guid] for d in done if status[d.guid] is not None]
    pending = sum(s.status in PENDING for s in items if s)
    if pending:
        return f"wait: wave {row.number} in progress ({pending} device(s) pending)"
    succeeded = [s for s in items if s and s.status in SUCCEEDED]
    failed = len(items) - len(succeeded)
    share = 100 * len(succeeded) / len(items) if items else 100
    if share < rollout.gate_success:
        return (f"halted: the gate after wave {row.number} wants {rollout.gate_success}% "
                f"success; {len(succeeded)} of {len(items)} succeeded")
    if rollout.gate_max_failed is not None and failed > rollout.gate_max_failed:
        return (f"halted: the gate after wave {row.number} allows {rollout.gate_max_failed} "
                f"failure(s); {failed} failed")
    last = max((_epoch(s.updated) for s in succeeded if s and s.updated), default=None)
    if rollout.soak and last is not None and now is not None and now < last + rollout.soak:
        until = datetime.datetime.fromtimestamp(last + rollout.soak, datetime.UTC)
        return f"wait: wave {row.number} soaking until {until:%Y-%m-%d %H:%M} UTC"
    return None


def _epoch(text: str) -> float:
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return float("inf")  # an unreadable time soaks for ever: never pushes early
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()

