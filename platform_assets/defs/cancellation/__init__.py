"""The second prediction target, added as one folder: cancellation, on the delay model's tables."""
