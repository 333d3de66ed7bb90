"""Offline clustering of speaker embeddings: spectral clustering as in Wang et al. 2018, in numpy.

"Speaker Diarization with LSTM" (the d-vector paper resemblyzer follows) refines the cosine affinity
matrix before the eigen-decomposition: row-wise pruning of weak affinities, symmetrisation, diffusion
(``Y @ Y.T``) and row-wise max normalisation. On a real phone call this separated the two speakers
where average-linkage agglomerative clustering did not (research/models.md, section 2).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from models.audio import Float32Array

IntArray = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]


def refined_affinity(embeddings: Float32Array, keep: float = 0.9) -> Float64Array:
    """Cosine affinity with Wang et al.'s refinement; ``keep``: row percentile below which links are damped."""
    x = embeddings.astype(np.float64)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    affinity = np.clip(x @ x.T, 0.0, 1.0)
    np.fill_diagonal(affinity, 0.0)
    np.fill_diagonal(affinity, affinity.max(axis=1))  # the diagonal would dominate every row otherwise
    if affinity.shape[0] > 2:
        threshold = np.quantile(affinity, keep, axis=1, keepdims=True)
        affinity = np.where(affinity >= threshold, affinity, affinity * 0.01)
    affinity = np.maximum(affinity, affinity.T)
    affinity = affinity @ affinity.T
    affinity /= np.maximum(affinity.max(axis=1, keepdims=True), 1e-12)
    return affinity


def kmeans(points: Float64Array, k: int, iterations: int = 50) -> IntArray:
    """Deterministic k-means: farthest-point initialisation from the first point, then Lloyd's steps."""
    n = points.shape[0]
    centers = [points[0]]
    for _ in range(1, k):
        distance = np.min([np.sum((points - c) ** 2, axis=1) for c in centers], axis=0)
        centers.append(points[int(np.argmax(distance))])
    center_array = np.stack(centers)
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(iterations):
        distances = ((points[:, None, :] - center_array[None, :, :]) ** 2).sum(axis=2)
        new_labels = np.argmin(distances, axis=1).astype(np.int64)
        if np.array_equal(new_labels, labels) and _ > 0:
            break
        labels = new_labels
        for j in range(k):
            members = points[labels == j]
            if members.size:
                center_array[j] = members.mean(axis=0)
    return labels


def spectral_clustering(embeddings: Float32Array, n_clusters: int, keep: float = 0.9) -> IntArray:
    """Cluster (n, d) embeddings into ``n_clusters`` groups (labels 0..n_clusters-1, in no set order)."""
    n = embeddings.shape[0]
    if n_clusters <= 1:
        return np.zeros(n, dtype=np.int64)
    if n <= n_clusters:
        return np.arange(n, dtype=np.int64)
    affinity = refined_affinity(embeddings, keep)
    degree = affinity.sum(axis=1)
    inv_sqrt = 1.0 / np.sqrt(np.maximum(degree, 1e-12))
    normalized = inv_sqrt[:, None] * affinity * inv_sqrt[None, :]
    _values, vectors = np.linalg.eigh((normalized + normalized.T) / 2)
    spectral = vectors[:, -n_clusters:]  # largest eigenvalues of D^-1/2 A D^-1/2 = smallest of the Laplacian
    spectral = spectral / np.maximum(np.linalg.norm(spectral, axis=1, keepdims=True), 1e-12)
    return kmeans(spectral, n_clusters)


def match_labels(reference: Sequence[int], labels: Sequence[int]) -> dict[int, int]:
    """The mapping of ``labels`` onto ``reference`` that agrees on the most items (one-to-one).

    Labels with no partner (more clusters than reference labels) are left out of the mapping.
    """
    ref_ids = sorted(set(reference))
    new_ids = sorted(set(labels))
    counts = np.zeros((len(new_ids), len(ref_ids)), dtype=np.int64)
    for r, lab in zip(reference, labels, strict=True):
        counts[new_ids.index(lab), ref_ids.index(r)] += 1
    best: tuple[int, tuple[tuple[int, int], ...]] = (-1, ())
    if len(new_ids) <= 7 and len(ref_ids) <= 7:
        small, large = (new_ids, ref_ids) if len(new_ids) <= len(ref_ids) else (ref_ids, new_ids)
        for perm in itertools.permutations(range(len(large)), len(small)):
            if small is new_ids:
                pairs = tuple(zip(range(len(new_ids)), perm, strict=True))
            else:
                pairs = tuple(zip(perm, range(len(ref_ids)), strict=True))
            score = int(sum(counts[i, j] for i, j in pairs))
            if score > best[0]:
                best = (score, pairs)
        return {new_ids[i]: ref_ids[j] for i, j in best[1]}
    # Many labels: greedy on the largest agreements.
    mapping: dict[int, int] = {}
    used: set[int] = set()
    for flat in np.argsort(counts, axis=None)[::-1]:
        i, j = divmod(int(flat), len(ref_ids))
        if new_ids[i] not in mapping and ref_ids[j] not in used:
            mapping[new_ids[i]] = ref_ids[j]
            used.add(ref_ids[j])
    return mapping


