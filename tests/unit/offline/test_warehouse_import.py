"""The importer of warehouse exports: mapping, ordering, bad rows, gzip, truth from the data."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pytest

from churnwatch.schemas.events import SubscriptionEvent, UsageEvent
from churnwatch.offline.backtest.export_rows import parse_time
from churnwatch.offline.backtest.warehouse import (
    Export,
    ExportLayout,
    LayoutError,
    find_files,
    load_layout,
    time_ordered,
)

EVENTS = """account_id,event_time,event_type,value
1,2022-01-03T10:00:00,create_opportunity,
1,2022-01-03T09:00:00,add_contact,
2,2022-01-05T08:00:00,win_opportunity,1500.5
1,2022-01-04T11:00:00,create_opportunity,
,2022-01-04T11:00:00,create_opportunity,
1,yesterday,create_opportunity,
1,2022-01-04T12:00:00,,
2,2022-02-20T08:00:00,win_opportunity,-3
2,2022-03-02T08:00:00,win_opportunity,
"""
SUBSCRIPTIONS = """account_id,product,start_date,end_date,mrr,quantity,units,bill_period_months,discount
1,basic_mthly,2022-01-01,2022-02-01,200,10,users,1,0
1,meetings,2022-01-01,2022-02-01,300,5000,schedule_meeting,1,0
1,basic_annual,2022-02-01,2023-02-01,180,10,users,12,0
1,meetings,2022-02-01,2023-02-01,300,5000,schedule_meeting,12,0
2,starter_mthly,2022-01-01,2022-02-01,100,5,users,1,0
2,starter_mthly,2022-02-01,2022-03-01,100,5,users,1,0
3,starter_mthly,2022-01-15,2022-02-15,100,5,users,1,0
3,starter_mthly,2022-03-01,2022-04-01,abc,5,users,1,0
"""


def write(path: Path, text: str, compress: bool = False) -> Path:
    if compress:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_an_export_becomes_time_ordered_events_with_logins_and_subscription_changes(tmp_path: Path) -> None:
    # The events file is gzip without the .gz name: detected by its bytes.
    events = write(tmp_path / "events.csv", EVENTS, compress=True)
    subscriptions = write(tmp_path / "subs.csv", SUBSCRIPTIONS)
    export = Export(events, subscriptions, ExportLayout(add_ons=("meetings",)),
                    end=datetime(2022, 3, 1, tzinfo=UTC))
    out = list(export.events())
    assert [e.occurred_at for e in out] == sorted(e.occurred_at for e in out)
    usage = [(e.customer_id, e.kind.value, e.feature, e.amount) for e in out if isinstance(e, UsageEvent)]
    assert usage == [
        ("1", "login", None, None), ("1", "feature_use", "add_contact", None),
        ("1", "feature_use", "create_opportunity", None),
        ("1", "login", None, None), ("1", "feature_use", "create_opportunity", None),
        ("2", "login", None, None), ("2", "feature_use", "win_opportunity", 1500.5),
        ("2", "login", None, None), ("2", "feature_use", "win_opportunity", None),  # a negative value is not an amount
    ]  # the event on 2022-03-02 is after the end
    subs = [(e.customer_id, e.action.value, e.plan, e.mrr, e.previous_mrr, e.billing_period_months)
            for e in out if isinstance(e, SubscriptionEvent)]
    assert subs == [
        ("1", "started", "basic_mthly", 500.0, None, 1), ("2", "started", "starter_mthly", 100.0, None, 1),
        ("3", "started", "starter_mthly", 100.0, None, 1),
        ("1", "plan_changed", "basic_annual", 480.0, 500.0, 12), ("2", "renewed", "starter_mthly", 100.0, 100.0, 1),
        ("3", "cancelled", "starter_mthly", 0.0, 100.0, 1),  # its second period's row is unreadable
    ]
    assert all(e.schema_version == 2 for e in out if isinstance(e, SubscriptionEvent))
    report = export.report
    assert report.bad_rows == {"events: no customer id": 1, "events: unreadable time": 1,
                               "events: no event name": 1, "subscriptions: unreadable mrr": 1}
    assert report.dropped_after_end == 1 and report.event_rows == 9 and report.subscription_rows == 8
    truth = {t.customer_id: t for t in export.truth}
    assert truth["3"].churned and truth["3"].churned_at == datetime(2022, 2, 15, tzinfo=UTC)
    assert not truth["1"].churned and not truth["2"].churned  # 2's last period ends on the end day
    assert truth["1"].since == datetime(2022, 1, 1, tzinfo=UTC)


def test_the_end_defaults_to_the_latest_period_start_and_churn_is_read_from_the_periods(tmp_path: Path) -> None:
    later = SUBSCRIPTIONS + "4,starter_mthly,2022-03-01,2022-04-01,100,5,users,1,0\n"
    export = Export(write(tmp_path / "e.csv", EVENTS), write(tmp_path / "s.csv", later))
    assert export.report.end == datetime(2022, 3, 1, tzinfo=UTC)  # the unreadable row does not count
    list(export.events())
    assert {t.customer_id for t in export.truth if t.churned} == {"3"}
    assert export.report.customers == 4 and export.report.churned == 1


def test_a_gap_in_the_subscription_is_a_cancellation_and_a_new_start(tmp_path: Path) -> None:
    subs = """account_id,product,start_date,end_date,mrr
