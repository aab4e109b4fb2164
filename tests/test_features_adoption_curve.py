"""The segment adoption curve: fitted on training rows only, stored with the model, applied as learned."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest

from healthscore.features import SegmentAdoptionCurve


def rows(segment: str, month: float, utilisations: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"segment": segment, "months_since_customer_start": month,
                         "seat_utilization_30d": utilisations})


def training() -> pd.DataFrame:
    # smb: month 0 median 0.2, month 2 median 0.6 (month 1 has too few rows: interpolated to 0.4);
    # enterprise: too few rows anywhere -> the all-segment curve
    frame = pd.concat([
        rows("smb", 0.4, [0.1, 0.2, 0.3]),
        rows("smb", 1.5, [0.9]),
        rows("smb", 2.9, [0.5, 0.6, 0.7]),
        rows("enterprise", 0.0, [1.0]),
        rows("mid_market", 5.0, [float("nan")] * 4),
    ], ignore_index=True)
    frame["segment"] = frame["segment"].astype("category")
    return frame.sample(frac=1.0, random_state=3)  # order must not matter


def test_curve_is_the_median_per_segment_and_month_with_interpolation():
    curve = SegmentAdoptionCurve(max_month=6, min_rows=3).fit(training())
    np.testing.assert_allclose(curve.curves_["smb"][:4], [0.2, 0.4, 0.6, 0.6])
    assert set(curve.curves_) == {"smb"}
    # all segments together: month 0 has 0.1, 0.2, 0.3, 1.0 (median 0.25), month 2 has 0.5, 0.6, 0.7
    np.testing.assert_allclose(curve.overall_curve_[:3], [0.25, 0.425, 0.6])


def test_transform_compares_with_the_learned_curve():
    curve = SegmentAdoptionCurve(max_month=6, min_rows=3).fit(training())
    batch = pd.DataFrame({"segment": ["smb", "smb", "enterprise", "smb", "smb"],
                          "months_since_customer_start": [1.2, 2.0, 0.0, float("nan"), 40.0],
                          "seat_utilization_30d": [0.5, 0.3, 0.25, 0.9, float("nan")],
                          "other": [1, 2, 3, 4, 5]}, index=list("abcde"))
    out = curve.transform(batch)
    assert out.index.equals(batch.index) and "other" in out
    np.testing.assert_allclose(out["utilization_vs_segment_curve"].to_numpy()[:3], [0.1, -0.3, 0.0], atol=1e-12)
    assert out["behind_segment_curve"].tolist()[:3] == [0.0, 1.0, 0.0]
    assert out.iloc[3:][["utilization_vs_segment_curve", "behind_segment_curve"]].isna().all().all()
    assert "utilization_vs_segment_curve" not in batch  # the input is not modified


def test_never_refitted_on_the_scoring_batch():
    curve = SegmentAdoptionCurve(max_month=6, min_rows=3).fit(training())
    batch = pd.DataFrame({"segment": ["smb"] * 5, "months_since_customer_start": [0.0] * 5,
                          "seat_utilization_30d": [0.9] * 5})
    first = curve.transform(batch)
    # 0.9 - 0.2 as learned, not 0.9 - 0.9 as a curve refitted on this batch would say
    np.testing.assert_allclose(first["utilization_vs_segment_curve"], 0.7)
    clone = pickle.loads(pickle.dumps(curve))
    pd.testing.assert_frame_equal(clone.transform(batch), first)


def test_no_usable_rows_gives_nan_expectations():
    curve = SegmentAdoptionCurve().fit(rows("smb", 1.0, [float("nan")]))
    out = curve.transform(rows("smb", 1.0, [0.5]))
    assert math.isnan(out["utilization_vs_segment_curve"].iloc[0])


def test_exposes_its_output_columns_after_fit():
    curve = SegmentAdoptionCurve().fit(training())
    assert curve.output_columns_ == ["utilization_vs_segment_curve", "behind_segment_curve"]


def test_errors_say_what_to_do():
    with pytest.raises(ValueError, match="not fitted yet: call fit"):
        SegmentAdoptionCurve().transform(training())
    with pytest.raises(ValueError, match="needs feature columns seat_utilization_30d"):
        SegmentAdoptionCurve().fit(training().drop(columns="seat_utilization_30d"))
