"""The mp4s the project writes start with their index (faststart), so a browser plays them while
they download: the `moov` box comes before the `mdat` box."""

import struct
from pathlib import Path

import numpy as np
import pytest

from driving.data.lerobot_io import write_video
from driving.draw.video import read_mp4, write_mp4


def top_level_boxes(path: Path) -> list[str]:
    """The types of an mp4's top-level boxes, in file order (ISO/IEC 14496-12 box headers)."""
    data, boxes, at = path.read_bytes(), [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        if size == 1:  # a 64-bit size follows the type
            size = struct.unpack(">Q", data[at + 8 : at + 16])[0]
        elif size == 0:  # the box runs to the end of the file
            size = len(data) - at
        boxes.append(kind.decode("latin-1"))
        at += size
    return boxes


def _frames(count: int = 20) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (count, 66, 200, 3), dtype=np.uint8)


@pytest.mark.parametrize("writer", ["write_mp4", "lerobot write_video"])
def test_written_mp4s_have_their_index_before_their_data(writer, tmp_path):
    path = tmp_path / "clip.mp4"
    if writer == "write_mp4":
        write_mp4(path, iter(_frames()), fps=10.0)
    else:
        write_video(path, _frames(), fps=10)
    boxes = top_level_boxes(path)
    assert "moov" in boxes and "mdat" in boxes, boxes
    assert boxes.index("moov") < boxes.index("mdat"), boxes
    frames, fps = read_mp4(path)
    assert (len(frames), fps) == (20, 10.0)  # still a whole, playable video
