"""`Functional`: the model that `Model(inputs, outputs)` builds from symbolic tensors
(`keras/src/models/functional.py`). Its layers are the calls between the inputs and the outputs;
the engine runs them as one graph.
"""

from __future__ import annotations

from pynn import _graph
from pynn._naming import auto_name
from pynn._symbolic import flatten, flatten_with_paths, is_keras_tensor
from pynn.layers.layer import Layer
from pynn.models import Model


class Functional(Model):
    """A model of the layers between `inputs` and `outputs`.

    Args:
        inputs: the model's input tensor(s) (from `pynn.Input`): one, a list, or a dict.
        outputs: the tensor(s) the model computes from them: one, a list, or a dict.
        name: the model's name; defaults to `functional`, `functional_1`, ...
    """

    #: Where Keras 3 writes its functional model's class, and the name it registers it by.
    _keras_module = "keras.src.models.functional"
    _keras_registered_name = "Functional"

    def __init__(self, inputs, outputs, name=None, trainable=True):
        inputs_with_paths = flatten_with_paths(inputs)
        outputs_with_paths = flatten_with_paths(outputs)
        for argument, structure, items in (
            ("inputs", inputs, inputs_with_paths),
            ("outputs", outputs, outputs_with_paths),
        ):
            for _, item in items:
                if not is_keras_tensor(item):
                    raise ValueError(
                        f"All `{argument}` values must be KerasTensors. Received: "
                        f"{argument}={structure} including invalid value {item} of type "
                        f"{type(item)}"
                    )
        paths = [path for path, _ in outputs_with_paths]
        _graph.check_connected(flatten(inputs), flatten(outputs), paths)
        inputs, outputs = _graph.rooted_at_input_layers(inputs, outputs)
        self._inputs_struct, self._outputs_struct = inputs, outputs
        self._input_tensors, self._output_tensors = flatten(inputs), flatten(outputs)
        self._operations = _graph.ordered_operations(self._input_tensors, self._output_tensors)
        Layer.__init__(self, name=name or auto_name("functional"), trainable=trainable)
        self._build_engine()
        self.built = True

    @property
    def layers(self) -> list:
        """The model's layers in Keras's order (by depth from the inputs), input layers
        included; a nested model is one entry."""
        return [op for op in self._operations if isinstance(op, Layer)]

    def _graph_io(self):
        return self._input_tensors, self._output_tensors

    def _input_names(self) -> list[str]:
        """A dict of inputs' keys, else the input layers' names."""
        if isinstance(self._inputs_struct, dict):
            return sorted(self._inputs_struct)
        return super()._input_names()

    def _output_names(self) -> list[str]:
        """A dict of outputs' keys, else the names of the layers that compute them."""
        if isinstance(self._outputs_struct, dict):
            return sorted(self._outputs_struct)
        return super()._output_names()

    def _output_structure(self, arrays):
        if isinstance(self._outputs_struct, dict):
            return dict(zip(self._output_names(), arrays))
        return super()._output_structure(arrays)

    @property
    def input_shape(self):
        shapes = [t.shape for t in self._input_tensors]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        shapes = [t.shape for t in self._output_tensors]
        return shapes[0] if len(shapes) == 1 else shapes

    def _summary_layers(self) -> list:
        return self.layers

    def get_config(self) -> dict:
        """The architecture in Keras 3's structure: every layer's config with the calls that
        connect it (`inbound_nodes`), and which layers' outputs are the model's inputs and
        outputs (see `pynn.saving.functional_config`)."""
        from pynn.saving.functional_config import functional_config

        return functional_config(self)
