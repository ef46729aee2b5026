"""Training under a given number of engine threads, for the determinism tests."""

import pynn


def weights_after_fit(make_model, x, y, threads, **fit):
    """Seeds, builds and compiles with `make_model()`, fits with `threads` engine threads, and
    returns the weights; the thread count is restored to all cores afterwards."""
    pynn.config.set_num_threads(threads)
    try:
        pynn.utils.set_random_seed(4)
        model = make_model()
        model.fit(x, y, verbose=0, **fit)
        return model.get_weights()
    finally:
        pynn.config.set_num_threads(0)
