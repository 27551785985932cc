#!/usr/bin/env python3
"""numpy doing what `shiftscope-analysis` computes for one layer, written well, for the
benchmark in crates/shiftscope-analysis/benches/analysis.rs.

    python3 tools/bench_analysis_numpy.py <store> [repeats]

Reads the store's first layer of its first ID and first OOD dataset (np.load, mmap), and
computes: per-neuron max and non-finite counts; class means (argsort of the labels + add.reduceat);
top-100 per neuron (argpartition on the transposed matrix, zeros and non-finite skipped,
then sorted by value and index); top-5 classes; Rafegas and Morcos selectivity; the spurious
score (Spearman with average ranks), novelty, and the W1 shift from sorted columns; per-image
predictions and per-class accuracy from the logits. Prints the best time of `repeats` runs
as `numpy_seconds <s>` and checksums in the same form as the Rust benchmark.
"""

import json
import sys
import time

import numpy as np

TOP_K = 100
TOP_CLASSES = 5


def average_ranks(row):
    """Average ranks (1-based) of one 1-D array, ties sharing their mean position."""
    sorter = np.argsort(row, kind="mergesort")
    inv = np.empty(sorter.size, dtype=np.intp)
    inv[sorter] = np.arange(sorter.size)
    arr = row[sorter]
    obs = np.r_[True, arr[1:] != arr[:-1]]
    dense = obs.cumsum()[inv]
    count = np.r_[np.nonzero(obs)[0], len(obs)]
    return 0.5 * (count[dense] + count[dense - 1] + 1)


def spearman_rows(x, y):
    """Spearman per row of two (C, K) matrices over entries finite in both; NaN = undefined."""
    out = np.full(x.shape[0], np.nan)
    for n in range(x.shape[0]):
        ok = np.isfinite(x[n]) & np.isfinite(y[n])
        if ok.sum() < 2:
            continue
        rx = average_ranks(x[n][ok])
        ry = average_ranks(y[n][ok])
        rx -= rx.mean()
        ry -= ry.mean()
        den = np.sqrt((rx * rx).sum() * (ry * ry).sum())
        if den > 0:
            out[n] = (rx * ry).sum() / den
    return out


