"""labelloop's project manager tool behind `python scripts/sync.py`: setup, import, predict, rank, retrain,
export and status for Label Studio projects served by labelloop backends."""
