"""A client for a candidate served by an Open Inference Protocol (V2) REST endpoint the team runs
(Triton, KServe, Seldon MLServer, ...), so abvoc can split traffic in front of it.

    client = RemoteClient("http://10.0.0.5:8080", "iris", timeout_ms=500, retries=1)
    outputs = client.infer({"features": batch})          # {"probabilities": array}
    client.close()

It speaks V2 JSON, or with ``binary_data`` the binary tensor data extension both ways (Triton and
KServe read it, MLServer does not: a large tensor then skips JSON's text on both sides), through
libcurl (pycurl). In V2 JSON, BYTES inputs go as plain UTF-8 strings (only a value that is not
UTF-8 as base64 marked ``content_type = "base64"``, which MLServer reads and KServe does not).
Each call takes an
easy handle from a pool, and each handle keeps its connection alive for the next call, so calls
from many threads run at once with never more than ``pool_size`` connections kept; a burst
beyond that opens extra ones rather than waiting for a free one. libcurl does the HTTP work in C
with the GIL released: through urllib3, whose responses the standard library's email package
parses, the call to MLServer took 1.2-1.7 ms longer in `bench_v2 --breakdown` (a third more).
``timeout_ms`` is a deadline for the whole call, retries included: each attempt gets only what
is left as libcurl's limit for the whole transfer, connecting included, so a server that hangs
or trickles its answer is cut off at the deadline.

Errors are AbvocErrors: :class:`RemoteTimeout` (504) for a deadline passed, so a guardrail can
count timeouts apart; :class:`RemoteUnavailable` (503) when nothing answers; :class:`RemoteError`
(502) for a server error, carrying the server's status and message, :class:`RemoteRefused`
(502, not retried) when it refused an input that matched the manifest; :class:`RemoteBadInput`
(400) for an input its encoding cannot carry. Only connection failures and 502/503/504
answers are retried: a model error would only repeat. Each error says whether the same input
would fail the same way again (`repeats`: a redirect, a malformed answer, a 4xx other than
408/425/429), so the caller is told to try again only where that may help.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import numpy as np
import orjson
import pycurl

from core.masking import hide_userinfo
from core.v2_binary import BINARY_OUTPUT
from serving.bundles.binary import HEADER as BINARY_HEADER
from serving.bundles.binary import Chunks, read_tensor, split, to_binary
from serving.bundles.manifest import RemoteSpec
from serving.bundles.tensors import TensorError, finite_for_json, to_v2, v2_json
from serving.remote_errors import (
    RemoteBadInput,
    RemoteError,
    RemoteRefused,
    RemoteTimeout,
    RemoteUnavailable,
    passes,
)

RETRY_STATUSES = frozenset({502, 503, 504})
_MAX_BODY = 64 << 20
_MAX_BACKOFF_S = 0.1


# libcurl's errors that mean the answer broke off (a timeout is its own; anything else:
# unreachable).
_BROKE_OFF = frozenset({pycurl.E_GOT_NOTHING, pycurl.E_RECV_ERROR, pycurl.E_SEND_ERROR,
                        pycurl.E_PARTIAL_FILE})


class _Handles:
    """libcurl easy handles, each with its connection kept alive. A call takes one and gives it
    back, so no two threads use a handle at once; at most `keep` idle ones are kept."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._idle: list[pycurl.Curl] = []
        self._lock = threading.Lock()
        self._closed = False

    def take(self) -> pycurl.Curl:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        handle = pycurl.Curl()
        handle.setopt(pycurl.NOSIGNAL, 1)  # timeouts without signals: threads call at once
        handle.setopt(pycurl.PROXY, "")  # the URL is the server: never an environment proxy
        handle.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        return handle

    def give(self, handle: pycurl.Curl) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.keep:
                self._idle.append(handle)
                return
        handle.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for handle in idle:
            handle.close()


