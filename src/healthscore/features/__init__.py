"""Point-in-time features, one module per component; ``_window.py`` is the only place a cutoff is applied.

Public API::

    FEATURES                      # ordered FeatureSpec list (name, component, unit, window_days, direction, ...)
    feature_components()          # {feature: component}
    build_features(ds, observations, config=...)   # one row per observation
    write_features(ds, as_of, out, config=...)     # the `healthscore features` command
    SegmentAdoptionCurve          # the fitted time-to-value curve (features.time_to_value)
"""

from healthscore.features._build import (
    FEATURES,
    build_features,
    component_sql,
    feature_components,
    features_as_of,
    raw_feature_names,
    selected_features,
    write_features,
)
from healthscore.features._registry import FeatureSpec
from healthscore.features.time_to_value import SegmentAdoptionCurve

__all__ = [
    "FEATURES",
    "FeatureSpec",
    "SegmentAdoptionCurve",
    "build_features",
    "component_sql",
    "feature_components",
    "features_as_of",
    "raw_feature_names",
    "selected_features",
    "write_features",
]
