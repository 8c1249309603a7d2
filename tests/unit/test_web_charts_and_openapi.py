"""The dashboard's SVG charts and the OpenAPI merge: pure functions, no server."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from ticketflow.web.charts import FAILED_COLOR, Series, bar_chart, nice_ceiling
from ticketflow.web.dashboard import humanize_seconds
from ticketflow.web.health import RunPoint
from ticketflow.web.mount import merge_openapi

START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
WORK = (Series("processed", "processed", "#111111", lambda r: r.processed),
        Series("changed", "changed", "#222222", lambda r: r.changed))


def _run(i, status="success", processed=10, changed=4, duration=1.5):
    return RunPoint(f"scheduled__{i}", START + timedelta(minutes=5 * i), status, processed, changed, 0, duration)


def _bars(svg):
    return re.findall(r'<rect class="bar" data-run-id="([^"]*)" data-series="(\w+)" data-value="([^"]*)"'
                      r' data-status="(\w+)" x="[^"]*" y="([^"]*)" width="[^"]*" height="([^"]*)" fill="([^"]*)"', svg)


@pytest.mark.parametrize("value, top", [(0, 1), (0.04, 0.05), (1, 1), (3, 5), (7.5, 10), (12, 20), (240, 250),
                                        (2600, 5000)])
def test_axis_tops_are_round_numbers_at_or_above_the_largest_value(value, top):
    assert nice_ceiling(value) == pytest.approx(top)


def test_every_run_gets_one_bar_per_series_scaled_to_the_axis():
    svg = bar_chart([_run(0, processed=10, changed=4), _run(1, processed=20, changed=0)], WORK, name="work")
    bars = _bars(svg)
    assert [(run, series, value) for run, series, value, *_ in bars] == [
        ("scheduled__0", "processed", "10"), ("scheduled__0", "changed", "4"),
        ("scheduled__1", "processed", "20"), ("scheduled__1", "changed", "0")]
    heights = {(run, series): float(height) for run, series, _, _, _, height, _ in bars}
    assert heights[("scheduled__1", "processed")] == pytest.approx(2 * heights[("scheduled__0", "processed")])
    assert svg.startswith("<svg") and svg.endswith("</svg>") and ">20<" in svg  # the axis top


def test_failed_runs_are_red_and_runs_still_running_have_no_duration_bar():
    duration = (Series("duration", "duration", "#333333", lambda r: r.duration_seconds),)
    svg = bar_chart([_run(0), _run(1, status="error"), _run(2, status="running", duration=None)], duration,
                    name="duration", unit=" s")
    bars = _bars(svg)
    assert [(run, status, fill) for run, _, _, status, _, _, fill in bars] == [
        ("scheduled__0", "success", "#333333"), ("scheduled__1", "error", FAILED_COLOR)]


def test_text_in_charts_is_escaped():
    svg = bar_chart([RunPoint('manual__<script>"x"', START, "success", 1, 1, 0, 1.0)], WORK, name="<b>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "<title>&lt;b&gt;</title>" in svg


def test_an_empty_chart_is_still_a_chart():
    svg = bar_chart([], WORK, name="nothing")
    assert _bars(svg) == [] and svg.count("<line") == 3


@pytest.mark.parametrize("seconds, text", [(None, "–"), (4.2, "4 s"), (125, "2 min"), (7500, "2 h 5 min"),
                                           (3 * 86400 + 4 * 3600, "3 d 4 h"), (-3, "0 s")])
def test_waits_read_at_a_glance(seconds, text):
    assert humanize_seconds(seconds) == text


def test_merged_openapi_lists_the_mounted_paths_under_their_prefix_and_keeps_existing_components():
    root = {"paths": {"/api/v2/dags": {"get": {}}},
            "components": {"schemas": {"HTTPValidationError": {"title": "root's"}}}}
    mounted = {"paths": {"/tasks": {"get": {"operationId": "ticketflow_list_tasks"}}},
               "components": {"schemas": {"HTTPValidationError": {"title": "mounted"}, "TicketflowTask": {}},
                              "securitySchemes": {"HTTPBearer": {"type": "http"}}}}
    merged = merge_openapi(root, mounted, "/ticketflow")
    assert set(merged["paths"]) == {"/api/v2/dags", "/ticketflow/tasks"}
    assert merged["components"]["schemas"]["HTTPValidationError"] == {"title": "root's"}
    assert "TicketflowTask" in merged["components"]["schemas"]
    assert merged["components"]["securitySchemes"] == {"HTTPBearer": {"type": "http"}}
