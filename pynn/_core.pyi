"""Stubs for the Rust module `pynn._core` (rust/python). Arrays are flat float32, C-contiguous."""

from typing import Callable

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float32]
Progress = Callable[[int, list[float]], object]
#: `(loss, [each output's loss], [metrics])`; output losses only where several outputs have one.
Logs = tuple[float, list[float], list[float]]

__version__: str

class Engine:
    def __init__(
        self, input_shape: list[int], layers_json: str, names: list[str] | None = None
    ) -> None: ...
    @staticmethod
    def from_graph(graph_json: str, names: list[str] | None = None) -> Engine: ...
    def layer_output_shapes(self) -> list[list[int]]: ...
    def layer_weight_shapes(self) -> list[list[list[int]]]: ...
    def weight_shapes(self) -> list[list[int]]: ...
    def output_shapes(self) -> list[list[int]]: ...
    def get_weights(self) -> list[Floats]: ...
    def weight(self, index: int) -> Floats:
        """Weight `index` of `get_weights()` alone."""
    def set_weights(self, values: Floats) -> None: ...
    def set_trainable(self, trainable: list[bool]) -> None:
        """Which layers' weights train, one flag per layer."""
    def get_gradients(self) -> Floats: ...
    def compile(self, outputs_json: str, optimizer_json: str) -> None:
        """`outputs_json`: a list, per output, of `{"loss", "weight", "metrics"}`."""
    def iterations(self) -> int: ...
    def learning_rate(self) -> float: ...
    def set_learning_rate(self, learning_rate: float) -> None: ...
    def optimizer_slots(self) -> int: ...
    def optimizer_state(self) -> tuple[int, list[Floats]]: ...
    def optimizer_slot(self, index: int) -> Floats:
        """A copy of the optimizer's slot `index` alone."""
    def set_optimizer_state(self, iterations: int, state: list[Floats]) -> None: ...
    def fit_epoch(
        self,
        xs: list[Floats],
        ys: list[Floats],
        len: int,
        batch_size: int,
        shuffle_seed: int | None = None,
        progress: Progress | None = None,
        on_gpu: bool = False,
    ) -> tuple[float, list[float], list[float], int | None]:
        """`Logs` and the first batch whose loss was NaN or infinite; `xs` one array per
        input, `ys` one per output. `progress` is called on the calling thread, at most every
        0.05 s, with the batches run so far and the running `[loss, *output losses, *metrics]`
        (`[]` on the GPU, which keeps them until the epoch's end)."""
    def gpu_unsupported(self) -> str | None:
        """What of this compiled model the GPU engine does not run, or None; builds its GPU
        copy. Raises RuntimeError when no GPU is usable."""
    def evaluate(
        self,
        xs: list[Floats],
        ys: list[Floats],
        len: int,
        batch_size: int,
        progress: Progress | None = None,
        on_gpu: bool = False,
    ) -> Logs: ...
    def compute_gradients(
        self, xs: list[Floats], ys: list[Floats], len: int
    ) -> tuple[Logs, Floats]:
        """`(logs, gradients)` of one training step on all `len` samples, without the step;
        the gradients flat, in the layout of `get_weights()`."""
    def apply_gradients(self, grads: Floats) -> None:
        """One optimizer step with these (flat) gradients."""
    def predict(
        self,
        xs: list[Floats],
        len: int,
        batch_size: int,
        outs: list[npt.NDArray[np.float32]],
        progress: Progress | None = None,
        on_gpu: bool = False,
    ) -> None:
        """Writes each output into its array of `outs`, C-contiguous `(len, *output_shape)`;
        `progress` gets `[]` as values."""
    def reshape_inputs(self, input_shapes: list[list[int]]) -> None:
        """Plans the network for per-sample inputs of `input_shapes` (variable dimensions),
        keeping weights, optimizer state and compiled losses."""
    def forward_in_mode(
        self,
        xs: list[Floats],
        len: int,
        outs: list[npt.NDArray[np.float32]],
        training: bool | None,
        stream: int,
    ) -> None:
        """All `len` samples as one batch into `outs`, with the layers that train differently
        in training mode (`True`), in inference (`False`) or as each call was recorded
        (`None`), drawing the masks of `stream`."""

def set_num_threads(n: int) -> None:
    """1 to 1024 threads, or 0 for all cores; ValueError beyond."""

def get_num_threads() -> int: ...
def before_fork() -> None:
    """For `os.register_at_fork(before=...)`."""

def after_fork(child: bool) -> None:
    """For `os.register_at_fork(after_in_parent=..., after_in_child=...)`."""

def shuffled_order(seed: int, len: int) -> list[int]: ...
def all_finite(array: np.ndarray) -> bool | None:
    """Whether a contiguous (C or Fortran order) float32/float64 array is free of NaN and
    infinities; None for any other array."""

def gpu_adapter() -> tuple[str, str, str, bool]:
    """`(name, driver, backend, is_gpu)`; RuntimeError saying why when there is no GPU."""

def activation(name: str, z: Floats, da: Floats, width: int) -> tuple[Floats, Floats]: ...
def loss(spec: str, y_true: Floats, y_pred: Floats, width: int) -> tuple[Floats, Floats]: ...
def metric(spec: str, y_true: Floats, y_pred: Floats, width: int) -> Floats:
    """The metric's value for each row of `y_pred`."""

def optimizer_steps(spec: str, weights: Floats, grads: Floats) -> Floats: ...
def matmul(a: Floats, b: Floats) -> Floats: ...
def graph_shapes(
    graph_json: str, names: list[str] | None = None
) -> tuple[list[list[int]], list[list[list[int]]]]: ...
def tensor_file_header(
    tensors: list[tuple[str, list[int]]], metadata: dict[str, str] | None = None
) -> bytes:
    """The start of a safetensors file of float32 `tensors` (name, shape); their values follow
    it, in that order, little-endian."""

def decode_tensors(
    data: bytes,
) -> tuple[list[tuple[str, npt.NDArray[np.float32]]], dict[str, str]]: ...
def _panic_in_engine(message: str) -> None: ...
