"""YOLO detection and instance segmentation for pre-annotation and fine-tuning, without Label Studio.

`model` (a YOLO model: RGB images in, `types.Detection`s out), `engines` (PyTorch or the weights' cached OpenVINO
export), `weights` (which weights may be loaded), `pool` (base models loaded once), `predict` (runs of several
models for a set of labels), `pipeline` (a request's images fetched and decoded by a thread, batch by batch within
a pixel budget), `batches` (sized images, the pixel budget, freed memory handed back), `images` (safe decoding),
`geometry` (pixel geometry, YOLO label lines), `dataset`, `train`, `evaluate` and `guard` (fine-tuning one
control's model and the publish decision), `trained` (a fine-tuned model's folder). Pure ML: this package never
imports `backends`.
"""
