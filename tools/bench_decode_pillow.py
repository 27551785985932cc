#!/usr/bin/env python3
"""Pillow + torchvision-style preprocessing throughput on one core: the reference for
`cargo bench -p shiftscope-tests --bench decode`, which runs this script on the same files in
the same run.

Per image: PIL.Image.open + convert("RGB") (libjpeg-turbo, full-size decode), then
torchvision's Resize(256) (bilinear, antialiased), CenterCrop(224), ToTensor and Normalize
(ImageNet mean/std). With torchvision installed its transforms are used (torch on one
thread); without it the same steps are written with Pillow and numpy (torchvision calls
Pillow's resize for PIL images, so the pixels are the same).

Usage: bench_decode_pillow.py [--repeat N] NAME=FOLDER...   (prints one JSON line per NAME:
{"name": ..., "images": ..., "images_per_second": ...}, the best of N passes)

Needs: pip install pillow numpy (torchvision optional).
"""

import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)


def numpy_transform(img):
    w, h = img.size
    # torchvision: the shorter side becomes 256, the longer int(256 * long / short).
    if w <= h:
        size = (256, int(256 * h / w))
    else:
        size = (int(256 * w / h), 256)
    img = img.resize(size, Image.BILINEAR)
    w, h = img.size
    top = int(round((h - 224) / 2.0))
    left = int(round((w - 224) / 2.0))
    img = img.crop((left, top, left + 224, top + 224))
    x = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return (x - MEAN) / STD


def make_transform():
    try:
        import torch
        from torchvision import transforms
    except ImportError:
        return numpy_transform, "pillow+numpy"
    torch.set_num_threads(1)
    t = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(MEAN.ravel().tolist(), STD.ravel().tolist()),
        ]
    )
    return t, "pillow+torchvision " + __import__("torchvision").__version__


def files_of(folder):
    out = []
    for root, _, names in os.walk(folder):
        for n in sorted(names):
            if n.lower().endswith((".jpg", ".jpeg", ".png")):
                out.append(os.path.join(root, n))
    return sorted(out)


def main(argv):
    repeat = 3
    groups = []
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--repeat":
            repeat = int(args.pop(0))
        elif "=" in a:
            name, folder = a.split("=", 1)
            groups.append((name, files_of(folder)))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    transform, how = make_transform()
    for name, files in groups:
        best = 0.0
        for _ in range(repeat):
            started = time.perf_counter()
            for path in files:
                with Image.open(path) as img:
                    x = transform(img.convert("RGB"))
                assert tuple(x.shape) == (3, 224, 224)
            rate = len(files) / (time.perf_counter() - started)
            best = max(best, rate)
        print(
            json.dumps(
                {"name": name, "images": len(files), "images_per_second": best, "how": how}
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
