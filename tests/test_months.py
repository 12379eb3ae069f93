from datetime import UTC, datetime

import pytest

from platform_assets.months import MonthWindow, next_month


def test_window_months_hold_out_and_bounds() -> None:
    window = MonthWindow("2013-03", "2013-06")
    assert window.months == ["2013-03", "2013-04", "2013-05", "2013-06"]
    assert window.following(2) == ["2013-07", "2013-08"]
    assert window.start_time == datetime(2013, 3, 1, tzinfo=UTC)
    assert window.end_time == datetime(2013, 7, 1, tzinfo=UTC)
    assert str(window) == "2013-03..2013-06" and MonthWindow.parse(str(window)) == window


def test_trailing_window_before_a_month() -> None:
    assert MonthWindow.trailing("2013-09", 4) == MonthWindow("2013-05", "2013-08")
    assert MonthWindow.trailing("2013-04", 4) is None
    assert MonthWindow.trailing("2013-05", 4) == MonthWindow("2013-01", "2013-04")


def test_year_end_and_bad_windows() -> None:
    assert next_month("2013-12") == "2014-01" and next_month("2013-11") == "2013-12"
    assert MonthWindow("2013-12", "2013-12").end_time == datetime(2014, 1, 1, tzinfo=UTC)
    # Partitions go on past the reference year: a month landed later (2014-01) is one like any other.
    assert MonthWindow("2013-09", "2013-12").following(1) == ["2014-01"]
    assert MonthWindow("2013-11", "2014-02").months == ["2013-11", "2013-12", "2014-01", "2014-02"]
    with pytest.raises(ValueError, match="no 0 month"):
        MonthWindow("2013-09", "2013-12").following(0)
    with pytest.raises(ValueError, match="after its end"):
        MonthWindow("2013-05", "2013-04")
    with pytest.raises(ValueError, match="not YYYY-MM"):
        MonthWindow("2013-1", "2013-04")
    with pytest.raises(ValueError, match="not a partition"):
        MonthWindow("2012-12", "2013-04")
