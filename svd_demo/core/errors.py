"""Errors that are meant to reach the person using the app, word for word."""


class UserFacingError(Exception):
    """Something the user can fix or needs to know; its message is shown as is (UI, CLI and API)."""


class InputError(UserFacingError, ValueError):
    """The input (an image, a video, a number) cannot be used; the message says why and what to do."""


class ModelLoadError(UserFacingError):
    """A model could not be loaded (missing, gated, corrupt or unreachable)."""


class GenerationCancelled(UserFacingError):
    """The user pressed Cancel; raised from a step callback so the pipeline stops at the next step."""


class OutOfMemory(UserFacingError):
    """Even the smallest settings did not fit in GPU memory."""


class VideoError(UserFacingError):
    """A video (or another output file) cannot be written or read; the message names the file and says why."""


class VideoInputError(VideoError, InputError):
    """A video or folder of frames given as input cannot be used: unreadable, damaged, or past a cap."""
