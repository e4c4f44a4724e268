"""Drawing: mp4 and PNG writing, the live window, overlays."""
