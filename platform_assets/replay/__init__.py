"""What only `make run` uses: the replay of 2013 on Dagster's own daemon (driver: the clock; engine:
`dagster dev`; feeder: month files into the landing folder; prefit: the comparison's models)."""
