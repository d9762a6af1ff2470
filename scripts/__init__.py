"""The project manager's tools on label-studio-sdk: `python -m scripts.sync` (see scripts/README.md)."""
