"""Numbers in local results are plain ints and floats, whatever the kinds of the columns."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.query import write_events
from wideevents.query import Query, run_local


def test_sum_of_integers_is_a_number_first_and_ordered(tmp_path: Path) -> None:
    """SUM over an integer column with integer sample rates is an int-valued number: it can
    be the default order (first calculation) and --json writes it as a number, not a string
    (before: DuckDB's DECIMAL came back as decimal.Decimal, and ordering raised TypeError)."""
    events = [{"i": i, "g": "ab"[i % 2], "samplerate": 1 + i % 4} for i in range(10)]
    path = write_events(tmp_path / "ints.jsonl", events)
    # by hand: g=a: i=0,2,4,6,8 with rates 1,3,1,3,1 -> 0+6+4+18+8 = 36;
    #          g=b: i=1,3,5,7,9 with rates 2,4,2,4,2 -> 2+12+10+28+18 = 70
    result = run_local(Query(calculations=["SUM(i)", "COUNT"], breakdowns=["g"]), path,
                       cache=False)  # fmt: skip
    expected = [{"g": "b", "SUM(i)": 70, "COUNT": 14}, {"g": "a", "SUM(i)": 36, "COUNT": 9}]
    assert expected == result.rows
    assert [{int, float}, {int, float}] == [
        {int, float} | {type(r["SUM(i)"])} for r in result.rows
    ]  # a Decimal (DuckDB's DECIMAL) would add a third type
    assert [70, 36] == [row["SUM(i)"] for row in json.loads(json.dumps(result.rows))]
