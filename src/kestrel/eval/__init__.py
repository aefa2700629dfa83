"""Evaluation harnesses: how well detection does on labelled public data (SigmaHQ regression
data, OTRF Security-Datasets, ...). Above ingest and detect: it reads data with the readers and
runs the detectors, and reports; it never changes what the detectors do."""
