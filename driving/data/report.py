"""`drive info DIR`: a text report on a demonstrations folder, with label histograms."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from driving.data.read import scan_headers


def _histogram(values: np.ndarray, bins: int = 10, width: int = 30) -> list[str]:
    """Text histogram over [-1, 1]: one line per bin with a bar, the count and the share."""
    counts, edges = np.histogram(values, bins=bins, range=(-1.0, 1.0))
    scale = width / max(int(counts.max()), 1)
    lines = []
    for count, low, high in zip(counts, edges[:-1], edges[1:], strict=True):
        bar = "#" * int(np.ceil(count * scale))
        share = 100.0 * count / max(len(values), 1)
        lines.append(f"    {low:+.1f}..{high:+.1f} |{bar:<{width}}| {count:>8,} {share:5.1f} %")
    return lines


def _limits(headers: list) -> str:
    """The range of the speed limits the episodes record, and how many record one."""
    told = [h.speed_limit for h in headers if h.speed_limit is not None]
    if not told:
        return "not recorded (episodes before 2026-12-07, or converted from another format)"
    limits = np.concatenate(told)
    return (
        f"{limits.min():.1f}..{limits.max():.1f} m/s, recorded in {len(told)} of "
        f"{len(headers)} episodes (what `drive train --limit-input` reads)"
    )


def info(root: Path) -> str:
    """Human-readable report on a dataset: counts, sizes, seeds, drivers, label statistics.

    Every frame is decoded, so that a damaged file (checksum mismatch) is listed by name.

    Raises:
        DatasetError: as `scan`.
    """
    headers, problems, skipped = scan_headers(Path(root), verify=True)
    labels = np.concatenate([h.labels for h in headers])
    sizes = Counter(h.frame_size for h in headers)
    size_text = ", ".join(f"{h}x{w} px ({n} episodes)" for (h, w), n in sizes.most_common())
    size_text = f"MIXED {size_text}" if len(sizes) > 1 else size_text.split(" (")[0]
    seeds = sorted({h.seed for h in headers})
    drivers = Counter(h.driver for h in headers)
    disk = sum(h.path.stat().st_size for h in headers)
    lines = [
        f"folder:      {Path(root).resolve()}",
        f"episodes:    {len(headers)} readable, {skipped} skipped",
        f"checksums:   {sum(h.checksummed for h in headers)} of {len(headers)} episodes carry "
        "them, all verified (older files have none)",
        f"frames:      {len(labels):,} ({disk / 1e6:.1f} MB, {disk / len(labels):,.0f} B/frame)",
        f"frame size:  {size_text} (H x W), RGB uint8",
        f"seeds:       {seeds[0]}..{seeds[-1]} ({len(seeds)} distinct roads)",
        f"drivers:     {', '.join(f'{d} ({n} episodes)' for d, n in drivers.most_common())}",
        f"speed limit: {_limits(headers)}",
    ]
    for column, name in enumerate(("steering", "throttle")):
        values = labels[:, column]
        lines.append(
            f"{name + ':':<12} mean {values.mean():+.3f}  std {values.std():.3f}"
            f"  min {values.min():+.3f}  max {values.max():+.3f}"
        )
        lines += _histogram(values)
    lines.append(f"warnings:    {len(problems)}")
    lines += [f"  - {problem}" for problem in problems]
    return "\n".join(lines)