class _Body:
    """The answer's bytes as libcurl delivers them, refused past `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.chunks: list[bytes] = []

    @property
    def too_large(self) -> bool:
        return self.size > self.limit

    def write(self, chunk: bytes) -> int | None:
        self.size += len(chunk)
        if self.too_large:
            return 0  # fewer bytes taken than given: libcurl stops the transfer
        self.chunks.append(chunk)
        return None


class RemoteClient:
    """One remote model (and version); `infer` is safe to call from many threads at once."""

    def __init__(self, url: str, model: str, version: str | None = None, *,
                 timeout_ms: float = 1000.0, retries: int = 0, pool_size: int = 16,
                 binary_data: bool = False) -> None:
        if timeout_ms <= 0 or retries < 0 or pool_size < 1:
            raise ValueError("timeout_ms must be positive, retries >= 0, pool_size >= 1")
        self.url = url.rstrip("/")
        self.shown_url = hide_userinfo(self.url)  # what messages and logs name: no credentials
        self.model = model
        self.version = version
        self.timeout_s = timeout_ms / 1000.0
        self.retries = retries
        self.binary_data = binary_data
        base = f"{self.url}/v2/models/{quote(model, safe='')}"
        if version is not None:
            base += f"/versions/{quote(str(version), safe='')}"
        self._model_url = base
        self._handles = _Handles(pool_size)
        self._closed = threading.Event()

    @classmethod
    def from_spec(cls, spec: RemoteSpec, pool_size: int = 16) -> RemoteClient:
        return cls(spec.url, spec.model, spec.version, timeout_ms=spec.timeout_ms,
                   retries=spec.retries, pool_size=pool_size, binary_data=spec.binary_data)

    def infer(self, inputs: Mapping[str, np.ndarray], *, outputs: list[str] | None = None,
              parameters: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
        """The model's named outputs for these named inputs, within the deadline."""
        binary = self.binary_data
        try:
            if binary:
                packed = [to_binary(n, a) for n, a in inputs.items()]
                tensors = [tensor for tensor, _ in packed]
            else:
                # BYTES as plain UTF-8 strings, as Triton's and MLServer's clients send them:
                # KServe ignores content_type "base64" and gave its model the base64 text.
                tensors = [to_v2(n, np.asarray(a), arrays=True, text=True)
                           for n, a in inputs.items()]
                finite_for_json(tensors)
        except TensorError as exc:
            raise RemoteBadInput(exc.message) from exc
        body: dict[str, Any] = {"inputs": tensors}
        if outputs:
            body["outputs"] = [{"name": n, "parameters": {"binary_data": True}} if binary
                               else {"name": n} for n in outputs]
        if parameters or binary:
            body["parameters"] = {**(parameters or {}), **({BINARY_OUTPUT: True} if binary
                                                           else {})}
        if binary:
            head = orjson.dumps(body)
            answer, rest = self._call("POST", "/infer", b"".join([head, *(r for _, r in packed)]),
                                      header_length=len(head))
        else:
            answer, rest = self._call("POST", "/infer", v2_json(body))
        tensors = answer.get("outputs")
        if not isinstance(tensors, list) or not all(isinstance(t, dict) for t in tensors):
            raise RemoteError(f"{self._what()} answered without an 'outputs' list of tensors "
                              f"(its answer has the keys {sorted(answer)[:10]})", repeats=True)
        try:
            chunks = None if rest is None else Chunks(rest)
            out: dict[str, np.ndarray] = {}
            for tensor in tensors:
                name = tensor["name"]
                # Passed on, a name that is no string was a V2 output clients cannot read, and
                # a name given twice kept its last tensor silently.
                if not isinstance(name, str) or not name:
                    raise TensorError(f"a tensor's 'name' must be a non-empty string, got "
                                      f"{repr(name)[:60]}")
                if name in out:
                    raise TensorError(f"output {name[:100]!r} is given twice")
                # The model's answer: NaN and infinities in it are its own, kept as they are.
                out[name] = read_tensor(tensor, chunks, finite=False)
            if chunks is not None:
                chunks.finish()
            return out
        except KeyError as exc:
            raise RemoteError(f"{self._what()} answered with malformed outputs: a tensor has no "
                              f"{exc.args[0]!r}", repeats=True) from exc
        except (TypeError, AttributeError, TensorError) as exc:
            raise RemoteError(f"{self._what()} answered with malformed outputs: {exc}",
                              repeats=True) from exc

    def metadata(self) -> dict[str, Any]:
        """The model's V2 metadata: its inputs, outputs, platform and versions."""
        return self._call("GET", "", None)[0]

    def server_metadata(self) -> dict[str, Any]:
        """The server's V2 metadata (`GET /v2`): its name, version and extensions."""
        deadline = time.monotonic() + self.timeout_s
        return self._attempt("GET", f"{self.url}/v2", None, deadline, None)[0]

    def ready(self) -> bool:
        """True when the server says the model is ready; False on any error or timeout."""
        try:
            self._call("GET", "/ready", None, retry=False)
        except RemoteError:
            return False
        return True

    def close(self) -> None:
        self._closed.set()
        self._handles.close()

    def __enter__(self) -> RemoteClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one call: attempts within one deadline ------------------------------------------------

    def _call(self, method: str, path: str, body: bytes | None, *, retry: bool = True,
              header_length: int | None = None) -> tuple[dict[str, Any], memoryview | None]:
        """The answer's JSON, and its binary part when it came with the binary extension."""
        if self._closed.is_set():
            raise RemoteUnavailable(f"{self._what()}: the client is closed")
        deadline = time.monotonic() + self.timeout_s
        attempts = 1 + (self.retries if retry else 0)
        last: RemoteError | None = None
        for attempt in range(attempts):
            if attempt:
                pause = min(_MAX_BACKOFF_S, 0.01 * 2 ** (attempt - 1))
                if deadline - time.monotonic() <= pause:
                    break
                time.sleep(pause)
            try:
                return self._attempt(method, self._model_url + path, body, deadline,
                                     header_length)
            except RemoteError as exc:
                last = exc
                if isinstance(exc, RemoteTimeout) or not _retryable(exc):
                    raise
        assert last is not None
        raise last

    def _attempt(self, method: str, url: str, body: bytes | None, deadline: float,
                 header_length: int | None) -> tuple[dict[str, Any], memoryview | None]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise self._timeout()
        limit_ms = max(1, int(left * 1000))
        received = _Body(_MAX_BODY)
        answer_header: list[bytes] = []
        handle = self._handles.take()
        try:
            handle.setopt(pycurl.URL, url)
            handle.setopt(pycurl.TIMEOUT_MS, limit_ms)
            handle.setopt(pycurl.CONNECTTIMEOUT_MS, limit_ms)
            handle.setopt(pycurl.WRITEFUNCTION, received.write)
            if method == "GET":
                handle.setopt(pycurl.HTTPGET, 1)
                handle.setopt(pycurl.HTTPHEADER, [])
            else:  # no "Expect: 100-continue" wait before a large body
                kind = ["Content-Type: application/json"] if header_length is None else [
                    "Content-Type: application/octet-stream", f"{BINARY_HEADER}: {header_length}"]
                handle.setopt(pycurl.POSTFIELDS, body or b"")
                handle.setopt(pycurl.HTTPHEADER, [*kind, "Expect:"])
            if self.binary_data:
                handle.setopt(pycurl.HEADERFUNCTION, answer_header.append)
            handle.perform()
            status = handle.getinfo(pycurl.RESPONSE_CODE)
        except pycurl.error as exc:
            raise self._failed(exc, received) from None
        finally:
            handle.setopt(pycurl.WRITEFUNCTION, _ignore)  # holds no answer while idle
            if self.binary_data:
                handle.setopt(pycurl.HEADERFUNCTION, _ignore)
            self._handles.give(handle)
        return self._decode(status, b"".join(received.chunks), _binary_length(answer_header))

    def _failed(self, exc: pycurl.error, received: _Body) -> RemoteError:
        """libcurl's error as the caller's: timed out, too large, broke off or unreachable."""
        code = exc.args[0]
        reason = str(exc.args[1] if len(exc.args) > 1 else exc)
        reason = reason.replace(self.url, self.shown_url)[:300]  # libcurl may quote the URL
        if code == pycurl.E_OPERATION_TIMEDOUT:
            return self._timeout()
        if received.too_large:
            return RemoteError(f"the remote answer is larger than {received.limit} bytes",
                               repeats=True)
        if code in _BROKE_OFF:
            return RemoteUnavailable(f"{self._what()} broke off its answer: {reason}")
        return RemoteUnavailable(f"{self._what()} is unreachable: {reason}")

    def _decode(self, status: int, data: bytes, header_length: str | None
                ) -> tuple[dict[str, Any], memoryview | None]:
        if 300 <= status < 400:  # libcurl follows no redirect: a success would be misread
            raise RemoteError(f"{self._what()} answered {status}: the server redirected the "
                              "call; give the URL it serves from in [remote].url",
                              remote_status=status, repeats=True)
        rest = None
        if header_length is not None and status < 400:
            try:
                data, rest = split(data, header_length)
            except TensorError as exc:
                raise RemoteError(f"{self._what()} answered {status}: {exc.message}",
                                  remote_status=status, repeats=True) from None
        payload = _loads(data) if data else {}
        if status >= 400:
            message = _message(payload, data)
            cls = {400: RemoteRefused, 422: RemoteRefused, 503: RemoteUnavailable}.get(
                status, RemoteError)
            if cls is RemoteRefused:
                raise cls(f"{self._what()} refused the input ({status}): {message}; its "
                          "manifest's inputs and what the server takes differ",
                          remote_status=status)
            raise cls(f"{self._what()} answered {status}: {message}", remote_status=status,
                      repeats=not passes(status))
        if not isinstance(payload, dict):
            raise RemoteError(f"{self._what()} answered {status} with a body that is not a JSON "
                              "object", remote_status=status, repeats=True)
        return payload, rest

    def _timeout(self) -> RemoteTimeout:
        return RemoteTimeout(f"{self._what()} did not answer within {self.timeout_s * 1000:g} ms"
                             f" ({1 + self.retries} attempt(s) allowed)")

    def _what(self) -> str:
        version = f" version {self.version}" if self.version is not None else ""
        return f"remote model {self.model!r}{version} at {self.shown_url}"


