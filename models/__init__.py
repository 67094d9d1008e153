"""The shipped model, its model card and split (installed as the ``agebatch.models`` package data)."""
