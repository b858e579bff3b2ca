"""Features, each defined once: declaration, offline computation and online update side by side."""

from arrive.features.offline import FeatureSet, build_features
from arrive.features.spec import BuildContext, FeatureSpec

__all__ = ["BuildContext", "FeatureSet", "FeatureSpec", "build_features"]
