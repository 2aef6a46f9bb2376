"""The daemon's services: wake sources that publish typed events, and what lives beside the core."""
