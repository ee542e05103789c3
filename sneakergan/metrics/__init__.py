"""The metrics stage: FID, KID and improved precision/recall of a generator against a dataset.

    from sneakergan.metrics import compute_metrics
    compute_metrics(G, "data.zip", ["fid50k_full", "kid50k_full", "pr50k3_full"], num=None,
                    extractor="inception", device="cuda", cache_dir=None, features="pt_inception-....pth")

Pure math lives in fid.py / kid.py / precision_recall.py (numpy/torch in, floats out); features.py holds
the extractors; pipeline.py ties dataset, generator and extractor together. Heavy imports stay lazy.
"""

from __future__ import annotations

__all__ = ["compute_metrics", "run_metrics", "parse_metric", "build_extractor", "KNOWN_METRICS"]


def __getattr__(name: str):
    # Lazy: `sneakergan --help` imports this package and must not pull in torch.
    if name in ("compute_metrics", "run_metrics", "parse_metric", "KNOWN_METRICS", "MetricsReport"):
        from . import pipeline

        return getattr(pipeline, name)
    if name == "build_extractor":
        from .features import build_extractor

        return build_extractor
    raise AttributeError(name)
