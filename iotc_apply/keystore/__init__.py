"""The device key store, in six rooms:

- `store`: KeyStore (one account's device folders; keys written before registration),
- `commit`: new device folders made durable many at a time (one filesystem sync), then placed,
- `certs`: who signs certificates, device names and config, fingerprints,
- `custody`: age recipients and identities, seal, read back, unseal, verify,
- `migrate`: the flat layout into per-account folders,
- `expiry`: which kept certificates expire soon, cached,
over `layout` (what is on disk and how it is read). May import: `safefile`, `defaults`.
"""

from .certs import (
    Issuer,
    common_name,
    device_config,
    fingerprint,
    load_issuer,
    public_key_matches,
    self_signed,
    thumbprint,
)
from .custody import KeptKey, identities, kept, private_key, recipients, seal
from .layout import EXPIRY_CACHE, KeyStoreError, account_folder, kept_cert_text
from .store import DeviceIdentity, KeyStore, unattested_message

__all__ = [
    "EXPIRY_CACHE", "DeviceIdentity", "Issuer", "KeptKey", "KeyStore", "KeyStoreError",
    "account_folder", "common_name", "device_config", "fingerprint", "identities", "kept",
    "kept_cert_text", "load_issuer", "private_key", "public_key_matches", "recipients", "seal",
    "self_signed", "thumbprint", "unattested_message",
]
