"""The shipped motion files, installed as package data of ``asap.motions`` (see ``asap/paths.py``)."""
