"""`trainable=False`: a frozen layer's weights stay as they are through `fit`, its weight
penalties leave the loss (its activity penalty stays), and `summary()` counts its weights as
non-trainable, as in Keras 3."""

import numpy as np
import pytest

import pynn
from pynn.layers import Dense
from pynn.regularizers import L1, L2

X, Y = np.ones((4, 3)), np.zeros((4, 1))


def _model(optimizer="sgd"):
    model = pynn.Sequential(
        [
            pynn.Input((3,)),
            Dense(
                2,
                kernel_initializer="ones",
                kernel_regularizer=L2(0.5),
                activity_regularizer=L1(0.1),
            ),
            Dense(1, kernel_initializer="ones"),
        ]
    )
    model.compile(optimizer=optimizer, loss="mse")
    return model


def test_a_frozen_layer_trains_as_in_keras():
    # Keras 3.15.1 on these weights and data: 39.6 with both layers trainable, 36.6 once the
    # first is frozen (its L2 penalty of 3.0 leaves the loss, its activity penalty stays), and
    # after two epochs of SGD the second layer's kernel is 0.4168 and its bias -0.1944.
    model = _model()
    assert model.evaluate(X, Y, verbose=0) == pytest.approx(39.6, abs=1e-5)
    model.layers[0].trainable = False
    assert model.evaluate(X, Y, verbose=0) == pytest.approx(36.6, abs=1e-5)
    history = model.fit(X, Y, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], [36.6, 14.4384], rtol=1e-6)
    kernel, bias, kernel_2, bias_2 = model.get_weights()
    np.testing.assert_array_equal(kernel, np.ones((3, 2)))
    np.testing.assert_array_equal(bias, np.zeros(2))
    np.testing.assert_allclose(kernel_2, [[0.41679999232292175]] * 2, rtol=1e-6)
    np.testing.assert_allclose(bias_2, [-0.19439999759197235], rtol=1e-6)


def test_summary_counts_frozen_weights_as_keras_does():
    model = _model()
    model.layers[0].trainable = False
    model.fit(X, Y, verbose=0)
    lines = []
    model.summary(print_fn=lines.append)
    totals = lines[0].splitlines()[-4:]
    assert totals == [
        " Total params: 13 (56.00 B)",
        " Trainable params: 3 (12.00 B)",
        " Non-trainable params: 8 (32.00 B)",
        " Optimizer params: 2 (12.00 B)",
    ]


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "adagrad", "sgd"])
def test_frozen_weights_stay_while_the_others_train(optimizer):
    model = _model(optimizer)
    model.fit(X, Y, epochs=2, verbose=0)  # the optimizer's slots fill for every weight
    model.layers[1].trainable = False
    model.compile(optimizer=optimizer, loss="mse")
    before = model.get_weights()
    model.fit(X, Y, epochs=3, verbose=0)
    after = model.get_weights()
    np.testing.assert_array_equal(after[2], before[2])
    np.testing.assert_array_equal(after[3], before[3])
    assert not np.array_equal(after[0], before[0])
    model.layers[1].trainable = True  # unfrozen, it trains again once compiled again
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(X, Y, verbose=0)
    assert not np.array_equal(model.get_weights()[2], before[2])


def test_the_trained_layers_are_taken_at_the_first_fit_after_compile_as_in_keras():
    # Keras 3.15.1 on TensorFlow: a layer frozen after compile but before the first fit stays
    # frozen; frozen (or unfrozen) after a fit, it keeps training (or not) until the next
    # compile. pynn warns at the fit that ignores the change.
    model = _model()
    model.layers[0].trainable = False
    model.fit(X, Y, verbose=0)
    np.testing.assert_array_equal(model.get_weights()[0], np.ones((3, 2)))
    model.layers[0].trainable = True
    with pytest.warns(UserWarning, match=r"Please recompile.*Changed layers: \['dense"):
        model.fit(X, Y, verbose=0)
    np.testing.assert_array_equal(model.get_weights()[0], np.ones((3, 2)))
    model.compile(optimizer="sgd", loss="mse")
    model.fit(X, Y, verbose=0)
    assert not np.array_equal(model.get_weights()[0], np.ones((3, 2)))
    model.layers[1].trainable = False
    before = model.get_weights()[2]
    with pytest.warns(UserWarning, match="Please recompile"):
        model.fit(X, Y, verbose=0)
    assert not np.array_equal(model.get_weights()[2], before)


def test_model_trainable_freezes_every_layer_as_in_keras():
    model = _model()
    model.trainable = False
    assert [layer.trainable for layer in model.layers] == [False, False]
    before = model.get_weights()
    model.fit(X, Y, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    # A layer added to a frozen model keeps its flag, and the model's keeps it frozen.
    late = pynn.Sequential([pynn.Input((3,)), Dense(2)])
    late.trainable = False
    late.add(Dense(1))
    assert [layer.trainable for layer in late.layers] == [False, True]
    assert late._trainable_layers() == [False, False]


def test_the_trainable_flag_survives_saving(tmp_path):
    model = _model()
    model.layers[0].trainable = False
    model.save(tmp_path / "m.pynn")
    loaded = pynn.models.load_model(tmp_path / "m.pynn")
    assert [layer.trainable for layer in loaded.layers] == [False, True]
    assert loaded.evaluate(X, Y, verbose=0) == pytest.approx(36.6, abs=1e-5)


def test_a_layer_built_frozen_stays_frozen():
    layer = Dense(2, trainable=False, kernel_initializer="ones")
    model = pynn.Sequential([pynn.Input((3,)), layer, Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, Y, epochs=2, verbose=0)
    np.testing.assert_array_equal(layer.get_weights()[0], np.ones((3, 2)))
    assert layer.get_config()["trainable"] is False
