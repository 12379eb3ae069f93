"""Defaults of every knob, in one place; the dg.Config classes document them."""

MAX_QUARANTINE_SHARE = 0.01
