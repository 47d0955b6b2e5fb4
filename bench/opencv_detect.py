#!/usr/bin/python3
"""The papscan nucleus detector's steps written with OpenCV, for a speed
comparison on the same images (scripts/bench.sh runs it beside the Go
benchmark BenchmarkDetectFields and writes the ratio into BENCHMARKS.md).

Steps, as in classify.Detector.Detect with its defaults at --pixel-um:
  1. haematoxylin density: per-channel optical-density look-up tables
     (cv2.LUT to float32) projected on the stain vector (1.0, 0.4, -0.2),
     scaled to 8 bits (160 levels per OD unit);
  2. 3x3 box blur (cv2.blur) and histogram (cv2.calcHist);
  3. Otsu's threshold over the stained levels (>= 0.08 OD) times 0.92,
     floor 0.20 OD;
  4. local test: pixel >= threshold and >= 0.06 OD above the mean of a
     14 µm window (cv2.boxFilter);
  5. 8-connected components with stats (cv2.connectedComponentsWithStats);
  6. area filter (12..900 µm²), per-component mean density
     (np.bincount), ring contrast (>= 0.10 OD) and surround (>= 0.03 OD
     above the 5th-percentile background) via an integral image
     (cv2.integral), as the Go detector's accept step.
Border handling of the blur and local mean differs slightly (OpenCV
replicates, Go truncates the window), so nucleus counts agree to a few %.

Usage: opencv_detect.py [--pixel-um 0.5] [--seconds 3] [--threads 1] IMAGE...
Prints one line: "opencv_detect images N megapixels M seconds S mp_per_s R
nuclei K" (K: nuclei found in one pass over the images).
"""
import argparse
import sys
import time

import cv2
import numpy as np

H_SCALE = 160.0
STAIN = (1.0, 0.4, -0.2)


def luts():
    v = np.arange(256, dtype=np.float64)
    od = -np.log10((v + 0.5) / 256.0)
    return [np.round(s * od * H_SCALE * 256).astype(np.float32).reshape(1, 256) / 256.0 for s in STAIN]


def od_to_h(od):
    return int(min(255, max(0, round(od * H_SCALE))))


def otsu(hist, lo):
    h = hist[lo:].astype(np.float64)
    levels = np.arange(lo, 256, dtype=np.float64)
    total = h.sum()
    if total == 0:
        return 255
    w_b = np.cumsum(h)
    s_b = np.cumsum(h * levels)
    s_all = s_b[-1]
    w_f = total - w_b
    valid = (w_b > 0) & (w_f > 0)
    m_b = np.where(valid, s_b / np.maximum(w_b, 1), 0)
    m_f = np.where(valid, (s_all - s_b) / np.maximum(w_f, 1), 0)
    between = np.where(valid, w_b * w_f * (m_b - m_f) ** 2, -1)
    i = int(np.argmax(between))
    return lo + i + 1


