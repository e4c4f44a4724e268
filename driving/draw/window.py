"""A live window for composed RGB frames (pygame), and the test for whether one can be opened.

Used by `drive watch` (a policy driving) and `drive collect --driver keyboard` (a person driving).
pygame is imported only when a window is opened, so headless work never loads it.

    window = Window("drive watch", (920, 320))  # WindowError (an OSError) if none can open
    window.show(frame)                          # (H, W, 3) uint8 RGB
    for event in window.events(): ...           # pygame events since the last call
    window.close()
"""

from __future__ import annotations

import os
import sys

import numpy as np

HEADLESS_DRIVERS = ("offscreen", "dummy")  # SDL video drivers that show nothing on a screen


class WindowError(OSError):
    """No window can be opened here; the message says why and what to use instead."""


def has_display() -> bool:
    """False where no screen can show a window: Linux with neither DISPLAY nor WAYLAND_DISPLAY.

    macOS and Windows always have one; an explicit SDL_VIDEODRIVER (e.g. "offscreen" in tests)
    counts as one, since SDL will then open exactly what was asked for.
    """
    if os.environ.get("SDL_VIDEODRIVER"):
        return True
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class Window:
    """One pygame window showing RGB frames; closes the display when done."""

    def __init__(self, title: str, size: tuple[int, int]) -> None:
        """Open a window of `size` (width, height) [px].

        Raises:
            WindowError: no display, or SDL could only open an invisible (offscreen) surface
                although no SDL_VIDEODRIVER was asked for.
        """
        if not has_display():
            raise WindowError("no display (neither DISPLAY nor WAYLAND_DISPLAY is set)")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self._pygame = pygame
        try:
            pygame.display.init()
            driver = pygame.display.get_driver()
            if driver in HEADLESS_DRIVERS and os.environ.get("SDL_VIDEODRIVER") != driver:
                raise WindowError(f"SDL found no screen (video driver {driver!r})")
            pygame.display.set_caption(title)
            self._screen = pygame.display.set_mode(size)
        except pygame.error as error:
            pygame.display.quit()
            raise WindowError(f"cannot open a window: {error}") from None
        except WindowError:
            pygame.display.quit()
            raise
        self.size = size

    def show(self, frame: np.ndarray) -> None:
        """Draw one (H, W, 3) uint8 RGB frame (resized to the window if it differs)."""
        pygame = self._pygame
        surface = pygame.surfarray.make_surface(np.ascontiguousarray(frame.swapaxes(0, 1)))
        if surface.get_size() != self.size:
            surface = pygame.transform.smoothscale(surface, self.size)
        self._screen.blit(surface, (0, 0))
        pygame.display.flip()

    def events(self) -> list:
        """The pygame events since the last call (keys, window close)."""
        return self._pygame.event.get()

    def close(self) -> None:
        """Close the window."""
        self._pygame.display.quit()

    def __enter__(self) -> Window:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
