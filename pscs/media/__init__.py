"""Codecs, containers and RTSP: the leaf of pscs.

Nothing here imports any other part of pscs (the layering test enforces it), so the
recorder, the live hub, masking, playback and the camera simulator all share one
bitstream, one fragmented-MP4 writer and one RTSP client, and each can be tested alone.
"""
