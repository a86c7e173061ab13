"""API keys: secrets, their hashes, ids and scopes. Pure: no store, no clock."""

from __future__ import annotations

import hashlib
import secrets

from ai_pipeline.ports import ApiKey

SUBMIT, READ, ADMIN = "submit", "read", "admin"  # admin grants the other two
# Recognisable in a config file, a log line or a secret scanner's rules.
SECRET_PREFIX = "aip_"  # noqa: S105 (a prefix, not a secret)
KEY_ID_PREFIX = "k_"


def new_secret() -> str:
    """32 random bytes (256 bits), shown once to whoever creates the key."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return KEY_ID_PREFIX + secrets.token_hex(4)


def hash_secret(secret: str) -> str:
    """SHA-256, unsalted and fast, on purpose: the secrets are 256 random bits, not
    passwords, so no dictionary or brute-force search can reverse the hash and slow
    hashing (bcrypt, argon2) would only cost every request time. Unsalted, the hash is
    also the lookup key, so a request costs one indexed read, not a scan."""
    return hashlib.sha256(secret.encode()).hexdigest()


def grants(key: ApiKey, scope: str) -> bool:
    """Whether ``key`` may do what ``scope`` allows: ``admin`` allows everything."""
    return scope in key.scopes or ADMIN in key.scopes


def encode_scopes(scopes: frozenset[str]) -> str:
    return ",".join(sorted(scopes))


def decode_scopes(text: str) -> frozenset[str]:
    return frozenset(s for s in text.split(",") if s)
