"""Point-in-time features, one module per component; ``_window.py`` is the only place a cutoff is applied.

Public API::

    FEATURES                      # ordered FeatureSpec list (name, component, unit, window_days, direction, ...)
    FAMILIES                      # template specs of the column families (one pair per key product feature)
    feature_specs(config)         # every feature for a config's key features, family columns included
    feature_spec(name)            # one feature's spec by column name (family columns read from the name)
    feature_components(config)    # {feature: component}
    resolve_key_features(ds, config, cutoff=...)   # configured key features, else learned (features.vocabulary)
    build_features(ds, observations, config=...)   # one row per observation
    write_features(ds, as_of, out, config=...)     # the `healthscore features` command
    SegmentAdoptionCurve          # the fitted time-to-value curve (features.time_to_value)
"""

from healthscore.features._build import (
    FAMILIES,
    FEATURES,
    build_features,
    component_sql,
    feature_components,
    feature_spec,
    feature_specs,
    features_as_of,
    raw_feature_names,
    selected_features,
    write_features,
)
from healthscore.features._registry import FeatureSpec
from healthscore.features.time_to_value import SegmentAdoptionCurve
from healthscore.features.vocabulary import learn_key_features, resolve_key_features

__all__ = [
    "FAMILIES",
    "FEATURES",
    "FeatureSpec",
    "SegmentAdoptionCurve",
    "build_features",
    "component_sql",
    "feature_components",
    "feature_spec",
    "feature_specs",
    "features_as_of",
    "learn_key_features",
    "raw_feature_names",
    "resolve_key_features",
    "selected_features",
    "write_features",
]
