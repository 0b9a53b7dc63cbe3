"""Read the live objects a plan needs, with list endpoints, in parallel.

Requests for an account with N devices over T templates, F firmwares and U upgrades, page
size P: 1 entity list, the template list, 2 per declared template (detail for commands,
attributes), one device listing per live template (ceil(N_t/P) + 1 each, in parallel), the
firmware list, 1 detail per relevant firmware and 1 file listing per upgrade of it:
within ceil(N/P) + 4T + 2F + U + 10. Never one request per device.
The fingerprint of every object read lets `apply PLANFILE` refuse a stale plan.
Imports `model` (where the `Snapshot` value lives) and the client package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .client import FIRMWARE_MODULE, IoTConnect
from .model import LiveAttribute, LiveTemplate, Snapshot

T = TypeVar("T")
R = TypeVar("R")


def take(api: IoTConnect, templates: Iterable[str] | None, firmwares: Iterable[str] | None,
         parallelism: int = 10, page_size: int = 100) -> Snapshot:
    """Read the account; `templates`/`firmwares` name those whose details the plan needs
    (None: all of them, for export)."""
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        identity = pool.submit(api.session.identity)
        entities = pool.submit(api.entities.list)
        live_templates = {t.code: t for t in api.templates.list(page_size=page_size)}
        firmware_list = pool.submit(lambda: list(api.firmware.list(page_size=page_size)))
        wanted_templates = set(live_templates if templates is None else templates)
        wanted_firmwares = None if firmwares is None else set(firmwares)
        details = _map(pool, lambda code: _template_detail(api, live_templates[code]),
                       [c for c in live_templates if c in wanted_templates])
        device_pages = _map(pool, lambda t: list(api.devices.list(t.guid, page_size,
                                                                  t.device_count)),
                            list(live_templates.values()))
        # a name may belong to deprecated firmware and to the one in use: the latter wins
        live_firmwares = {f.name: f for f in sorted(firmware_list.result(),
                                                    key=lambda f: not f.deprecated)}
        fw_details = _map(pool, lambda f: api.firmware.get(f.guid) or f,
                          [f for n, f in live_firmwares.items()
                           if wanted_firmwares is None or n in wanted_firmwares])
        upgrades = [u for fw in fw_details for u in fw.upgrades or ()]
        files = _map(pool, lambda u: (u.guid, api.files.list(FIRMWARE_MODULE, u.guid)),
                     upgrades)
        with_details = {code: template for code, template, _ in details}
        return Snapshot(
            identity=identity.result(), entities=tuple(entities.result()),
            templates={**live_templates, **with_details},
            attributes={code: attrs for code, _, attrs in details},
            devices={d.duid: d for page in device_pages for d in page},
            firmwares={**live_firmwares, **{f.name: f for f in fw_details}},
            files=dict(files))


def _template_detail(api: IoTConnect, template: LiveTemplate) -> \
        tuple[str, LiveTemplate, tuple[LiveAttribute, ...]]:
    detail = api.templates.get(template.guid) or template
    return template.code, detail, api.templates.attributes(template.guid)


def _map(pool: ThreadPoolExecutor, fn: Callable[[T], R], items: list[T]) -> list[R]:
    """Run `fn` over `items` on the pool, results in order; the first failure is raised."""
    return [f.result() for f in [pool.submit(fn, item) for item in items]]
