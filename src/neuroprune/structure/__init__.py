"""The structure of a network: layer traits, coupled channels, and compaction built on them."""

from .channels import ChannelMap, ChannelSpace, Reader, trace_channels
from .compact import compact, compact_sequential
from .traits import TRAITS, LayerTrait, trait_of

__all__ = ["TRAITS", "ChannelMap", "ChannelSpace", "LayerTrait", "Reader", "compact", "compact_sequential",
           "trace_channels", "trait_of"]