def layer_stats(a, y, classes):
    """max, non-finite counts, class means (K, C), top-k (C, k) values and images."""
    bad = ~np.isfinite(a)
    non_finite = bad.sum(axis=0)
    if non_finite.any():
        a = np.where(bad, np.float32(0), a)
        fin = ~bad
    else:
        fin = None
    if fin is None:
        mx = a.max(axis=0)
    else:
        mx = np.where(fin, a, -np.inf).max(axis=0)
    order = np.argsort(y, kind="stable")
    ys = y[order]
    starts = np.flatnonzero(np.r_[True, ys[1:] != ys[:-1]])
    sums = np.add.reduceat(a[order], starts, axis=0, dtype=np.float64)
    counts = np.diff(np.r_[starts, len(ys)])
    if fin is None:
        denom = counts[:, None].astype(np.float64)
    else:
        denom = np.add.reduceat(fin[order], starts, axis=0, dtype=np.float64)
    means = np.full((classes, a.shape[1]), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        means[ys[starts]] = np.where(denom > 0, sums / denom, np.nan)
    # Top-k: transposed so each neuron's values are contiguous; zeros and non-finite out.
    at = np.ascontiguousarray(a.T)
    key = np.where(at != 0, at, -np.inf)
    if fin is not None:
        key = np.where(fin.T, key, -np.inf)
    k = min(TOP_K, at.shape[1])
    part = np.argpartition(-key, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(key, part, axis=1)
    srt = np.lexsort((part, -vals), axis=1)
    images = np.take_along_axis(part, srt, axis=1)
    vals = np.take_along_axis(vals, srt, axis=1)
    return mx, non_finite, means, vals, images, at


def selectivity(vals, images, y, means, classes):
    """Rafegas over the top images (positive only) and Morcos over raw class means."""
    c = vals.shape[0]
    pos = np.isfinite(vals) & (vals > 0)
    a1 = np.where(pos[:, :1], vals[:, :1], 1.0)
    w = np.where(pos, vals / a1, 0.0)
    freq = np.zeros((c, classes))
    rows = np.repeat(np.arange(c), vals.shape[1])
    np.add.at(freq, (rows, y[images].ravel()), w.ravel())
    with np.errstate(invalid="ignore", divide="ignore"):
        freq /= freq.sum(axis=1, keepdims=True)
    freq = -np.sort(-freq, axis=1)
    cum = np.cumsum(freq, axis=1)
    m = (cum < 1.0 - 1e-9).sum(axis=1) + 1
    npos = pos.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rafegas = np.where(npos >= 2, (npos - m) / (npos - 1), np.nan)
    mt = means.T
    defined = np.isfinite(mt).sum(axis=1)
    mu_max = np.nanmax(mt, axis=1)
    rest = (np.nansum(mt, axis=1) - mu_max) / (defined - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        den = mu_max + rest
        morcos = np.where((defined >= 2) & (den != 0), (mu_max - rest) / den, np.nan)
    top = np.argsort(-np.nan_to_num(mt, nan=-np.inf), axis=1, kind="stable")[:, :TOP_CLASSES]
    return rafegas, morcos, top


def w1_rows(sa, sb):
    """W1 per row between sorted rows (equal lengths: mean |difference|)."""
    if sa.shape[1] == sb.shape[1]:
        return np.abs(sa.astype(np.float64) - sb).mean(axis=1)
    out = np.empty(sa.shape[0])
    for n in range(sa.shape[0]):
        allv = np.sort(np.r_[sa[n], sb[n]])
        d = np.diff(allv)
        fa = np.searchsorted(sa[n], allv[:-1], side="right") / sa.shape[1]
        fb = np.searchsorted(sb[n], allv[:-1], side="right") / sb.shape[1]
        out[n] = (np.abs(fa - fb) * d).sum()
    return out


def predictions(logits, y, classes):
    mx = logits.max(axis=1, keepdims=True)
    prob = 1.0 / np.exp(logits - mx).sum(axis=1)
    pred = logits.argmax(axis=1)
    ok = (y >= 0) & (y < classes)
    correct = np.bincount(y[ok], weights=(pred[ok] == y[ok]), minlength=classes)
    total = np.bincount(y[ok], minlength=classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = correct / total
    return pred, prob, correct.sum() / total.sum(), per_class


def run(root, manifest):
    classes = len(manifest["classes"])
    layer = manifest["layers"][0]["id"]
    sets = manifest["datasets"]
    id_i = next(i for i, d in enumerate(sets) if d["role"] == "id")
    ood_i = next(i for i, d in enumerate(sets) if d["role"] == "ood")
    out = {}
    for name, i in (("id", id_i), ("ood", ood_i)):
        base = f"{root}/datasets/{sets[i]['id']}"
        a = np.load(f"{base}/layers/{layer}.npy", mmap_mode="r")
        y = np.load(f"{base}/labels.npy", mmap_mode="r").astype(np.int64)
        logits = np.load(f"{base}/logits.npy", mmap_mode="r")
        mx, nf, means, vals, images, at = layer_stats(np.asarray(a), y, classes)
        rafegas, morcos, top = selectivity(vals, images, y, means, classes)
        fin_sorted = np.sort(np.where(np.isfinite(at), at, np.nan), axis=1)
        pred = predictions(np.asarray(logits), y, classes)
        out[name] = dict(max=mx, nf=nf, means=means, vals=vals, images=images,
                         rafegas=rafegas, morcos=morcos, top=top, sorted=fin_sorted, pred=pred)
    i, o = out["id"], out["ood"]
    m = i["max"].astype(np.float64)
    silent = ~(m > 0)
    rho = spearman_rows(i["means"].T, o["means"].T)
    spurious = np.where(silent, np.nan, 1 - np.abs(rho))
    with np.errstate(invalid="ignore", divide="ignore"):
        novelty = np.where(silent, np.nan,
                           (np.nanmax(i["means"], axis=0) - np.nanmax(o["means"], axis=0)) / m)
        w1 = np.where(silent, np.nan, w1_rows(i["sorted"], o["sorted"]) / m)
    return out, spurious, novelty, w1


def main():
    root = sys.argv[1]
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    manifest = json.load(open(f"{root}/manifest.json"))
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out, spurious, novelty, w1 = run(root, manifest)
        best = min(best, time.perf_counter() - t)
    i, o = out["id"], out["ood"]
    s = lambda v: np.nansum(np.where(np.isfinite(v), v, np.nan))
    topk = np.where(np.isfinite(i["vals"]), i["vals"], 0).sum()
    print(f"numpy_seconds {best:.3f}")
    print(
        "numpy checksums: "
        f"class_means_id={s(i['means']):.6e} max_id={s(i['max']):.6e} topk_values_id={topk:.6e} "
        f"spurious={s(spurious):.6e} novelty={s(novelty):.6e} w1={s(w1):.6e} "
        f"rafegas={s(i['rafegas']):.6e} morcos={s(i['morcos']):.6e} "
        f"acc_id={i['pred'][2]:.6f} acc_ood={o['pred'][2]:.6f} class_acc_ood={s(o['pred'][3]):.6e}"
    )


if __name__ == "__main__":
    main()
