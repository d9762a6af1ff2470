"""YOLO detection and instance segmentation for pre-annotation and fine-tuning, without Label Studio."""
