"""Metrics during training: checked before the first step, evaluated at metric ticks, switched off for the rest
of this process (never in the saved config) when one fails, so a resume tries again."""

from __future__ import annotations

from typing import Callable

import torch

from .config import ConfigError, TrainConfig


class TrainMetrics:
    """`--metrics` of a run: names parsed and the feature extractor built up front (weights present)."""

    def __init__(self, cfg: TrainConfig, device: torch.device, warn: Callable[[str], None]) -> None:
        self.cfg, self.device, self.warn = cfg, device, warn
        self.names = list(cfg.metrics)
        self.off_reason: str | None = None
        self.extractor = None
        if not self.names:
            return
        try:
            from ..metrics.features import build_extractor
            from ..metrics.pipeline import parse_metric
        except ImportError as e:  # an install without the metrics stage
            raise ConfigError(f"--metrics needs sneakergan.metrics ({e})") from None
        for name in self.names:
            try:
                parse_metric(name, cfg.metrics_num)
            except ValueError as e:
                raise ConfigError(f"--metrics: {e}") from None
        try:
            self.extractor = build_extractor(cfg.metrics_extractor, weights=cfg.metrics_features, device=device)
        except (OSError, ValueError) as e:  # MissingWeightsError is a FileNotFoundError
            raise ConfigError(f"--metrics {','.join(self.names)}: {' '.join(str(e).split())}") from None

    @property
    def active(self) -> bool:
        return bool(self.names) and self.off_reason is None

    def __call__(self, G_ema: torch.nn.Module) -> dict[str, float]:
        """Metric values, or {} once a metric has failed in this process (training goes on; logged once)."""
        if not self.active:
            return {}
        from ..metrics.pipeline import compute_metrics

        try:
            return compute_metrics(G_ema, self.cfg.data, self.names, num=self.cfg.metrics_num,
                                   extractor=self.extractor, device=self.device)
        except Exception as e:  # noqa: BLE001 - a metric failure must not kill a long run
            self.off_reason = " ".join(str(e).split()) or type(e).__name__
            self.warn(f"warning: metrics failed ({self.off_reason}); no more metrics in this process "
                      "(a resume tries again)")
            return {}
