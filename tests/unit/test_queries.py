import pytest

from ticketflow import queries


def test_known_query_loads():
    assert "UPDATE events" in queries.load("events/complete_ended")


@pytest.mark.parametrize("name", ["events/missing", "../migrations/0001_core_schema", "/etc/passwd"])
def test_unknown_or_escaping_names_are_refused(name):
    with pytest.raises(queries.UnknownQueryError):
        queries.load(name)
