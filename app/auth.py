"""API keys with scopes (`predict`, `correct`, `annotate`, `admin`), stored as SHA-256 hashes.

A key is shown once, when created. Requests carry it as `Authorization: Bearer <key>` or
`X-API-Key: <key>`. `admin` includes the other scopes. Look-ups are cached for a few seconds,
so a revoked key stops working within `CACHE_S`.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import current_app, g, request
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core.errors import AbvocError, Forbidden, NotFound
from core.store.db import Database, utcnow
from core.store.models import ApiKey
from core.text import quoted_names, shown
from core.times import utc_iso

if TYPE_CHECKING:
    from app.rate_limit import KeyRateLimit

SCOPES = ("predict", "correct", "outcome", "annotate", "admin")
CACHE_S = 5.0


class Unauthorized(AbvocError):
    status = 401


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


PREFIX_TRIES = 5


def create_key(db: Database, scopes: Iterable[str], name: str = "") -> dict[str, Any]:
    """A new key; the returned `key` is the only time its secret is shown."""
    scopes = sorted(set(scopes))
    unknown = set(scopes) - set(SCOPES)
    if not scopes or unknown:
        raise AbvocError(f"scopes must be some of {quoted_names(SCOPES)}, got {shown(scopes)}")
    # The prefix is 32 random bits and unique: among tens of thousands of keys two may draw
    # the same one, which is drawn again rather than failing the request.
    for _ in range(PREFIX_TRIES - 1):
        try:
            return _new_key(db, scopes, name)
        except IntegrityError:
            continue
    return _new_key(db, scopes, name)


def _new_key(db: Database, scopes: list[str], name: str) -> dict[str, Any]:
    prefix = secrets.token_hex(4)
    key = f"abv_{prefix}_{secrets.token_urlsafe(24)}"
    with db.session() as s:
        row = ApiKey(name=name, prefix=prefix, key_hash=_hash(key), scopes=scopes,
                     created_at=utcnow())
        s.add(row)
        s.flush()
        return {"id": row.id, "name": name, "prefix": prefix, "scopes": scopes, "key": key}


def list_keys(db: Database) -> list[dict[str, Any]]:
    with db.session() as s:
        return [
            {"id": k.id, "name": k.name, "prefix": k.prefix, "scopes": k.scopes,
             "created_at": utc_iso(k.created_at), "revoked_at": utc_iso(k.revoked_at)}
            for k in s.scalars(select(ApiKey).order_by(ApiKey.id))
        ]


def key_prefix(text: str) -> str:
    """The prefix of a key given whole (``abv_<prefix>_<secret>``), or the text itself."""
    parts = text.strip().split("_", 2)
    return parts[1] if len(parts) == 3 and parts[0] == "abv" else text.strip()


def revoke_key(db: Database, key: str) -> dict[str, Any]:
    """Revoke the key with this prefix (or this whole key, pasted): its prefix, when it was
    revoked and whether it already was. An error names the prefix only, never a secret."""
    prefix = key_prefix(key)
    if not prefix:
        raise AbvocError("give the key's prefix (as `abvoc keys list` shows it) or the whole "
                         "key: an empty one names no key")
    with db.session() as s:
        row = s.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).first()
        whole = prefix != key.strip()
        shown = prefix if len(prefix) <= 8 else prefix[:8] + "…"
        if row is None:
            raise NotFound(f"no API key has prefix {shown!r}; see `abvoc keys list`")
        if whole and not hmac.compare_digest(row.key_hash, _hash(key.strip())):
            # The prefix is listed by `keys list`: what is wrong is the pasted secret.
            raise NotFound(f"the key given whole is not key {shown!r}'s (its secret differs); "
                           f"give the prefix {shown!r} alone to revoke that key")
        # A conditional UPDATE: of concurrent revokes exactly one sets the time, and the
        # others are told, as a later call would be, when it was revoked.
        already = row.revoked_at is not None or s.execute(
            update(ApiKey).where(ApiKey.id == row.id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=utcnow()),
            execution_options={"synchronize_session": False}).rowcount == 0
        s.refresh(row)
        return {"prefix": row.prefix, "already": already,
                "revoked_at": utc_iso(row.revoked_at)}


class KeyCache:
    """Scopes by presented key, looked up in the store at most every `ttl_s` seconds, so a
    request costs no query and a revoked (or new) key takes effect within `ttl_s`."""

    def __init__(self, db: Database, ttl_s: float = CACHE_S) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, frozenset[str], str]] = {}
        self._by_id: dict[int, tuple[float, frozenset[str]]] = {}

    def scopes(self, key: str) -> frozenset[str]:
        return self._lookup(key)[1]

    def identity(self, key: str) -> str:
        """Who the key is, for records such as an annotator's labels: ``name:prefix``."""
        return self._lookup(key)[2]

    def _lookup(self, key: str) -> tuple[float, frozenset[str], str]:
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
            return hit
        with self.db.reading() as s:
            row = s.scalars(select(ApiKey).where(ApiKey.key_hash == _hash(key))).first()
            found = frozenset(row.scopes) if row is not None and row.revoked_at is None \
                else frozenset()
            who = f"{(row.name or 'key')[:80]}:{row.prefix}" if row is not None else ""
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (time.monotonic(), found, who)
        return self._cache[key]

    def identify(self, key: str) -> tuple[int, frozenset[str]] | None:
        """The id and scopes of a live key (None when unknown or revoked), uncached: the
        dashboard's login keeps the id, never the key."""
        with self.db.reading() as s:
            row = s.scalars(select(ApiKey).where(ApiKey.key_hash == _hash(key))).first()
            if row is None or row.revoked_at is not None:
                return None
            return int(row.id), frozenset(row.scopes)

    def identity_by_id(self, key_id: int) -> str:
        """Who key `key_id` is (``name:prefix``, as :meth:`identity`), so a label made in the
        dashboard names the same annotator as one made through the API."""
        with self.db.reading() as s:
            row = s.get(ApiKey, key_id)
            return "" if row is None else f"{(row.name or 'key')[:80]}:{row.prefix}"

    def scopes_by_id(self, key_id: int) -> frozenset[str]:
        """The scopes of key `key_id` now (empty once revoked), cached like :meth:`scopes`, so a
        dashboard session ends within CACHE_S of its key's revocation."""
        hit = self._by_id.get(key_id)
        if hit is not None and time.monotonic() - hit[0] < CACHE_S:
            return hit[1]
        with self.db.reading() as s:
            row = s.get(ApiKey, key_id)
            found = frozenset(row.scopes) if row is not None and row.revoked_at is None \
                else frozenset()
        if len(self._by_id) > 10_000:
            self._by_id.clear()
        self._by_id[key_id] = (time.monotonic(), found)
        return found


