"""Videos of rollouts: the camera frame enlarged, with the actions and speed drawn beneath it.

Written as H.264 mp4 through the ffmpeg binary that imageio-ffmpeg ships, so the files play in
web browsers too (OpenCV's 'mp4v' files do not), with the index at the front (faststart), so they
start playing before they have finished downloading.
"""

from __future__ import annotations

import errno
import io
import itertools
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np

from driving.files import replacing, write_bytes

SCALE = 3  # camera pixels -> video pixels
PANEL = 72  # [px] height of the text panel under the frame
LOW_SPACE = 1 << 20  # [bytes] free space under which a failed write is put down to a full disk
GREEN, RED, WHITE, GREY = (60, 220, 60), (240, 70, 70), (255, 255, 255), (90, 90, 90)


def _bar(panel: np.ndarray, y: int, value: float, colour: tuple, label: str) -> None:
    """A horizontal bar from the panel's centre, right for positive values, left for negative."""
    width = panel.shape[1]
    centre, half = width // 2, width // 2 - 110
    cv2.rectangle(panel, (centre - half, y), (centre + half, y + 8), GREY, 1)
    end = centre + int(np.clip(value, -1, 1) * half)
    cv2.rectangle(panel, (min(centre, end), y), (max(centre, end), y + 8), colour, -1)
    cv2.putText(
        panel,
        f"{label} {value:+.2f}",
        (4, y + 8),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.35,
        colour,
        1,
        cv2.LINE_AA,
    )


def overlay(
    frame: np.ndarray,
    policy: np.ndarray,
    expert: np.ndarray,
    speed: float,
    time_s: float,
    note: str = "",
    names: tuple[str, str] = ("policy", "expert"),
) -> np.ndarray:
    """Enlarged camera frame over a panel: policy (red) vs expert (green) steering and throttle.

    `names` labels the red and the green bars (e.g. ("executed", "label") for a dataset).
    """
    big = cv2.resize(frame, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_NEAREST)
    panel = np.zeros((PANEL, big.shape[1], 3), np.uint8)
    red, green = (name[:8] for name in names)
    _bar(panel, 4, float(policy[0]), RED, f"steer {red}")
    _bar(panel, 18, float(expert[0]), GREEN, f"steer {green}")
    _bar(panel, 34, float(policy[1]), RED, f"throt {red}")
    _bar(panel, 48, float(expert[1]), GREEN, f"throt {green}")
    text = f"{speed:5.1f} m/s  t={time_s:5.1f} s  {note}"
    cv2.putText(panel, text, (4, 68), cv2.FONT_HERSHEY_SIMPLEX, 0.4, WHITE, 1, cv2.LINE_AA)
    out = np.concatenate([big, panel], axis=0)
    # libx264 with yuv420p needs even sides.
    return out[: out.shape[0] // 2 * 2, : out.shape[1] // 2 * 2]


def write_mp4(path: Path, frames: Iterable[np.ndarray], fps: float = 10.0) -> Path:
    """Write RGB frames as an H.264 mp4, atomically (a killed run leaves no half video).

    `frames` may be a generator: frames are encoded as they come, never all held in memory.
    """
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"no frames to write to {path}")
    height, width = first.shape[:2]
    with replacing(path) as tmp:  # an interrupted video is not kept half-written
        writer = imageio_ffmpeg.write_frames(
            str(tmp),
            (width, height),
            fps=fps,
            codec="libx264",
            pix_fmt_out="yuv420p",
            macro_block_size=1,
            # quiet: a failure is ours to report, in one line; faststart: the index (moov) goes
            # before the data, so a browser plays the video while it downloads
            output_params=["-loglevel", "quiet", "-movflags", "+faststart"],
        )
        try:
            try:
                writer.send(None)
                for frame in itertools.chain([first], frames):
                    writer.send(np.ascontiguousarray(frame))
            finally:
                writer.close()
        except OSError:  # ffmpeg stopped reading (imageio-ffmpeg's IOError: its command line)
            raise _write_failed(path, tmp) from None
        if not _reads_back(tmp):  # ffmpeg ended in an error after the last frame
            raise _write_failed(path, tmp)
    return path


def _reads_back(path: Path) -> bool:
    """Whether ffmpeg reads the video at `path` to its end without an error (no decoding)."""
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path)]
    command += ["-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
    done = subprocess.run(command, capture_output=True)
    return done.returncode == 0 and not done.stderr.strip()


def _write_failed(path: Path, tmp: Path) -> OSError:
    """Why the video `path` could not be written (as `tmp`), as an OSError naming `path`."""
    if shutil.disk_usage(tmp.parent).free < LOW_SPACE:
        return OSError(errno.ENOSPC, "no space left on the device", str(path))
    return OSError(errno.EIO, "ffmpeg could not write the video", str(path))


def read_mp4(path: Path) -> tuple[list[np.ndarray], float]:
    """All frames of a video as RGB arrays, and its frame rate [Hz]."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    frames = [np.frombuffer(raw, np.uint8).reshape(height, width, 3) for raw in reader]
    return frames, float(meta["fps"])


def add_gif(
    writer, tag: str, path: Path, step: int, fps: float = 5.0, max_s: float = 20.0, reduce: int = 1
) -> None:
    """Add an mp4 to TensorBoard as an animated GIF (what `SummaryWriter.add_video` writes).

    `add_video` needs moviepy < 2 (it imports `moviepy.editor`, gone in moviepy 2); this encodes
    the GIF with Pillow (already here through matplotlib) and writes the same image summary,
    shown in TensorBoard's Images tab. Frames keep their size (`reduce` > 1 divides it: at half
    size the overlay's text can no longer be read) and are resampled to `fps` for at most
    `max_s` seconds, to keep the event file small (an evaluation video: 600x270, about 2 MB).
    """
    from PIL import Image
    from tensorboard.compat.proto.summary_pb2 import Summary

    frames, source_fps = read_mp4(path)
    every = max(1, round(source_fps / fps))
    frames = frames[: int(max_s * source_fps) : every]
    images = [Image.fromarray(f).reduce(reduce) for f in frames]
    buffer = io.BytesIO()
    duration_ms = round(1000 * every / source_fps)
    images[0].save(
        buffer, "GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0
    )
    width, height = images[0].size
    image = Summary.Image(
        height=height, width=width, colorspace=3, encoded_image_string=buffer.getvalue()
    )
    # SummaryWriter has no public way to add a ready-made summary; add_video uses this one too.
    writer._get_file_writer().add_summary(
        Summary(value=[Summary.Value(tag=tag, image=image)]), step
    )


def write_png(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB image as PNG, atomically (a killed run leaves no half file)."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot encode {path} as PNG")
    write_bytes(path, data.tobytes())
    return path
