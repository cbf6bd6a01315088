"""Pictures and videos: BEV plots, mosaics, colour maps, video writing."""
