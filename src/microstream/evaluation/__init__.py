"""Offline evaluation and training of the forecast and regime models.

Walk-forward splits, metrics, baselines, model selection, and the
``microstream evaluate`` report (JSON, Markdown, PNG plots).
"""
