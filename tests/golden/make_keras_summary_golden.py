"""Writes keras_summaries.json: what Keras 3's `summary(line_length=76, expand_nested=...)`
prints for the models of tests/summary_models.py. Run it by hand where `keras` and
`tensorflow-cpu` are installed:

    python tests/golden/make_keras_summary_golden.py
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from summary_models import BUILDERS  # noqa: E402


def summary(model, expand_nested: bool) -> str:
    lines = []
    model.summary(line_length=76, print_fn=lines.append, expand_nested=expand_nested)
    return lines[0].rstrip("\n")


def main() -> None:
    golden = {
        name: {
            "expanded": summary(build(keras), True),
            "collapsed": summary(build(keras), False),
        }
        for name, build in BUILDERS.items()
    }
    golden["keras_version"] = keras.__version__
    path = Path(__file__).with_name("keras_summaries.json")
    path.write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
