"""A bundle's [remote] table: the Open Inference Protocol V2 REST endpoint that serves the
candidate instead of local stages (`serving.remote.RemoteClient` calls it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from core.masking import hide_userinfo
from serving.bundles.manifest_fields import ManifestError, get_value, no_unknown, string


@dataclass(frozen=True)
class RemoteSpec:
    """An Open Inference Protocol V2 REST endpoint that serves the candidate."""

    url: str
    model: str
    version: str | None = None
    timeout_ms: float = 1000.0
    retries: int = 0
    binary_data: bool = False


def remote_spec(data: Any) -> RemoteSpec:
    """The manifest's [remote] table, checked; a URL is quoted only without its user part
    (README: a remote's URL is never shown with its user or password)."""
    if not isinstance(data, dict):
        raise ManifestError("[remote] must be a table")
    no_unknown(data, {"url", "model", "version", "timeout_ms", "retries", "binary_data"}, "remote")
    if "url" in data and not isinstance(data["url"], str):  # get_value would quote it
        raise ManifestError("remote.url must be a string, an http:// or https:// URL")
    url = string(data, "url", "remote", required=True)
    try:  # urllib raises on a host it cannot read ("http://[::1") and on a port past 65535
        parts = urlsplit(url)
        parts.port  # noqa: B018 - read for its check
    except ValueError as exc:
        raise ManifestError(f"remote.url {_shown(url)!r} is not a URL that can be read "
                            f"({exc}): write it as http://host:port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ManifestError(f"remote.url {_shown(url)!r} must be an http:// or https:// URL "
                            "with a host")
    if "?" in url or "#" in url:  # <url>/v2/models/... would land in the query or be cut off
        raise ManifestError(f"remote.url {_shown(url)!r} must have no query or fragment ('?', "
                            "'#'): abvoc calls <url>/v2/models/<model>/infer, so give the "
                            "server's base URL alone")
    model = string(data, "model", "remote", required=True)
    version = get_value(data, "version", (str, int), "remote")
    if version == "":  # it would call .../versions//infer
        raise ManifestError("remote.version must not be empty: name the server's model version, "
                            "or leave the key out for the model's default")
    timeout = get_value(data, "timeout_ms", (int, float), "remote")
    retries = get_value(data, "retries", int, "remote")
    if timeout is not None and not 1 <= timeout <= 120_000:
        raise ManifestError(f"remote.timeout_ms must be between 1 and 120000, got {timeout}")
    if retries is not None and not 0 <= retries <= 10:
        raise ManifestError(f"remote.retries must be between 0 and 10, got {retries}")
    return RemoteSpec(url.rstrip("/"), model, None if version is None else str(version),
                      float(timeout or 1000.0), retries or 0,
                      bool(get_value(data, "binary_data", bool, "remote")))


def _shown(url: str) -> str:
    """The URL as a refusal quotes it: without its user part (hide_userinfo), and where it has
    no '://' for hide_userinfo to find the user part by ('alice:pw@host', 'http:/a:pw@host'),
    without anything before its last '@'."""
    if "://" not in url and "@" in url:
        return "***@" + url.rpartition("@")[2]
    return hide_userinfo(url)
