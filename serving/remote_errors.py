"""What a call to a remote candidate's server can fail with, each with the HTTP status the
caller gets and whether it is the candidate's failure (recorded, counted by its guardrails) or
the caller's (refused, nothing recorded): see serving.remote."""

from __future__ import annotations

from core.errors import AbvocError


class RemoteError(AbvocError):
    """The remote candidate failed; `remote_status` is the server's HTTP status when it sent one."""

    status = 502
    timed_out = False
    repeats = False  # whether the same input fails the same way again (no "try again")

    def __init__(self, message: str, *, remote_status: int | None = None,
                 status: int | None = None, repeats: bool | None = None) -> None:
        super().__init__(message, status=status)
        self.remote_status = remote_status
        if repeats is not None:
            self.repeats = repeats


# A server's answers that may pass if sent again: its own trouble (5xx but "not implemented" and
# "version not supported"), a request timeout, "too early", "too many requests". Any other 4xx
# (no such model, a body too large, a method or type it does not take), a redirect or a
# malformed answer comes back the same for the same input, until its operator changes something.
PASSING_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def passes(remote_status: int) -> bool:
    """Whether a server's error status may pass on a second try (see PASSING_STATUSES)."""
    return remote_status in PASSING_STATUSES or (remote_status >= 500
                                                 and remote_status not in (501, 505))


class RemoteTimeout(RemoteError):
    """The call's deadline passed; counted as an error by the guardrails."""

    status = 504
    timed_out = True


class RemoteUnavailable(RemoteError):
    """The server could not be reached (refused, reset, name not resolved)."""

    status = 503


class RemoteBadInput(RemoteError):
    """The request's input cannot be sent to this server (a value its encoding cannot carry):
    the caller's to fix, and never the candidate's failure."""

    status = 400


class RemoteRefused(RemoteError):
    """The server refused an input abvoc had checked against the candidate's manifest (its 400
    or 422): what the manifest declares and what the server takes differ, so it is the
    candidate's failure, recorded and counted by its guardrails like any other (the other
    arm answered the same input). The same input is refused again: no "try again"."""

    status = 502
    repeats = True
