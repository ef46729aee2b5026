"""Global settings: engine threads and Keras's backend constants."""

from __future__ import annotations

import os

from pynn import _core

#: The most threads the engine runs (more than any machine's cores).
MAX_THREADS = 1024


def set_num_threads(n: int) -> None:
    """Sets how many CPU threads training uses: 1 to 1024, or `0` for all cores.

    The default is all cores, or the `PYNN_NUM_THREADS` environment variable when set (same
    values). Results are bit-identical for a given seed whatever the number of threads.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_THREADS:
        raise ValueError(
            f"`n` must be an integer from 0 (all cores) to {MAX_THREADS}. Received: n={n!r}"
        )
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """How many CPU threads training uses."""
    return _core.get_num_threads()


# A forked child has none of its parent's threads: the engine hands it an empty pool slot, and
# its first call starts threads of its own (multiprocessing's "fork" start method).
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(
        before=_core.before_fork,
        after_in_parent=lambda: _core.after_fork(False),
        after_in_child=lambda: _core.after_fork(True),
    )


def epsilon() -> float:
    """The fuzz factor used by losses, as `keras.config.epsilon()`."""
    return 1e-7


def floatx() -> str:
    """The float type of weights and computations: always `"float32"`."""
    return "float32"


def image_data_format() -> str:
    """The layout of images: always `"channels_last"` (`(height, width, channels)`)."""
    return "channels_last"


def backend() -> str:
    """The name of the engine computing: `"pynn"`."""
    return "pynn"


_DEVICES = ("cpu", "gpu", "auto")
_device: str | None = None  # None: not chosen yet, PYNN_DEVICE or "cpu" decides


def set_device(device: str) -> None:
    """Chooses where `fit` trains: `"cpu"` (the default), `"gpu"` or `"auto"`.

    `"gpu"` trains on the GPU engine (wgpu on Vulkan) and raises `RuntimeError`, naming what was
    found, when no GPU is usable. `"auto"` uses a real GPU when there is one and the CPU
    otherwise (a Vulkan implementation that runs on the CPU, such as lavapipe, counts as none).
    The `PYNN_DEVICE` environment variable sets the choice before any call. The GPU engine
    runs every layer, loss and optimizer pynn has, with up to four metrics; for a model with more,
    `"gpu"` raises `NotImplementedError` at `fit` and `"auto"` warns once and uses the CPU.
    """
    global _device
    if device not in _DEVICES:
        raise ValueError(f"`device` must be one of {_DEVICES}. Received: device={device!r}")
    if device == "gpu":
        _gpu_adapter()  # raises RuntimeError saying why there is no GPU
    _device = device


def get_device() -> str:
    """The device chosen by `set_device` (or `PYNN_DEVICE`): `"cpu"`, `"gpu"` or `"auto"`."""
    global _device
    if _device is None:
        chosen = os.environ.get("PYNN_DEVICE", "cpu").strip().lower() or "cpu"
        if chosen not in _DEVICES:
            raise ValueError(
                f"The PYNN_DEVICE environment variable must be one of {_DEVICES}; got {chosen!r}."
            )
        set_device(chosen)
    return _device


def _gpu_adapter() -> tuple:
    # Mesa's device-selection layer asks Wayland for the default GPU, and libwayland prints
    # "error: XDG_RUNTIME_DIR is invalid or not set" on every probe where the variable is
    # missing (containers, ssh, CI). wgpu ranks the adapters itself, so the layer is switched
    # off there, unless the user steers it with MESA_VK_DEVICE_SELECT.
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR", "")
    if not os.path.isdir(runtime_dir) and "MESA_VK_DEVICE_SELECT" not in os.environ:
        os.environ.setdefault("NODEVICE_SELECT", "1")
    return _core.gpu_adapter()


def gpu_info() -> dict | None:
    """The GPU the engine would use: `{"name", "driver", "backend", "is_gpu"}` (`is_gpu` is
    False for a Vulkan implementation running on the CPU), or None when there is none."""
    try:
        name, driver, backend, is_gpu = _gpu_adapter()
    except RuntimeError:
        return None
    return {"name": name, "driver": driver, "backend": backend, "is_gpu": is_gpu}


def gpu_error() -> str | None:
    """Why no GPU is usable, or None when one is."""
    try:
        _gpu_adapter()
    except RuntimeError as error:
        return str(error)
    return None