7,pro,2022-01-01,2022-02-01,50
7,pro,2022-03-15,2022-04-15,50
7,pro,2022-04-15,2022-05-15,50
"""
    events = "account_id,event_time,event_type\n7,2022-01-02T00:00:00,x\n"
    export = Export(write(tmp_path / "e.csv", events), write(tmp_path / "s.csv", subs))
    actions = [(e.action.value, e.occurred_at.date().isoformat(), e.billing_period_months)
               for e in export.events() if isinstance(e, SubscriptionEvent)]
    assert actions == [("started", "2022-01-01", 1), ("cancelled", "2022-02-01", 1),
                       ("started", "2022-03-15", 1)]  # the billing period from the period's length


def test_a_mapping_file_renames_columns_and_bad_ones_are_named(tmp_path: Path) -> None:
    events = "who;when;what\nacme;2022-05-01 10:00:00+02:00;export_report\n"
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('delimiter = ";"\nusage_kind = "feature_use"\n'
                       '[events]\ncustomer = "who"\ntime = "when"\nname = "what"\n')
    export = Export(write(tmp_path / "e.csv", events), None, load_layout(mapping))
    (login, action) = list(export.events())
    assert action.customer_id == "acme" and action.feature == "export_report"
    assert action.occurred_at == datetime(2022, 5, 1, 8, tzinfo=UTC)
    mapping.write_text('[events]\ncustomer = "who"\ncolour = "red"\n')
    with pytest.raises(LayoutError, match="events.colour"):
        load_layout(mapping)
    with pytest.raises(LayoutError, match="no column 'account_id'"):
        list(Export(write(tmp_path / "e.csv", events), None).events())


def test_sorting_spills_to_disk_in_chunks_and_merges(tmp_path: Path) -> None:
    actions = [(t, n, "c", "x", None) for n, t in enumerate([5, 3, 9, 1, 7, 3, 8, 2, 6, 4])]
    merged = list(time_ordered(iter(actions), tmp_path, chunk=3))
    assert merged == sorted(actions)
    assert list(tmp_path.iterdir()) == []  # the runs are gone once read


def test_an_export_directory_is_found_by_its_file_names(tmp_path: Path) -> None:
    write(tmp_path / "events.csv.gz", EVENTS, compress=True)
    write(tmp_path / "subscriptions.csv", SUBSCRIPTIONS)
    assert find_files(tmp_path) == (tmp_path / "events.csv.gz", tmp_path / "subscriptions.csv")
    with pytest.raises(LayoutError, match="no events.csv"):
        find_files(tmp_path / "nowhere")


@pytest.mark.parametrize("text", [
    "2022-01-11T00:00:51", "2022-01-11 23:59:59", "2022-01-11", "2022-01-11T00:00:51+02:00",
    "2024-02-29T12:00:00", "1969-12-31T23:59:59", "2022-01-11T00:00:51.250", " 2022-01-11T08:00:00 ",
    "2022-01-11T25:00:00", "2022-13-11T01:00:00", "2022-02-30T01:00:00", "2022-01-11T0+:00:00",
    "2022-01-11T00:00:60", "2022-01-11T00:61:00", "2022-01-11T١٢:00:00", "yesterday",
])
def test_times_are_read_as_the_standard_parser_reads_them(text: str) -> None:
    # The usual export shape is read by arithmetic, the rest by the parser: both must agree.
    try:
        moment = datetime.fromisoformat(text.strip())
        expected: int | None = int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())
    except ValueError:
        expected = None
    if expected is None:
        with pytest.raises(ValueError):
            parse_time(text)
    else:
        assert parse_time(text) == expected


def test_short_rows_are_bad_rows_and_blank_lines_no_rows(tmp_path: Path) -> None:
    events = write(tmp_path / "events.csv", "account_id,event_time,event_type,value\n"
                   "1,2022-01-03T10:00:00,create_opportunity,2\n\n1,2022-01-03T11:00:00\n"
                   "1,2022-01-03T12:00:00,add_contact\n")
    export = Export(events, None, ExportLayout(login_per_active_day=False))
    out = [(e.feature, e.amount) for e in export.events() if isinstance(e, UsageEvent)]
    assert out == [("create_opportunity", 2.0), ("add_contact", None)]
    assert export.report.event_rows == 3 and export.report.bad_rows == {"events: no event name": 1}
