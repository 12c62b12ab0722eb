"""Datasets on disk: the data root, downloads, conversions and checks."""
