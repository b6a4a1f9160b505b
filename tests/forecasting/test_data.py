"""Series from CSV files and statsmodels, frequencies, features and the backtest split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probseq.forecasting import (
    DATASETS,
    backtest,
    default_lags,
    frequency,
    load_dataset,
    read_csv,
    seasonal_naive,
    time_features,
)


def _csv(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_csv_infers_the_frequency_from_dates(tmp_path):
    path = _csv(
        tmp_path, "date,y,other\n2020-01-01,1,a\n2020-02-01,2.5,b\n2020-03-01,3,c\n2020-04-01,4,d\n"
    )
    series = read_csv(path, "y")
    assert series.freq.kind == "monthly" and series.freq.season == 12
    np.testing.assert_array_equal(series.values, [1, 2.5, 3, 4])
    assert str(series.index[0]) == "2020-01"
    assert [str(p) for p in series.future_index(2)] == ["2020-05", "2020-06"]


def test_read_csv_errors_name_the_problem(tmp_path):
    path = _csv(tmp_path, "date,y\n2020-01-01,1\n2020-02-01,\n2020-03-01,3\n2020-04-01,4\n")
    with pytest.raises(ValueError, match=r"1 missing or non-finite values .*--fill"):
        read_csv(path, "y")
    np.testing.assert_allclose(read_csv(path, "y", fill="interpolate").values, [1, 2, 3, 4])
    np.testing.assert_allclose(read_csv(path, "y", fill="zero").values, [1, 0, 3, 4])
    with pytest.raises(ValueError, match="no column 'z'; its columns: \\['date', 'y'\\]"):
        read_csv(path, "z")
    bad = _csv(tmp_path, "date,y\n2020-01-01,1\n2020-02-01,x7\n2020-03-01,3\n", "bad.csv")
    with pytest.raises(ValueError, match="not a number at row 3 \\('x7'\\)"):
        read_csv(bad, "y")
    gap = _csv(
        tmp_path, "date,y\n2020-01-01,1\n2020-02-01,2\n2020-04-01,3\n2020-05-01,4\n", "gap.csv"
    )
    with pytest.raises(ValueError, match=r"skip periods|infer the frequency"):
        read_csv(gap, "y")
    with pytest.raises(ValueError, match="skip periods"):
        read_csv(gap, "y", freq="MS")
    plain = _csv(tmp_path, "y\n1\n2\n3\n", "plain.csv")
    with pytest.raises(ValueError, match="no date column; pass date_column or freq"):
        read_csv(plain, "y")
    series = read_csv(plain, "y", freq="Q", start="2001Q2")
    assert str(series.index[0]) == "2001Q2" and series.freq.kind == "quarterly"


def test_frequencies_and_default_lags():
    assert frequency("MS").kind == "monthly" and frequency("W-SAT").season == 52
    assert frequency("A").kind == frequency("YE").kind == "yearly"
    assert frequency("h").season == 24
    with pytest.raises(ValueError, match="unknown frequency 'fortnight'"):
        frequency("fortnight")
    with pytest.raises(ValueError, match="multiples"):
        frequency("2M")
    assert default_lags("Y") == (1, 2, 3, 4, 5, 6, 7)
    assert default_lags("M") == (1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 23, 24, 25, 35, 36, 37)
    assert max(default_lags("W", max_lag=60)) == 53


def test_time_features_lie_in_the_unit_interval():
    for freq, width in (("M", 1), ("Q", 1), ("W", 1), ("D", 3), ("h", 2), ("Y", 0)):
        index = pd.period_range("2019-12-30", periods=400, freq=frequency(freq).alias)
        feats = time_features(index, freq)
        assert feats.shape == (400, width)
        if width:
            assert feats.min() >= -0.5 and feats.max() <= 0.5 and feats.std() > 0.1
    months = time_features(pd.period_range("2020-01", periods=12, freq="M"), "M")[:, 0]
    np.testing.assert_allclose(months, np.arange(12) / 11 - 0.5, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_statsmodels_series_load(name):
    series = load_dataset(name)
    assert len(series) >= 100 and np.isfinite(series.values).all()
    assert series.note == DATASETS[name]
    kinds = {
        "co2": "weekly",
        "elec_equip": "monthly",
        "unemployment": "quarterly",
        "sunspots": "yearly",
        "nile": "yearly",
    }
    assert series.freq.kind == kinds[name]


def test_backtest_windows_and_seasonal_naive():
    series = load_dataset("nile")
    bt = backtest(series, 6, 3)
    assert bt.train_end == 82 and bt.origins == [82, 88, 94]
    np.testing.assert_array_equal(bt.targets()[1], series.values[88:94])
    assert len(bt.train) == 82
    with pytest.raises(ValueError, match="too short"):
        backtest(series, 30, 3)
    np.testing.assert_array_equal(seasonal_naive([1, 2, 3, 4, 5], 4, 2), [4, 5, 4, 5])
    np.testing.assert_array_equal(seasonal_naive([1, 2, 3], 2, 1), [3, 3])
    np.testing.assert_array_equal(seasonal_naive([1, 2, 3], 2, 12), [3, 3])
