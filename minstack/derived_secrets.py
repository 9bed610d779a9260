"""Secrets derived from the configured passwords, so two services agree without storing one more."""
from __future__ import annotations

import hashlib
import hmac

from minstack import masking

_METADATA_LABEL = b"minstack: neutron/nova metadata_proxy_shared_secret"
_DATABASE_LABEL = "minstack: MariaDB account {}"


def metadata_secret(settings) -> str:
    """The shared secret of the metadata proxy (neutron's OVN agent) and Nova's metadata API.

    HMAC-SHA256 of a fixed label, keyed with SERVICE_PASSWORD: it changes when that
    password does, and is masked in every log like the passwords themselves.
    """
    secret = hmac.new(settings.service_password.encode(), _METADATA_LABEL, hashlib.sha256).hexdigest()
    masking.register(secret)
    return secret


def database_password(settings, account: str) -> str:
    """The password of one service's MariaDB account (keystone, nova, ...).

    HMAC-SHA256 of the account's name, keyed with DATABASE_PASSWORD: every account has its own
    password, so the database URL in keystone.conf opens Keystone's database and no other.
    """
    secret = hmac.new(settings.database_password.encode(), _DATABASE_LABEL.format(account).encode(),
                      hashlib.sha256).hexdigest()
    masking.register(secret)
    return secret


def service_key(settings, label: str) -> str:
    """A 32-byte key a service keeps in its config (Barbican's KEK), base64: HMAC-SHA256 of label,
    keyed with SERVICE_PASSWORD, so every stack of this cloud derives the same key."""
    import base64
    digest = hmac.new(settings.service_password.encode(), f"minstack: {label}".encode(), hashlib.sha256).digest()
    secret = base64.b64encode(digest).decode()
    masking.register(secret)
    return secret
