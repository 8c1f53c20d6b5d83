"""Measurements behind the README's figures: encoder speed, accuracy over seeds, scaling.

Not part of the installed package; the scripts in `scripts/` run them from a clone.
"""
