"""Raw data: the source files, their landing as parquet, the contracts and rules rows must pass."""
