"""Online serving of every declared model on KServe: one flight (or a few) per request over KServe's
v1 and Open Inference (v2) protocols, features from Feast's online store, champion and challenger
from MLflow aliases, every answer in a request log.

`server` is the KServe model server (`make serve`), `served_model` one model's route on both
protocols, `instances` validates request bodies and `open_inference` the v2 tensors, `features`
reads the online store through the model's feature service, `rollout` chooses the variant that
answers and follows alias moves, `request_log` buffers and writes the log and `request_log_files`
lays it out (day partitions, compaction, readers), `server_metrics` is /metrics, `traffic` replays a
month of flights as requests, `k8s` builds the InferenceServices.
"""
