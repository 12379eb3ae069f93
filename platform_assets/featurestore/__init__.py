"""Feast access: the feature repo, the atomic registry store, historical and online reads, and
the lineage of feature rows."""
