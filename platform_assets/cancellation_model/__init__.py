"""The cancellation model: will a scheduled flight be cancelled? Same flights, same feature views,
its own feature service, registered model, gate, champion and drift report."""
