"""Optional bridges to other training frameworks; each module imports its framework itself.

Example:
    >>> from neuroprune.integrations.lightning import SynapticPruning  # needs `pip install neuroprune[lightning]`
"""