class Detector:
    def __init__(self, pixel_um):
        self.px = pixel_um
        self.lr, self.lg, self.lb = luts()
        self.min_area = int(np.ceil(12 / pixel_um ** 2))
        self.max_area = int(np.floor(900 / pixel_um ** 2))
        self.min_t = od_to_h(0.20)
        self.tissue = od_to_h(0.08)
        self.radius = max(1, int(round(14 / 2 / pixel_um)))
        self.offset = round(0.06 * H_SCALE)
        self.ring = max(1, int(round(3 / pixel_um)))

    def detect(self, rgb):
        r, g, b = cv2.split(rgb)
        h = cv2.LUT(r, self.lr) + cv2.LUT(g, self.lg) + cv2.LUT(b, self.lb)
        h = np.clip(h, 0, 255).astype(np.uint8)
        h = cv2.blur(h, (3, 3), borderType=cv2.BORDER_REPLICATE)
        hist = cv2.calcHist([h], [0], None, [256], [0, 256]).ravel()
        t = max(int(round(otsu(hist, self.tissue) * 0.92)), self.min_t)
        k = 2 * self.radius + 1
        local = cv2.boxFilter(h, cv2.CV_32F, (k, k), normalize=True, borderType=cv2.BORDER_REPLICATE)
        mask = ((h >= t) & (h.astype(np.float32) - self.offset >= local)).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
        area = stats[1:, cv2.CC_STAT_AREA]
        keep = (area >= self.min_area) & (area <= self.max_area)
        sum_h = np.bincount(labels.ravel(), weights=h.ravel(), minlength=n)[1:]
        integ = cv2.integral(h, sdepth=cv2.CV_64F)
        hh, ww = h.shape
        g = self.ring
        x0 = np.maximum(0, stats[1:, cv2.CC_STAT_LEFT] - g)
        y0 = np.maximum(0, stats[1:, cv2.CC_STAT_TOP] - g)
        x1 = np.minimum(ww, stats[1:, cv2.CC_STAT_LEFT] + stats[1:, cv2.CC_STAT_WIDTH] + g)
        y1 = np.minimum(hh, stats[1:, cv2.CC_STAT_TOP] + stats[1:, cv2.CC_STAT_HEIGHT] + g)
        box = integ[y1, x1] - integ[y0, x1] - integ[y1, x0] + integ[y0, x0]
        ring_n = (x1 - x0) * (y1 - y0) - area
        mean_h = sum_h / np.maximum(area, 1) / H_SCALE
        ring_mean = np.where(ring_n > 0, (box - sum_h) / np.maximum(ring_n, 1) / H_SCALE, mean_h)
        keep &= (mean_h - ring_mean) >= 0.10
        # Surround: the annulus between g and 2g beyond the box must be
        # 0.03 OD above the background (5th percentile density).
        bg = float(np.searchsorted(np.cumsum(hist), hh * ww / 20, side="right")) / H_SCALE
        g2 = 2 * g
        ox0 = np.maximum(0, stats[1:, cv2.CC_STAT_LEFT] - g2)
        oy0 = np.maximum(0, stats[1:, cv2.CC_STAT_TOP] - g2)
        ox1 = np.minimum(ww, stats[1:, cv2.CC_STAT_LEFT] + stats[1:, cv2.CC_STAT_WIDTH] + g2)
        oy1 = np.minimum(hh, stats[1:, cv2.CC_STAT_TOP] + stats[1:, cv2.CC_STAT_HEIGHT] + g2)
        outer = integ[oy1, ox1] - integ[oy0, ox1] - integ[oy1, ox0] + integ[oy0, ox0]
        on = (ox1 - ox0) * (oy1 - oy0) - (x1 - x0) * (y1 - y0)
        sur = np.where(on > 0, (outer - box) / np.maximum(on, 1) / H_SCALE - bg, 1.0)
        keep &= sur >= 0.03
        return int(keep.sum())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pixel-um", type=float, default=0.5)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("images", nargs="+")
    a = ap.parse_args()
    cv2.setNumThreads(a.threads)
    imgs = []
    for p in a.images:
        bgr = cv2.imread(p, cv2.IMREAD_COLOR)
        if bgr is None:
            print(f"opencv_detect: cannot read {p}", file=sys.stderr)
            return 1
        imgs.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    det = Detector(a.pixel_um)
    nuclei = sum(det.detect(im) for im in imgs)  # warm-up and count
    mp = sum(im.shape[0] * im.shape[1] for im in imgs) / 1e6
    runs, start = 0, time.perf_counter()
    while True:
        for im in imgs:
            det.detect(im)
        runs += 1
        el = time.perf_counter() - start
        if el >= a.seconds:
            break
    print(f"opencv_detect images {len(imgs)} megapixels {mp:.2f} seconds {el:.2f} "
          f"mp_per_s {mp * runs / el:.1f} nuclei {nuclei} opencv {cv2.__version__} threads {a.threads}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
