"""Baseline networks, trained and measured through the same path as searched ones (registered in hnanas.models)."""
