"""`summary()` prints Keras 3's table; `count_params` agrees with it."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import pynn
from pynn.layers import Dense, InputLayer
from pynn.models import Sequential

sys.path.insert(0, str(Path(__file__).parent))
from summary_models import BUILDERS as SUMMARY_BUILDERS  # noqa: E402

SEED_SUMMARY_88 = """\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━┓
┃ Layer (type)                         ┃ Output Shape                ┃         Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━┩
│ dense (Dense)                        │ (None, 20)                  │             220 │
├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤
│ dense_1 (Dense)                      │ (None, 3)                   │              63 │
└──────────────────────────────────────┴─────────────────────────────┴─────────────────┘
 Total params: 283 (1.11 KB)
 Trainable params: 283 (1.11 KB)
 Non-trainable params: 0 (0.00 B)"""

# Keras 3.15 printed this with 80 terminal columns (76 wide), the long name folded by `rich`.
NARROW_WITH_LONG_NAME = """\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ dense (Dense)                   │ (None, 20)             │           220 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ a_very_long_layer_name_that_wi… │ (None, 3)              │            63 │
│ (Dense)                         │                        │               │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 283 (1.11 KB)
 Trainable params: 283 (1.11 KB)
 Non-trainable params: 0 (0.00 B)"""


def seed_model(**last):
    # The seed's section 4.4 cell, with `keras` replaced by `pynn`; Keras 3 warns about
    # `input_shape` and so does pynn.
    with pytest.warns(UserWarning, match="`input_shape` is deprecated. Use `shape` instead."):
        return Sequential(
            [
                InputLayer(input_shape=(10,)),
                Dense(units=20, activation="relu"),
                Dense(units=3, activation="softmax", **last),
            ]
        )


def test_seed_summary_shapes_counts_and_sizes(capsys):
    model = seed_model()
    model.summary(line_length=88)
    assert capsys.readouterr().out.rstrip("\n") == SEED_SUMMARY_88
    assert model.count_params() == 283
    assert [layer.count_params() for layer in model.layers] == [220, 63]


def test_narrow_terminal_and_long_names_wrap_as_keras_does():
    lines = []
    seed_model(name="a_very_long_layer_name_that_will_wrap_around").summary(
        line_length=76, print_fn=lines.append
    )
    assert lines == [NARROW_WITH_LONG_NAME]


def test_optimizer_params_appear_after_fit():
    lines = []
    model = Sequential([pynn.Input(shape=(4,)), Dense(10), Dense(3)])  # 83 params, as observed
    model.compile(loss="mse", optimizer="adam")
    model.fit(np.zeros((4, 4)), np.zeros((4, 3)), verbose=0)
    model.summary(print_fn=lines.append)
    text = lines[0]
    # Keras 3.15 prints these: its `iterations` counter is an int64, 4 bytes more.
    assert " Total params: 251 (1008.00 B)" in text
    assert " Trainable params: 83 (332.00 B)" in text
    assert " Optimizer params: 168 (676.00 B)" in text
    assert text.splitlines()[-1] == " Optimizer params: 168 (676.00 B)"


def test_unbuilt_model_shows_question_marks():
    lines = []
    Sequential([Dense(4)]).summary(print_fn=lines.append)
    assert "│ ?" in lines[0] and "0 (unbuilt)" in lines[0]


def test_readable_sizes():
    from pynn._summary import readable_size

    assert readable_size(0) == "0.00 B"
    assert readable_size(1004) == "1004.00 B"
    assert readable_size(1132) == "1.11 KB"
    assert readable_size(61706 * 4) == "241.04 KB"
    assert readable_size(5 * 1024**2) == "5.00 MB"


# Keras 3.15 printed this with 80 terminal columns (76 wide): a graph gets the "Connected to"
# column, a shared layer lists each call, a nested model is one row.
GRAPH_SUMMARY_76 = """\
Model: "demo"
┏━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┓
┃ Layer (type)        ┃ Output Shape      ┃    Param # ┃ Connected to      ┃
┡━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━┩
│ a (InputLayer)      │ (None, 6)         │          0 │ -                 │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ b (InputLayer)      │ (None, 4)         │          0 │ -                 │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ da (Dense)          │ (None, 8)         │         56 │ a[0][0]           │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ db (Dense)          │ (None, 8)         │         40 │ b[0][0]           │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ shared (Dense)      │ (None, 8)         │         72 │ da[0][0],         │
│                     │                   │            │ db[0][0]          │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ cat (Concatenate)   │ (None, 24)        │          0 │ shared[0][0],     │
│                     │                   │            │ shared[1][0],     │
│                     │                   │            │ da[0][0]          │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ inner (Sequential)  │ (None, 5)         │        125 │ cat[0][0]         │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ cls (Dense)         │ (None, 3)         │         18 │ inner[0][0]       │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ reg (Dense)         │ (None, 1)         │         25 │ cat[0][0]         │
└─────────────────────┴───────────────────┴────────────┴───────────────────┘
 Total params: 336 (1.31 KB)
 Trainable params: 336 (1.31 KB)
 Non-trainable params: 0 (0.00 B)"""


def test_a_graph_shows_what_each_layer_is_connected_to_as_keras_does():
    a, b = pynn.Input((6,), name="a"), pynn.Input((4,), name="b")
    ha = Dense(8, activation="relu", name="da")(a)
    hb = Dense(8, name="db")(b)
    shared = Dense(8, name="shared")
    h = pynn.layers.Concatenate(name="cat")([shared(ha), shared(hb), ha])
    inner = Sequential([pynn.Input((24,)), Dense(5)], name="inner")
    model = pynn.Model(
        [a, b], [Dense(3, name="cls")(inner(h)), Dense(1, name="reg")(h)], name="demo"
    )
    lines = []
    model.summary(line_length=76, print_fn=lines.append)
    assert lines[0] == GRAPH_SUMMARY_76
    chain = pynn.Model(a, Dense(2, name="out")(ha))
    chain.summary(line_length=76, print_fn=lines.append)
    assert "Connected to" not in lines[1] and "da (Dense)" in lines[1]


SUMMARIES = json.loads((Path(__file__).parent / "golden" / "keras_summaries.json").read_text())


@pytest.mark.parametrize("name", sorted(SUMMARY_BUILDERS))
@pytest.mark.parametrize("expanded", [True, False])
def test_models_inside_models_expand_as_in_keras(name, expanded):
    """`expand_nested=True` lists a nested model's layers under it, indented with `└` (three
    spaces a level deeper), their connections `-`; the golden text is Keras 3's."""
    lines = []
    model = SUMMARY_BUILDERS[name](pynn)
    model.summary(line_length=76, print_fn=lines.append, expand_nested=expanded)
    assert lines[0] == SUMMARIES[name]["expanded" if expanded else "collapsed"]
