"""The textbook's chapters as runnable modules: `python -m pynn.examples.<name>`."""
