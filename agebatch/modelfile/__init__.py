"""The model file: loading it safely, its LiteRT twin and that twin's record, precision, and its card."""