def presented_key() -> str | None:
    """The key the request carries; two different keys in the two headers are refused."""
    return key_in(request.headers.get("Authorization", ""), request.headers.get("X-API-Key"))


def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header's value, or None; the scheme's
    name is case-insensitive (RFC 9110, section 11.1), and clients send `bearer` too."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def key_in(authorization: str, api_key: str | None) -> str | None:
    """The key in these two headers' values (`Authorization: Bearer <key>`, `X-API-Key`)."""
    bearer = bearer_token(authorization)
    api_key = api_key or None
    if bearer and api_key and bearer != api_key:
        raise Unauthorized("two different API keys were sent; send one, in one header")
    return bearer or api_key


def current_scopes() -> frozenset[str]:
    """The scopes of the request's key (empty without a valid key); admin includes all."""
    if "scopes" not in g:
        g.scopes = key_scopes(current_app.extensions["abvoc_keys"], presented_key())
    return g.scopes


def key_scopes(keys: KeyCache, key: str | None) -> frozenset[str]:
    """The scopes of `key` (empty without a valid key); admin includes all."""
    scopes = keys.scopes(key) if key else frozenset()
    return frozenset(SCOPES) if "admin" in scopes else scopes


def current_identity() -> str:
    """The request's key as ``name:prefix`` (empty without a valid key)."""
    key = presented_key()
    return current_app.extensions["abvoc_keys"].identity(key) if key else ""


def within_rate(limit: KeyRateLimit | None, keys: KeyCache, key: str | None) -> None:
    """A 429 when `key` is past the service's request rate (none is set by default)."""
    if limit is not None and key:
        who = keys.identity(key)
        limit.check(who, who.rpartition(":")[2])


def check_key(scope: str) -> str:
    """The request's key, once it is known and holds `scope`: 401 without a valid key, 403
    without the scope (before anything else about the request is judged)."""
    key = presented_key()
    if key is None:
        raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
    scopes = current_scopes()
    if not scopes:
        raise Unauthorized("the API key is unknown or revoked")
    if scope not in scopes:
        raise Forbidden(f"this API key lacks the {scope!r} scope")
    return key


def require(scope: str) -> Callable:
    """A view decorator: 401 without a valid key, 403 without `scope`."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            key = check_key(scope)
            within_rate(current_app.extensions.get("abvoc_rate"),
                        current_app.extensions["abvoc_keys"], key)
            return view(*args, **kwargs)

        wrapped.required_scope = scope  # type: ignore[attr-defined]
        return wrapped

    return decorate
