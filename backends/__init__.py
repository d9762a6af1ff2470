"""labelloop's Label Studio side: the ML-backend protocol, auth, media, versions and training jobs."""
