"""Prefect blocks: where k3sc keeps secrets so flows never carry them as parameters."""
