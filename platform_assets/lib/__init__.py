"""Dagster-aware building blocks the definitions under defs/ are made of: the model-lifecycle
component, resources, dbt, the k8s executor and tags, partitions."""
