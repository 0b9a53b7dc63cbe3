"""Every HTTP call the client layer makes, with the evidence that the real service has it.

Evidence, strongest first (tags as in ../shared/iotconnect-api.md):
- "official client": called by Avnet's own `iotconnect-rest-api` 3.0.0 (PKG), or by Avnet's
  live test scripts and tools (OLD, KLIKA, IMX), so seen working against the service;
- "vendor swagger": only in the service's published swagger (AE-orig/AE, ALV) or the C#
  SDK (NET): documented, never seen in use; the acceptance suite exercises each one;
- "assumed": no source at all (none today; a new call starts here until one is found).

The client turns a refusal that may mean "no such route" (404, whatever its body, 405, 501)
of a call that is not "official client" into `UnsupportedCall`,
whose message names the call and asks for a report, instead of a bare HTTP error.
May import: nothing else of iotc_apply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OFFICIAL, SWAGGER, ASSUMED = "official client", "vendor swagger", "assumed"
ISSUES_URL = "https://github.com/iotc-apply/iotc-apply/issues"


@dataclass(frozen=True)
class Call:
    method: str
    service: str
    path: str  # with `{name}` for each variable part
    evidence: str
    source: str
    pf: str | None = None  # a call only one platform has ("az", "aws"); None: both

    @property
    def pattern(self) -> re.Pattern[str]:
        parts = re.split(r"\{[^}]+\}", self.path)
        return re.compile("^" + "[^/]+".join(re.escape(p) for p in parts) + "$")


CALLS: tuple[Call, ...] = (
    Call("GET", "discovery", "/api/uisdk/solutionkey/{skey}/env/{env}", OFFICIAL,
         "PKG apiurl.py"),
    Call("GET", "auth", "/Auth/basic-token", OFFICIAL, "PKG credentials.py"),
    Call("POST", "auth", "/Auth/login", OFFICIAL, "PKG credentials.py"),
    Call("POST", "auth", "/Auth/refresh-token", OFFICIAL, "PKG credentials.py"),
    Call("GET", "user", "/Entity", OFFICIAL, "PKG entity.py"),
    Call("GET", "user", "/Entity/{guid}", OFFICIAL, "PKG entity.py"),
    Call("POST", "user", "/Entity", OFFICIAL, "IMX onboarding portal (live)"),
    Call("GET", "user", "/User", OFFICIAL, "PKG user.py query"),
    Call("GET", "user", "/User/{guid}", OFFICIAL, "PKG user.py"),
    Call("GET", "user", "/User/{email}/availability", OFFICIAL, "PKG user.py"),
    Call("GET", "device", "/device-template", OFFICIAL, "PKG template.py query"),
    Call("GET", "device", "/device-template/template-code/{code}", OFFICIAL,
         "PKG template.py"),
    Call("GET", "device", "/device-template/{guid}", OFFICIAL, "PKG template.py"),
    Call("POST", "device", "/device-template/quick", OFFICIAL, "PKG template.py"),
    Call("PUT", "device", "/device-template/{guid}", SWAGGER, "AE device swagger, NET"),
    Call("DELETE", "device", "/device-template/{guid}", OFFICIAL, "PKG template.py"),
    Call("GET", "device", "/device-template/datatype", SWAGGER, "AE device swagger"),
    Call("GET", "device", "/template-attribute/{templateGuid}", OFFICIAL, "PKG template.py"),
    Call("POST", "device", "/template-attribute", SWAGGER, "AE device swagger, NET"),
    Call("PUT", "device", "/template-attribute/{guid}", SWAGGER, "AE device swagger, NET"),
    Call("DELETE", "device", "/template-attribute/{guid}", SWAGGER, "AE device swagger, NET"),
    Call("GET", "device", "/template-command/{templateGuid}", OFFICIAL, "PKG command.py"),
    Call("POST", "device", "/template-command", SWAGGER, "AZ device swagger (ALV), NET"),
    Call("PUT", "device", "/template-command/{guid}", SWAGGER, "AZ device swagger (ALV), NET"),
    Call("DELETE", "device", "/template-command/{guid}", SWAGGER,
         "AZ device swagger (ALV), NET"),
    Call("GET", "device", "/Device", OFFICIAL, "PKG device.py query"),
    Call("GET", "device", "/Device/uniqueId/{duid}", OFFICIAL, "PKG device.py"),
    Call("GET", "device", "/Device/{guid}", OFFICIAL, "PKG device.py"),
    Call("POST", "device", "/Device", OFFICIAL, "PKG device.py"),
    Call("PUT", "device", "/Device/{guid}", SWAGGER, "AE device swagger, NET"),
    Call("PUT", "device", "/Device/{guid}/status", OFFICIAL, "PKG device.py"),
    Call("DELETE", "device", "/Device/{guid}", OFFICIAL, "PKG device.py"),
    Call("GET", "device", "/device/{guid}/self-signed-certificate", SWAGGER,
         "AE-orig device swagger (Azure only)", pf="az"),
    Call("GET", "firmware", "/Firmware", OFFICIAL, "PKG firmware.py"),
    Call("GET", "firmware", "/Firmware/{guid}", OFFICIAL, "PKG firmware.py"),
    Call("POST", "firmware", "/Firmware", OFFICIAL, "PKG firmware.py"),
    Call("PUT", "firmware", "/Firmware/{guid}", SWAGGER, "AZ firmware swagger, NET"),
    Call("PUT", "firmware", "/Firmware/{guid}/deprecate", OFFICIAL, "PKG firmware.py"),
    Call("GET", "firmware", "/firmware-upgrade", OFFICIAL, "PKG upgrade.py query"),
    Call("GET", "firmware", "/firmware-upgrade/{guid}", OFFICIAL, "PKG upgrade.py"),
    Call("POST", "firmware", "/firmware-upgrade", OFFICIAL, "PKG upgrade.py"),
    Call("PUT", "firmware", "/firmware-upgrade/{guid}", SWAGGER, "AZ firmware swagger, NET"),
    Call("PUT", "firmware", "/firmware-upgrade/{guid}/publish", OFFICIAL, "PKG upgrade.py"),
    Call("DELETE", "firmware", "/firmware-upgrade/{guid}", OFFICIAL, "PKG upgrade.py"),
    Call("POST", "firmware", "/ota-update", OFFICIAL, "PKG ota.py; OLD tests/firmware.py"),
    Call("GET", "firmware", "/ota-update", SWAGGER, "AZ ota swagger, NET"),
    Call("GET", "firmware", "/ota-update/{guid}", SWAGGER, "AZ ota swagger, NET"),
    Call("POST", "file", "/File", OFFICIAL, "PKG storage.py"),
    Call("GET", "file", "/File/{module}/{refGuid}", OFFICIAL, "PKG storage.py"),
    Call("DELETE", "file", "/File/{module}/{guid}", OFFICIAL, "PKG storage.py"),
)


def find(method: str, service: str, path: str) -> Call | None:
    """The table's entry for a concrete call (GUIDs filled in); the most literal match wins,
    so `/device-template/datatype` is not taken for `/device-template/{guid}`."""
    matches = [c for c in CALLS if c.method == method and c.service == service
               and c.pattern.match(path)]
    return min(matches, key=lambda c: c.path.count("{"), default=None)


def unsupported_message(call: Call, status: int) -> str:
    """What to tell a user whose service lacks a call that is not seen in use."""
    return (f"{call.method} {call.path} answered HTTP {status} as if the service had no such "
            f"call. iotc-apply takes it from the {call.evidence} ({call.source}); it has not "
            f"been seen working on a real account. Please report it at {ISSUES_URL} with the "
            "output of IOTC_API_TRACE=1 (secrets are redacted)")


def markdown_table() -> str:
    """The README's "API coverage" table."""
    lines = ["| call | service | evidence | source |", "| --- | --- | --- | --- |"]
    lines += [f"| `{c.method} {c.path}` | {c.service} | {c.evidence} | {c.source} |"
              for c in CALLS]
    return "\n".join(lines) + "\n"
