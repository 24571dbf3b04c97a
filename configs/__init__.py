"""The shipped YAML configs, installed as package data of ``asap.configs`` (see ``asap/paths.py``)."""
