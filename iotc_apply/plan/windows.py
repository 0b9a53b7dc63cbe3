"""Change windows: whether a moment lies in one, and when the next one opens.

Plant and vehicle fleets take destructive changes only in maintenance windows
(Project.spec.windows). A window opens on its days at a local wall-clock time in its IANA time
zone and lasts so many minutes, possibly past midnight; daylight-saving shifts are the zone's
business (`zoneinfo`). Pure functions of the windows and a moment. May import: `model`.
"""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

from ..model import ChangeWindow

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_LOOK = 9  # days scanned for a next opening: a weekly window always opens within 8


def _openings(window: ChangeWindow, around: datetime.datetime) -> list[tuple[
        datetime.datetime, datetime.datetime]]:
    """The window's (open, close) instants on the local days from one before `around` to
    _LOOK after (the day before: a window that opened yesterday may still be open)."""
    zone = ZoneInfo(window.zone)
    today = around.astimezone(zone).date()
    out = []
    for offset in range(-1, _LOOK):
        day = today + datetime.timedelta(days=offset)
        if day.weekday() not in window.days:
            continue
        opened = datetime.datetime.combine(day, datetime.time(*window.start), tzinfo=zone)
        # the close on the local wall clock (a window of 22:00-06:00 ends at 06:00 local
        # even on the night the clocks move), as an instant
        closed = (opened.replace(tzinfo=None) + datetime.timedelta(minutes=window.minutes)) \
            .replace(tzinfo=zone)
        out.append((opened, closed))
    return out


def inside(windows: tuple[ChangeWindow, ...], now: float) -> bool:
    """True when `now` (epoch seconds) lies in any window, or none is declared."""
    if not windows:
        return True
    moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
    return any(opened <= moment < closed for w in windows
               for opened, closed in _openings(w, moment))


def next_opening(windows: tuple[ChangeWindow, ...], now: float) -> str:
    """When the next window opens, in its own zone: `Sat 2026-12-12 22:00 Europe/Berlin`."""
    moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
    upcoming = sorted((opened, w.zone) for w in windows
                      for opened, _ in _openings(w, moment) if opened > moment)
    if not upcoming:
        return "never (no window has a day)"
    opened, zone = upcoming[0]
    return f"{DAYS[opened.weekday()].capitalize()} {opened:%Y-%m-%d %H:%M} {zone}"


def outside_message(windows: tuple[ChangeWindow, ...], now: float) -> str:
    """The words a held change carries, the same in the plan and the apply report."""
    return (f"outside the change window; next window opens {next_opening(windows, now)} "
            "(Project.spec.windows); apply holds it, or pass --outside-window REASON")