def _loads(data: bytes) -> Any:
    """The answer's JSON (None when it is not JSON): orjson, several times the standard
    library's speed on a large tensor; the standard library for what orjson refuses but a
    Python-based server writes (NaN, Infinity)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # nested past the parser's recursion: malformed too
        return None


def _binary_length(header_lines: list[bytes]) -> str | None:
    """The answer's Inference-Header-Content-Length, when it has one."""
    prefix = BINARY_HEADER.lower().encode() + b":"
    for line in header_lines:
        if line.lower().startswith(prefix):
            return line[len(prefix):].strip().decode("latin-1")
    return None


def _ignore(_chunk: bytes) -> None:
    return None


def _retryable(exc: RemoteError) -> bool:
    if exc.remote_status is None:
        return isinstance(exc, RemoteUnavailable)
    return exc.remote_status in RETRY_STATUSES


def _message(payload: Any, data: bytes) -> str:
    """The server's own words: V2's {"error": ...}, FastAPI's {"detail": ...}, or the text."""
    if isinstance(payload, dict):
        for key in ("error", "detail", "message"):
            if payload.get(key):  # FastAPI's detail is a list of objects: JSON, not a repr
                said = payload[key]
                return (said if isinstance(said, str) else json.dumps(said, default=str))[:500]
    text = data.decode("utf-8", "replace").strip()
    return text[:500] or "(empty body)"
