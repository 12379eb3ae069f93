"""What only `make run` uses: the replay of 2013 (its run launcher, the prefit of the models the
summary compares against)."""
