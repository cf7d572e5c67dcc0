"""Feature extraction: CQT front ends, signal augmentation, feature store."""

# Every registered front end is importable by name once csi.features is imported: the CQT
# front ends (csi.features.cqt) and the provided-PCP one (csi.features.pcp).
from csi.features import pcp as _pcp  # noqa: E402,F401
