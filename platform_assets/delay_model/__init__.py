"""The flight-delay model: will a scheduled flight arrive more than 15 minutes late?

`spec.MODEL` says what the platform needs to train, gate, promote, score and monitor it; `training`
fits it and `registry` loads and scores its registered versions. Pure Python, no Dagster.
"""
