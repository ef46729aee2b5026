#!/usr/bin/env bash
# Installs the wheel found in the folder given ($1) into a fresh virtual environment and trains
# a small model with it, from a folder where the source tree cannot shadow the installed package.
set -euo pipefail
wheel="$(ls "$1"/pynn-*.whl | head -n 1)"
work="$(mktemp -d)"
python -m venv "$work/venv"
if [ -x "$work/venv/bin/python" ]; then py="$work/venv/bin/python"; else py="$work/venv/Scripts/python"; fi
"$py" -m pip install -q "$wheel"
cd "$work"
"$py" - <<'PY'
import numpy as np

import pynn

pynn.utils.set_random_seed(0)
x = np.random.default_rng(0).normal(size=(256, 4)).astype("float32")
y = (x[:, 0] + x[:, 1] > 0).astype("int64")
model = pynn.Sequential([pynn.Input((4,)), pynn.layers.Dense(16, activation="relu"),
                         pynn.layers.Dense(2, activation="softmax")])
model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
history = model.fit(x, y, epochs=30, batch_size=32, verbose=0)
accuracy = history.history["accuracy"][-1]
print(f"pynn {pynn.__version__}: accuracy {accuracy:.3f} after 30 epochs")
assert accuracy > 0.9, accuracy
PY
