"""Defaults of online serving and its evaluation; the server's flags and the dg.Config classes
document them."""

# Canary: this share of flights (by a hash of the flight key) is answered by the challenger.
CANARY_PERCENT = 20.0
# How often the server reads the registry's aliases; a moved alias is served within this time.
ALIAS_POLL_SECONDS = 5.0
# The challenger is promoted on a day's evidence only with at least this many labelled flights
# scored by it, and when its online AUC is at most MAX_AUC_LOSS below the champion's.
MIN_LABELLED_FLIGHTS = 200
MAX_AUC_LOSS = 0.0
# Training/serving skew: a served value differing from the offline point-in-time value by more
# than this (absolute) counts as skewed.
SKEW_TOLERANCE = 1e-9
