"""Feature store group: Feast registry, online store and point-in-time training sets."""
