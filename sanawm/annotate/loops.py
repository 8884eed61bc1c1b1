"""Loop-closure candidates for video: frames far apart in time that see the same place.

Sequential matching only pairs nearby frames (i with i+1 … i+overlap and i+2ᵏ), so a camera that comes
back to a place it saw a minute ago never links the two visits and its path drifts apart. This finds
such revisits offline, with no downloaded vocabulary: a small visual vocabulary is learnt from the
clip's own SIFT descriptors (k-means), every frame becomes a tf-idf bag of words, and pairs whose
similarity is at least that of frames `min_gap` apart (which do overlap) become candidates. COLMAP's
geometric verification then keeps the real ones.
"""

from __future__ import annotations

import numpy as np

_WORDS = 256  # vocabulary size: small clips, coarse words
_SAMPLE_PER_IMAGE = 400  # descriptors per frame used for the vocabulary and the bags of words


def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (squared L2) of each row of x."""
    d = (centroids**2).sum(axis=1)[None, :] - 2.0 * x @ centroids.T
    return np.argmin(d, axis=1)


def kmeans(x: np.ndarray, k: int, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """(k, D) centroids by Lloyd's algorithm from k distinct random rows of x (x: (N, D), N >= k)."""
    centroids = x[rng.choice(len(x), k, replace=False)].copy()
    for _ in range(iterations):
        labels = _nearest(x, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, x)
        counts = np.bincount(labels, minlength=k)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    return centroids


def bag_of_words(descriptors: list[np.ndarray], seed: int = 0, words: int = _WORDS) -> np.ndarray:
    """(F, words) L2-normalised tf-idf histograms of per-frame descriptor sets ((N_i, D) each)."""
    rng = np.random.default_rng(seed)
    sampled = []
    for d in descriptors:
        d = np.asarray(d, dtype=np.float32)
        if len(d) > _SAMPLE_PER_IMAGE:
            d = d[rng.choice(len(d), _SAMPLE_PER_IMAGE, replace=False)]
        sampled.append(d)
    pool = np.concatenate([d for d in sampled if len(d)]) if any(len(d) for d in sampled) else None
    if pool is None or len(pool) < words:
        return np.zeros((len(descriptors), words))
    train = pool[rng.choice(len(pool), min(len(pool), 40 * words), replace=False)]
    centroids = kmeans(train, words, 10, rng)
    hist = np.zeros((len(descriptors), words))
    for i, d in enumerate(sampled):
        if len(d):
            hist[i] = np.bincount(_nearest(d, centroids), minlength=words)
    df = (hist > 0).sum(axis=0)
    idf = np.log(len(descriptors) / np.maximum(df, 1))
    tfidf = hist / np.maximum(hist.sum(axis=1, keepdims=True), 1) * idf
    return tfidf / np.maximum(np.linalg.norm(tfidf, axis=1, keepdims=True), 1e-12)


def loop_candidates(
    descriptors: list[np.ndarray], min_gap: int, per_frame: int = 1, seed: int = 0
) -> list[tuple[int, int]]:
    """Frame pairs (i, j), i < j, j − i > min_gap, that look alike enough to be the same place.

    Args:
        descriptors: per frame, (N_i, D) feature descriptors (SIFT: uint8, D = 128).
        min_gap: pairs up to this far apart in frame index are left to sequential matching. The bar a
            candidate must clear is the median similarity of frames min_gap / 2 apart (which overlap).
        per_frame: at most this many candidates for each frame (the most similar ones).

    Returns:
        Sorted unique pairs, at most one for every four frames (the most similar ones; may be empty).
    """
    n = len(descriptors)
    if n <= min_gap + 1 or min_gap < 1:
        return []
    bags = bag_of_words(descriptors, seed)
    sim = bags @ bags.T
    idx = np.arange(n)
    gap = max(1, min_gap // 2)
    bar = float(np.median(sim[idx[:-gap], idx[:-gap] + gap]))
    sim[np.abs(idx[:, None] - idx[None, :]) <= min_gap] = -np.inf
    found: dict[tuple[int, int], float] = {}
    for i in range(n):
        for j in np.argsort(-sim[i])[:per_frame]:
            if np.isfinite(sim[i, j]) and sim[i, j] >= bar and sim[i, j] > 0:
                found[(min(i, int(j)), max(i, int(j)))] = float(sim[i, j])
    best = sorted(found, key=found.get, reverse=True)[: max(1, n // 4)]
    return sorted(best)
