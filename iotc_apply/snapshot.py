"""Read the live objects a plan needs, with list endpoints, in parallel.

Requests for an account with N devices over T templates, F firmwares and U upgrades, page
size P: 1 entity list, the template list, 2 per declared template (detail for commands,
attributes), one device listing per live template (ceil(N_t/P) + 1 each, in parallel), the
firmware list, 1 detail per relevant firmware and 1 file listing per upgrade of it:
within ceil(N/P) + 4T + 2F + U + 10. Never one request per device.
The fingerprint of every object read lets `apply PLANFILE` refuse a stale plan.
May import: `client`, `model`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from .client import FIRMWARE_MODULE, IoTConnect
from .client.session import PAGES_AHEAD
from .model import Identity, LiveAttribute, LiveDevice, LiveOtaItem, LiveTemplate, Snapshot

T = TypeVar("T")
R = TypeVar("R")


def take(api: IoTConnect, templates: Iterable[str] | None, firmwares: Iterable[str] | None,
         parallelism: int = 10, page_size: int = 100) -> Snapshot:
    """Read the account; `templates`/`firmwares` name those whose details the plan needs
    (None: all of them, for export)."""
    with start(api, parallelism, page_size) as pending:
        return pending.finish(templates, firmwares)


def start(api: IoTConnect, parallelism: int = 10, page_size: int = 100) -> Pending:
    """Begin reading what every plan reads (login, entities, templates, every template's
    devices, firmwares) before the manifests say which details they need: the listings run
    while the caller loads manifests and scans its key store. Use as a context manager."""
    return Pending(api, parallelism, page_size)


class Pending:
    """A snapshot under way. `finish` adds the details the manifests ask for and returns the
    Snapshot; leaving the `with` block without finishing stops the listings at their next
    page (manifests that do not load need no account)."""

    def __init__(self, api: IoTConnect, parallelism: int, page_size: int) -> None:
        self.api, self.page_size = api, page_size
        self._stop = threading.Event()
        # Listings of big templates each read PAGES_AHEAD pages at once: two of them fill
        # the connection pool, and ten at once only add threads contending for it (and for
        # the GIL: 100,000 devices over 10 templates spent 1.2 s in futex waits). Small
        # listings (a page or two) still run many at a time.
        self._pages_in_flight = _Budget(2 * PAGES_AHEAD)
        self._pool = _DaemonPool(max(1, parallelism))
        pool = self._pool
        self._identity = pool.submit(api.session.identity)
        self._entities = pool.submit(api.entities.list)
        self._templates = pool.submit(self._list_templates)
        self._firmwares = pool.submit(lambda: list(api.firmware.list(page_size=page_size)))

    def __enter__(self) -> Pending:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._pool.shutdown()

    def identity(self) -> Identity:
        return self._identity.result()

    def _list_templates(self) -> tuple[dict[str, LiveTemplate], list[Future[list[LiveDevice]]]]:
        """The template list, then each live template's device pages (as soon as it is known
        how many there are: the template's `deviceCount` lets them come concurrently)."""
        live = {t.code: t for t in self.api.templates.list(page_size=self.page_size)}
        return live, [self._pool.submit(partial(self._devices, t)) for t in live.values()]

    def _devices(self, template: LiveTemplate) -> list[LiveDevice]:
        out: list[LiveDevice] = []
        pages = min(PAGES_AHEAD, -(-(template.device_count or 0) // self.page_size) or 1)
        with self._pages_in_flight.hold(pages):
            for device in self.api.devices.list(template.guid, self.page_size,
                                                template.device_count):
                if self._stop.is_set():
                    break  # closing the listing cancels the pages it had asked for ahead
                out.append(device)
        return out

    def finish(self, templates: Iterable[str] | None, firmwares: Iterable[str] | None) \
            -> Snapshot:
        """The account as read; `templates`/`firmwares` name those whose details the plan
        needs (None: all of them, for export)."""
        api, pool = self.api, self._pool
        live_templates, device_pages = self._templates.result()
        wanted_templates = set(live_templates if templates is None else templates)
        wanted_firmwares = None if firmwares is None else set(firmwares)
        details = _map(pool, lambda code: _template_detail(api, live_templates[code]),
                       [c for c in live_templates if c in wanted_templates])
        # a name may belong to deprecated firmware and to the one in use: the latter wins
        live_firmwares = {f.name: f for f in sorted(self._firmwares.result(),
                                                    key=lambda f: not f.deprecated)}
        fw_details = _map(pool, lambda f: api.firmware.get(f.guid) or f,
                          [f for n, f in live_firmwares.items()
                           if wanted_firmwares is None or n in wanted_firmwares])
        upgrades = [u for fw in fw_details for u in fw.upgrades or ()]
        files = _map(pool, lambda u: (u.guid, api.files.list(FIRMWARE_MODULE, u.guid)),
                     upgrades)
        with_details = {code: template for code, template, _ in details}
        return Snapshot(
            identity=self.identity(), entities=tuple(self._entities.result()),
            templates={**live_templates, **with_details},
            attributes={code: attrs for code, _, attrs in details},
            devices={d.duid: d for page in device_pages for d in page.result()},
            firmwares={**live_firmwares, **{f.name: f for f in fw_details}},
            files=dict(files))


class _Budget:
    """A counting semaphore whose holders take several units at once."""

    def __init__(self, units: int) -> None:
        self._free = units
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, units: int) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: self._free >= units)
            self._free -= units
        try:
            yield
        finally:
            with self._cond:
                self._free += units
                self._cond.notify_all()