class OnlineClusterer:
    """Speakers from a stream of unit embeddings, decided as each arrives; labels 0, 1, ... in order of appearance.

    Each embedding goes to the nearest speaker centroid (cosine). One far from every centroid (under
    ``new_similarity``) while fewer than ``max_speakers`` exist is a candidate: it is given to the nearest
    speaker for now, and a new speaker is created once ``min_windows`` candidates that resemble one
    another (``pair_similarity``) have a mean that is itself far from every centroid. The test on the
    candidates' mean keeps one odd stretch of a known voice (a laugh, a cough, a line glitch), or a
    centroid built from too little speech, from starting a speaker.

    Once there are two speakers or more, every arrival is followed by one k-means step over all the
    embeddings so far, starting from the current centroids: each embedding moves to its nearest centroid
    and each centroid is recomputed from the embeddings that are clearly its own (nearer it than any
    other by ``margin``). Early windows given to the wrong speaker, before the second one existed, move
    over, and the centroids stop carrying them. The step starts from the current centroids, so a
    speaker's number never passes to another voice. Cost: one (n, 256) x (256, k) product per arrival.
    """

    def __init__(
        self,
        max_speakers: int = 2,
        new_similarity: float = 0.81,
        pair_similarity: float = 0.7,
        min_windows: int = 3,
        margin: float = 0.03,
        max_candidates: int = 8,
    ) -> None:
        self.max_speakers = max_speakers
        self.new_similarity = new_similarity
        self.pair_similarity = pair_similarity
        self.min_windows = min_windows
        self.margin = margin
        self.max_candidates = max_candidates
        self.labels: list[int] = []
        self._buffer = np.zeros((64, 0), dtype=np.float32)
        self._totals: list[Float64Array] = []
        self._candidates: list[int] = []

    @property
    def n_speakers(self) -> int:
        return len(self._totals)

    @property
    def embeddings(self) -> Float32Array:
        """All the embeddings so far, in order of arrival (a view: copy it to keep it)."""
        return self._buffer[: len(self.labels)]

    def centroids(self) -> Float64Array:
        totals = np.stack(self._totals)
        centroids: Float64Array = totals / np.maximum(np.linalg.norm(totals, axis=1, keepdims=True), 1e-12)
        return centroids

    def add(self, embedding: Float32Array) -> int:
        """Cluster one embedding; returns its label. Earlier labels may change too (see the class)."""
        index = len(self.labels)
        if index == self._buffer.shape[0] or self._buffer.shape[1] != embedding.size:
            grown = np.zeros((max(64, 2 * self._buffer.shape[0]), embedding.size), dtype=np.float32)
            if index:
                grown[:index] = self._buffer[:index]
            self._buffer = grown
        self._buffer[index] = embedding
        self.labels.append(self._assign(index, embedding))
        if self.n_speakers > 1:
            self._kmeans_step()
        return self.labels[-1]

    def _assign(self, index: int, embedding: Float32Array) -> int:
        if not self._totals:
            self._totals.append(embedding.astype(np.float64))
            return 0
        known = self.centroids()
        similarity = known @ embedding
        best = int(np.argmax(similarity))
        if similarity[best] >= self.new_similarity or self.n_speakers >= self.max_speakers:
            if similarity[best] >= self.new_similarity and self.n_speakers == 1:
                self._totals[best] += embedding  # a doubtful window does not move the centroid
            return best
        self._candidates = [*self._candidates[-(self.max_candidates - 1) :], index]
        candidates = self._buffer[self._candidates[:-1]]
        alike = sorted(zip((candidates @ embedding).tolist(), self._candidates[:-1], strict=True), reverse=True)
        group = [index] + [c for sim, c in alike[: self.min_windows - 1] if sim >= self.pair_similarity]
        if len(group) < self.min_windows:
            return best
        total: Float64Array = self._buffer[group].astype(np.float64).sum(axis=0)
        if float(np.max(known @ total)) >= self.new_similarity * float(np.linalg.norm(total)):
            return best
        self._totals.append(total)
        for c in group[1:]:
            self.labels[c] = self.n_speakers - 1
        self._candidates = []
        return self.n_speakers - 1

    def _kmeans_step(self) -> None:
        embeddings = self.embeddings
        similarity = embeddings @ self.centroids().T.astype(np.float32)
        labels = np.argmax(similarity, axis=1)
        ordered = np.sort(similarity, axis=1)
        clear = (ordered[:, -1] - ordered[:, -2]) >= self.margin
        members = (labels[:, None] == np.arange(self.n_speakers)[None, :]) & clear[:, None]
        totals = members.astype(np.float32).T @ embeddings
        for k in range(self.n_speakers):
            if members[:, k].any():
                self._totals[k] = totals[k].astype(np.float64)
        self.labels = labels.tolist()
