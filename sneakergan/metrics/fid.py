"""Fréchet Inception Distance (Heusel et al. 2017) between two Gaussians, in float64.

FID = |mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^1/2).

The trace of the matrix square root is computed as the sum of the square roots of the eigenvalues of
the symmetric PSD matrix S1^1/2 S2 S1^1/2, which has the same spectrum as S1 S2. That keeps every
step in symmetric eigendecompositions, so rank-deficient covariances (fewer samples than feature
dimensions, dead features) need no epsilon offset and never produce imaginary parts.
"""

from __future__ import annotations

import numpy as np


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, ddof=1) covariance of `features` [N, D], in float64."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need a [N, D] feature array with N >= 2, got shape {x.shape}")
    mu = x.mean(axis=0)
    sigma = np.cov(x, rowvar=False)
    return mu, np.atleast_2d(sigma)


def _clean_eigenvalues(vals: np.ndarray) -> np.ndarray:
    """Zero the eigenvalues that are round-off noise (below n * eps * the largest one).

    A square root turns a round-off error e into sqrt(e), so on a singular covariance (fewer samples than
    dimensions, the usual case for small N) each noise eigenvalue would add ~1e-8 to the trace.
    """
    tol = vals.size * np.finfo(np.float64).eps * max(float(np.abs(vals).max(initial=0.0)), 0.0)
    return np.where(vals > tol, vals, 0.0)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix."""
    vals, vecs = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vecs * np.sqrt(_clean_eigenvalues(vals))) @ vecs.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((sigma1 sigma2)^1/2) for symmetric PSD matrices, via the eigenvalues of s1^1/2 s2 s1^1/2."""
    root1 = _psd_sqrt(np.asarray(sigma1, dtype=np.float64))
    inner = root1 @ np.asarray(sigma2, dtype=np.float64) @ root1
    vals = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sqrt(_clean_eigenvalues(vals)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), computed in float64."""
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}"
        )
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2)
    # Round-off can push a distance of exactly zero a hair below it.
    return float(max(value, 0.0))


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """FID between two feature sets [N, D] and [M, D]."""
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))