class _DaemonPool:
    """A fixed set of worker threads that do not hold the process open. A snapshot started
    before the manifests loaded is abandoned when they do not; a worker may then sit in a
    request to a network that hangs (up to the timeout, times the retries), and `iotc` must
    exit with its manifest errors, not wait for it. (ThreadPoolExecutor joins its workers at
    exit.) Results come back as Futures, exceptions included."""

    def __init__(self, workers: int) -> None:
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = \
            queue.SimpleQueue()
        self._workers = [threading.Thread(target=self._work, name=f"iotc-snapshot-{i}",
                                          daemon=True) for i in range(workers)]
        for worker in self._workers:
            worker.start()

    def submit(self, fn: Callable[[], R]) -> Future[R]:
        future: Future[R] = Future()
        self._queue.put((future, fn))
        return future

    def shutdown(self) -> None:
        """Queued work is cancelled, running work is left to finish, the workers end."""
        with contextlib.suppress(queue.Empty):
            while True:
                item = self._queue.get_nowait()
                if item is not None:
                    item[0].cancel()
        for _ in self._workers:
            self._queue.put(None)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            future, fn = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)


def _template_detail(api: IoTConnect, template: LiveTemplate) -> \
        tuple[str, LiveTemplate, tuple[LiveAttribute, ...]]:
    detail = api.templates.get(template.guid) or template
    return template.code, detail, api.templates.attributes(template.guid)


def _map(pool: _DaemonPool, fn: Callable[[T], R], items: list[T]) -> list[R]:
    """Run `fn` over `items` on the pool, results in order; the first failure is raised."""
    return [f.result() for f in [pool.submit(partial(fn, item)) for item in items]]


def with_ota(api: IoTConnect, snap: Snapshot, upgrades: Iterable[str],
             parallelism: int = 10) -> Snapshot:
    """The snapshot with the OTA items of these upgrades (the rollouts' state). Read only
    when a rollout is declared; nothing else in a plan needs it."""
    wanted = set(upgrades)
    if not wanted:
        return snap
    return dataclasses.replace(snap, ota=ota_items(api, wanted, parallelism))


def ota_items(api: IoTConnect, upgrades: set[str],
              parallelism: int = 10) -> dict[str, tuple[LiveOtaItem, ...]]:
    """Every device item of every OTA update that pushed one of these upgrades: the list
    of updates sent, then each update's devices, `parallelism` at a time (a rollout over
    10,000 devices is a hundred updates of 100: read one by one at 150 ms, 15 s)."""
    sent = [(ota, upgrade) for ota, upgrade in api.firmware.ota_updates()
            if upgrade in upgrades]
    found: dict[str, list[LiveOtaItem]] = {guid: [] for guid in upgrades}
    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(sent) or 1))) as pool:
        for (_, upgrade), items in zip(sent, pool.map(lambda s: api.firmware.ota_items(s[0]),
                                                      sent), strict=True):
            found[upgrade].extend(items)
    return {guid: tuple(items) for guid, items in found.items()}
