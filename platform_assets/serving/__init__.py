"""Online serving of the delay model on KServe: one flight (or a few) per request, features from
Feast's online store, champion and challenger from MLflow aliases, every answer in a request log.

`server` is the KServe model server (`make serve`), `instances` validates request bodies,
`features` reads the online store through the model's feature service, `rollout` chooses the
variant that answers and follows alias moves, `request_log` is the append-only day-partitioned
log, `traffic` replays a month of flights as requests, `k8s` builds the InferenceService.
"""
