"""What every module does with psycopg alike."""

from __future__ import annotations

from typing import TypeVar

import psycopg

Row = TypeVar("Row")


class MissingRow(RuntimeError):
    """A statement that always returns a row (an aggregate, an upsert's RETURNING) returned none."""


def one(cursor: psycopg.Cursor[Row]) -> Row:
    """The row of a statement that always returns one; its absence is a bug, said loudly instead of a TypeError."""
    row = cursor.fetchone()
    if row is None:
        raise MissingRow("expected a row, got none")
    return row


async def one_async(cursor: psycopg.AsyncCursor[Row]) -> Row:
    """`one` for an async cursor."""
    row = await cursor.fetchone()
    if row is None:
        raise MissingRow("expected a row, got none")
    return row
