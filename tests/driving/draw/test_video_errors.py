"""A video that cannot be written (a full disk, an ffmpeg that stops early) is one OSError naming
the video, with nothing printed by ffmpeg and no file, whole or half, left behind."""

import errno
import subprocess
import uuid
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from driving.cli import os_error_line
from driving.draw.video import write_mp4


def noise_frames(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(count))


@pytest.fixture
def ffmpeg_that_stops_early(tmp_path, monkeypatch):
    """A real ffmpeg stand-in that reads the first 10 kB of frames and exits 1 in silence."""
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\nhead -c 10000 > /dev/null\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))  # read by imageio-ffmpeg at each call


def test_an_ffmpeg_that_stops_early_is_one_error_naming_the_video(
    ffmpeg_that_stops_early, tmp_path, capfd
):
    video = tmp_path / "out" / "road.mp4"
    with pytest.raises(OSError) as raised:
        write_mp4(video, noise_frames(50))
    assert raised.value.filename == str(video) and raised.value.errno == errno.EIO
    assert os_error_line(raised.value) == f"ffmpeg could not write the video: {video}"
    assert capfd.readouterr().err == ""  # no "Broken pipe", no ffmpeg command line
    assert list(video.parent.iterdir()) == []


@pytest.fixture
def tiny_disk():
    """A 64 kB tmpfs (needs root and permission to mount; skipped otherwise)."""
    mount = Path("/tmp") / f"tiny-disk-{uuid.uuid4().hex[:8]}"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        mount.rmdir()
        pytest.skip("cannot mount a tmpfs here (not root, or no permission)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)
    mount.rmdir()


def test_a_full_disk_is_one_error_saying_so(tiny_disk, capfd):
    video = tiny_disk / "road.mp4"
    with pytest.raises(OSError) as raised:
        write_mp4(video, noise_frames(60))
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(video)
    assert os_error_line(raised.value).startswith(f"no space left on the device writing {video}")
    assert capfd.readouterr().err == ""
    assert list(tiny_disk.iterdir()) == []  # the partial video is removed, the space is free


def test_a_video_that_fits_is_written_whole(tmp_path):
    video = write_mp4(tmp_path / "road.mp4", noise_frames(12))
    assert imageio_ffmpeg.count_frames_and_secs(str(video))[0] == 12
    assert [p.name for p in tmp_path.iterdir()] == ["road.mp4"]
