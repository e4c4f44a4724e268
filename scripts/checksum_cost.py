"""What the episode checksums (HDF5 Fletcher-32) cost on the read path, measured side by side.

Collects a few real expert episodes, stores each twice (with and without checksums, the same
arrays), then loads both folders for training in alternation and prints the ratio of the times.

    python scripts/checksum_cost.py --episodes 8 --repeats 5
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from unittest import mock

from driving.data import load_split, read_episode, scan, store
from driving.record.collect import CollectConfig, collect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="checksum_cost_"))
    try:
        collect(CollectConfig(out=work / "with", episodes=args.episodes, workers=1))
        episodes = [read_episode(p) for p in scan(work / "with")[0]]
        with mock.patch.object(store, "CHECKSUM", {}):  # the writer as it was before checksums
            for episode in episodes:
                store.write_episode(work / "without", episode)
        times = {"with": [], "without": []}
        for _ in range(args.repeats):
            for kind in times:
                start = time.perf_counter()
                load_split(work / kind, val_fraction=0.0)
                times[kind].append(time.perf_counter() - start)
        frames = sum(len(e.frames) for e in episodes)
        best = {kind: min(values) for kind, values in times.items()}
        for kind, seconds in best.items():
            print(f"{kind:>8} checksums: {frames / seconds:,.0f} frames/s (best of {args.repeats})")
        print(f"read time with / without checksums: {best['with'] / best['without']:.3f}")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
