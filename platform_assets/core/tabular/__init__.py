"""A tabular binary classifier every model package can use: preprocessing fitted on training rows,
an ensemble of small torch networks, its training loop, and its MLflow pyfunc.

Pure Python (torch, numpy, pandas, polars, scikit-learn); nothing here knows about Dagster.
"""
