"""Text in images: RapidOCR's PP-OCR lines (polygon, text, confidence) and what a project's corrections teach.

No Label Studio here: `backends/adapters/ocr.py` turns lines into regions and annotations into samples.
"""
from .engine import EngineError, Line, Reader, get_reader
from .model import OcrModel

__all__ = ["EngineError", "Line", "OcrModel", "Reader", "get_reader"]
