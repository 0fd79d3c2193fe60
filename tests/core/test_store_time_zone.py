"""Stored times read back in UTC whatever the PostgreSQL server's own TimeZone: a server in
Pacific/Auckland handed them back at +13:00, which pages labelled UTC and stepped through by
the hour across its daylight-saving changes; and times a caller sends keep RFC 3339's offsets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text

from core.errors import AbvocError
from core.store.db import Database
from core.store.models import Candidate
from core.times import as_utc, parse_rfc3339, utc_iso
from serving.registry import Registry
from tests.support.postgres import PostgresServer


def test_a_server_in_another_zone_hands_times_back_in_utc(postgres: PostgresServer) -> None:
    url = postgres.create_database(migrated=True)
    try:
        postgres._admin(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" '
                        "SET timezone TO 'Pacific/Auckland'")
        db = Database(url)
        try:
            Registry(db).register("c", "1", description="", artifacts="/nowhere")
            with db.reading() as s:
                assert s.scalar(text("SHOW TimeZone")) == "UTC"
                stored = s.scalar(select(Candidate.created_at))
            assert stored.utcoffset() == timedelta(0)
            assert Registry(db).get("c").to_dict()["created_at"].endswith("+00:00")
        finally:
            db.dispose()
    finally:
        postgres.drop_database(url)


def test_a_time_in_any_zone_is_shown_and_counted_in_utc() -> None:
    auckland = datetime(2026, 4, 5, 2, 30, tzinfo=timezone(timedelta(hours=13)))
    assert as_utc(auckland) == auckland and as_utc(auckland).tzinfo is UTC
    assert as_utc(auckland).hour == 13 and utc_iso(auckland) == "2026-04-04T13:30:00+00:00"
    assert utc_iso(datetime(2026, 4, 4, 13, 30)) == "2026-04-04T13:30:00+00:00"  # SQLite's
    assert as_utc(None) is None and utc_iso(None) is None


@pytest.mark.parametrize("offset", ["+05:99", "-00:60", "+24:00", "+99:00"])
def test_offsets_outside_rfc_3339_are_refused(offset: str) -> None:
    with pytest.raises(AbvocError, match="'observed_at' must be an RFC 3339 time"):
        parse_rfc3339(f"2026-12-05T12:00:00{offset}", "observed_at")


def test_offsets_within_it_are_read() -> None:
    assert parse_rfc3339("2026-12-05T12:00:00+05:30", "t") == \
        datetime(2026, 12, 5, 6, 30, tzinfo=UTC)
    assert parse_rfc3339("2026-12-05T12:00:00-23:59", "t") == \
        datetime(2026, 12, 6, 11, 59, tzinfo=UTC)
